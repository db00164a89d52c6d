package cloudlink

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// A ClientBus publish at QoS 1 is done when the broker acknowledged it,
// and not before. paho's token cannot say so alone: when paho reconnects
// by itself it sends again what was in flight and completes each old
// token, without error, as it does so (v1.5.1, messageIds.claimID), before
// any broker has answered the repeat. A relay that took that for an
// acknowledgement acknowledged its frame upstream, and a kill -9 before
// the repeat was written lost the message. paho keeps an unacknowledged
// publish in its store under "o.<packet ID>" and deletes it when the
// PUBACK comes, before it completes the token; so a completed token whose
// publish is still in the store has not been acknowledged, and waits for
// the deletion.

// ErrNotAcknowledged: the connection ended (the bus was closed) before the
// broker acknowledged a publish.
var ErrNotAcknowledged = errors.New("broker: the connection ended before the broker acknowledged the publish")

// ackStore is paho's in-memory store, telling when a publish leaves it.
// It keeps its own index of the stored publishes (paho's MemoryStore
// holds the same under its own lock), so that what it says and its
// waiters change together, under mu.
type ackStore struct {
	*paho.MemoryStore
	mu      sync.Mutex
	out     map[string]*packets.PublishPacket // the stored outbound publishes, by key
	waiters map[string][]*ackWait
	closed  bool          // by Close or shutdown: what it holds will not be acknowledged
	shut    chan struct{} // closed with closed
}

// ackWait is told how a publish left the store: done is closed once acked
// is set.
type ackWait struct {
	done  chan struct{}
	acked bool // deleted on its PUBACK, not dropped by a reset or close
}

func newAckStore() *ackStore {
	return &ackStore{MemoryStore: paho.NewMemoryStore(), out: map[string]*packets.PublishPacket{},
		waiters: map[string][]*ackWait{}, shut: make(chan struct{})}
}

// Put stores a packet (paho: an outbound publish before it is sent).
func (s *ackStore) Put(key string, m packets.ControlPacket) {
	s.MemoryStore.Put(key, m)
	if p, ok := m.(*packets.PublishPacket); ok && strings.HasPrefix(key, "o.") {
		s.mu.Lock()
		s.out[key] = p
		s.mu.Unlock()
	}
}

// Del deletes key (paho: a PUBACK came) and tells its waiters.
func (s *ackStore) Del(key string) {
	s.MemoryStore.Del(key)
	s.mu.Lock()
	delete(s.out, key)
	for _, w := range s.waiters[key] {
		w.acked = true
		close(w.done)
	}
	delete(s.waiters, key)
	s.mu.Unlock()
}

// Reset empties the store (paho: a clean session's first connection):
// what it held is not acknowledged.
func (s *ackStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.MemoryStore.Reset()
	clear(s.out)
	s.dropWaiters()
}

// Close closes the store (paho: the client disconnects, if it was
// connected).
func (s *ackStore) Close() {
	s.MemoryStore.Close()
	s.shutdown()
}

// shutdown says that nothing the store holds will be acknowledged any
// more; the bus calls it when it closes, as paho does not close the store
// if the connection was down.
func (s *ackStore) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.shut)
	}
	s.dropWaiters()
}

func (s *ackStore) dropWaiters() {
	for _, ws := range s.waiters {
		for _, w := range ws {
			close(w.done)
		}
	}
	clear(s.waiters)
}

// pending returns what tells whether the publish of topic and payload
// under packet id is acknowledged, or nil if the store no longer holds it
// (acknowledged: its key is gone, or holds another publish since). What a
// closed store holds is not acknowledged.
func (s *ackStore) pending(id uint16, topic string, payload []byte) *ackWait {
	key := "o." + strconv.Itoa(int(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.out[key]
	if p == nil || p.TopicName != topic || !bytes.Equal(p.Payload, payload) {
		return nil
	}
	w := &ackWait{done: make(chan struct{})}
	if s.closed {
		close(w.done)
		return w
	}
	s.waiters[key] = append(s.waiters[key], w)
	return w
}

// ackToken is a QoS 1 publish's token that completes on the broker's
// PUBACK. Its methods may be called from several goroutines.
type ackToken struct {
	pub     paho.Token // paho's
	store   *ackStore
	topic   string
	payload []byte

	mu       sync.Mutex
	resolved bool
	err      error
	wait     *ackWait      // once paho's token completed with the publish still stored
	done     chan struct{} // made by Done
}

// Wait waits for the acknowledgement (or an error); it reports true.
func (t *ackToken) Wait() bool {
	for !t.WaitTimeout(time.Hour) {
	}
	return true
}

// WaitTimeout waits at most d for the acknowledgement (or an error); it
// reports whether the token completed.
func (t *ackToken) WaitTimeout(d time.Duration) bool {
	select {
	case <-t.pub.Done(): // the relay's usual case: no timer for it
		if _, ok := t.settle(); ok {
			return true
		}
	default:
	}
	expired := make(chan struct{})
	timer := time.AfterFunc(d, func() { close(expired) })
	defer timer.Stop()
	select {
	case <-t.pub.Done():
	case <-t.store.shut:
		// Closed: paho may never complete a publish it held while
		// reconnecting.
		select {
		case <-t.pub.Done():
		default:
			t.resolve(ErrNotAcknowledged)
			return true
		}
	case <-expired:
		select {
		case <-t.pub.Done():
		default:
			return false
		}
	}
	w, ok := t.settle()
	if ok {
		return true
	}
	select {
	case <-w.done:
	case <-expired:
		select {
		case <-w.done:
		default:
			return false
		}
	}
	if w.acked {
		t.resolve(nil)
	} else {
		t.resolve(ErrNotAcknowledged)
	}
	return true
}

// resolve completes the token with err, unless it completed already.
func (t *ackToken) resolve(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.resolved {
		t.resolved, t.err = true, err
	}
}

// settle resolves the token once paho's completed: at once, if it failed
// or the store no longer holds the publish; else it returns what to wait
// for (the same for every caller).
func (t *ackToken) settle() (*ackWait, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.resolved {
		return nil, true
	}
	if t.wait != nil {
		return t.wait, false
	}
	if err := t.pub.Error(); err != nil {
		t.resolved, t.err = true, err
		return nil, true
	}
	var id uint16
	if p, ok := t.pub.(*paho.PublishToken); ok {
		id = p.MessageID()
	}
	if id != 0 {
		t.wait = t.store.pending(id, t.topic, t.payload)
	}
	if t.wait == nil {
		t.resolved = true
		return nil, true
	}
	return t.wait, false
}

// Done is closed when the token completes.
func (t *ackToken) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		t.done = make(chan struct{})
		go func() { // ends with the acknowledgement, an error, or the bus's Close (the store tells)
			t.Wait()
			close(t.done)
		}()
	}
	return t.done
}

// Error is why the publish failed, once it completed.
func (t *ackToken) Error() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.resolved {
		return t.pub.Error()
	}
	return t.err
}
