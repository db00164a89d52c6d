package cloudlink

import (
	"bytes"
	"errors"
	"strconv"
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
type ackStore struct {
	*paho.MemoryStore
	mu      sync.Mutex
	waiters map[string][]*ackWait
	closed  bool // by Close, until Open: what it held is not acknowledged
}

// ackWait is told how a publish left the store: done is closed once acked
// is set.
type ackWait struct {
	done  chan struct{}
	acked bool // deleted on its PUBACK, not dropped by a reset or close
}

func newAckStore() *ackStore {
	return &ackStore{MemoryStore: paho.NewMemoryStore(), waiters: map[string][]*ackWait{}}
}

// Del deletes key (paho: a PUBACK came) and tells its waiters.
func (s *ackStore) Del(key string) {
	s.MemoryStore.Del(key)
	s.mu.Lock()
	for _, w := range s.waiters[key] {
		w.acked = true
		close(w.done)
	}
	delete(s.waiters, key)
	s.mu.Unlock()
}

// Reset empties the store (paho: a clean session's first connection).
func (s *ackStore) Reset() {
	s.MemoryStore.Reset()
	s.dropAll()
}

// Open opens the store (paho: at each Connect).
func (s *ackStore) Open() {
	s.MemoryStore.Open()
	s.mu.Lock()
	s.closed = false
	s.mu.Unlock()
}

// Close closes the store (paho: the client disconnects).
func (s *ackStore) Close() {
	s.MemoryStore.Close()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.dropAll()
}

func (s *ackStore) dropAll() {
	s.mu.Lock()
	for _, ws := range s.waiters {
		for _, w := range ws {
			close(w.done)
		}
	}
	clear(s.waiters)
	s.mu.Unlock()
}

// pending returns what tells whether the publish of topic and payload
// under packet id is acknowledged, or nil if the store no longer holds it
// (acknowledged: its key is gone, or holds another publish since). A
// closed store holds nothing that will be: its publishes are not
// acknowledged.
func (s *ackStore) pending(id uint16, topic string, payload []byte) *ackWait {
	key := "o." + strconv.Itoa(int(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		w := &ackWait{done: make(chan struct{})}
		close(w.done) // not acknowledged
		return w
	}
	p, ok := s.MemoryStore.Get(key).(*packets.PublishPacket)
	if !ok || p.TopicName != topic || !bytes.Equal(p.Payload, payload) {
		return nil
	}
	w := &ackWait{done: make(chan struct{})}
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
	deadline := time.Now().Add(d)
	if !t.pub.WaitTimeout(d) {
		return false
	}
	w, ok := t.settle()
	if ok {
		return true
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-w.done:
		t.mu.Lock()
		defer t.mu.Unlock()
		t.resolved = true
		if !w.acked {
			t.err = ErrNotAcknowledged
		}
		return true
	case <-timer.C:
		return false
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
