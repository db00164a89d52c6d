package broker

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/store"
)

// SessionHook keeps persistent MQTT sessions (clean session false, or an
// MQTT 5 session expiry), their subscriptions and unacknowledged messages,
// and every retained message, in the process's store, so that a restarted
// broker resumes them. It is mochi's storage interface over store.Store,
// so the broker shares the process's one database.
//
// Writes that a restart must see (a message queued for a session, a
// retained message, a subscription) complete before the broker goes on;
// deletes (a message acknowledged) are queued behind them in order and
// written with the next batch, since losing one only means a redelivery.
// Clean sessions cost nothing.
type SessionHook struct {
	mqtt.HookBase
	s   store.Store
	log *slog.Logger

	mu      sync.Mutex
	pending []sessionOp
	waiters []chan error
	kick    chan struct{}
	idle    *sync.Cond
	busy    bool
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

type sessionOp struct {
	key   []byte
	value []byte // nil: delete
	scan  bool   // delete every key with this prefix
}

// NewSessionHook makes the hook over s (give it a Sub view of its own).
func NewSessionHook(s store.Store, log *slog.Logger) *SessionHook {
	h := &SessionHook{s: s, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	h.idle = sync.NewCond(&h.mu)
	h.wg.Add(1)
	go h.writer()
	return h
}

// ID names the hook.
func (h *SessionHook) ID() string { return "sedna-sessions" }

// Provides says which events the hook handles.
func (h *SessionHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnRetainedExpired, mqtt.OnWillSent,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages:
		return true
	}
	return false
}

// Stop ends the writer after flushing; mochi calls it at Close.
func (h *SessionHook) Stop() error {
	h.once.Do(func() {
		h.flush()
		h.mu.Lock()
		h.stopped = true
		h.mu.Unlock()
		close(h.stop)
		h.wg.Wait()
	})
	return nil
}

const (
	keyClient   = "cl/"
	keySub      = "sub/"
	keyInflight = "if/"
	keyRetained = "ret/"
)

func clientKey(id string) []byte { return []byte(keyClient + id) }
func subKey(id, filter string) []byte {
	return []byte(keySub + id + "\x00" + filter)
}
func subPrefix(id string) []byte { return []byte(keySub + id + "\x00") }
func inflightKey(id string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte(keyInflight+id+"\x00"), pid)
}
func inflightPrefix(id string) []byte { return []byte(keyInflight + id + "\x00") }
func retainedKey(topic string) []byte { return []byte(keyRetained + topic) }

// persistent reports whether mochi keeps cl's session after it disconnects.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// enqueue adds ops; if wait, it returns once they are written.
func (h *SessionHook) enqueue(wait bool, ops ...sessionOp) {
	var ch chan error
	if wait {
		ch = make(chan error, 1)
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		h.log.Warn("sessions: write after the broker stopped is ignored")
		return
	}
	h.pending = append(h.pending, ops...)
	if ch != nil {
		h.waiters = append(h.waiters, ch)
	}
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
	if ch != nil {
		if err := <-ch; err != nil {
			h.log.Error("sessions: write failed; a restart may lose this session state", "error", err)
		}
	}
}

func (h *SessionHook) writer() {
	defer h.wg.Done()
	for {
		select {
		case <-h.kick:
		case <-h.stop:
			return
		}
		for {
			h.mu.Lock()
			ops, waiters := h.pending, h.waiters
			h.pending, h.waiters = nil, nil
			h.busy = len(ops) > 0
			if !h.busy {
				h.idle.Broadcast()
				h.mu.Unlock()
				break
			}
			h.mu.Unlock()
			err := h.apply(ops)
			for _, w := range waiters {
				w <- err
			}
		}
	}
}

func (h *SessionHook) apply(ops []sessionOp) error {
	// Cut where one write of the store ends: an edge node's takes about
	// 118 KiB of small records.
	budget := store.BatchBudget(h.s, 256<<10) * 3 / 4
	var b store.Batch
	var firstErr error
	flush := func() {
		if b.Len() == 0 {
			return
		}
		if err := h.s.Write(&b); err != nil && firstErr == nil {
			firstErr = err
		}
		b = store.Batch{}
	}
	for _, op := range ops {
		switch {
		case op.scan:
			flush()
			var keys [][]byte
			_ = h.s.Scan(op.key, nil, func(k, _ []byte) error {
				keys = append(keys, append([]byte{}, k...))
				return nil
			})
			for _, k := range keys {
				b.Delete(k)
				if b.Size()+store.RecordOverhead*b.Len() > budget {
					flush()
				}
			}
		case op.value == nil:
			b.Delete(op.key)
		default:
			b.Put(op.key, op.value)
		}
		if b.Size()+store.RecordOverhead*b.Len() > budget {
			flush()
		}
	}
	flush()
	return firstErr
}

// flush waits until everything queued is written.
func (h *SessionHook) flush() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
	h.mu.Lock()
	for len(h.pending) > 0 || h.busy {
		h.idle.Wait()
	}
	h.mu.Unlock()
}

func (h *SessionHook) putClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	c := storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: props.SessionExpiryInterval, SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod: props.AuthenticationMethod, AuthenticationData: props.AuthenticationData,
			RequestProblemInfo: props.RequestProblemInfo, RequestProblemInfoFlag: props.RequestProblemInfoFlag,
			RequestResponseInfo: props.RequestResponseInfo, ReceiveMaximum: props.ReceiveMaximum,
			TopicAliasMaximum: props.TopicAliasMaximum, User: props.User, MaximumPacketSize: props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}
	if v, err := c.MarshalBinary(); err == nil {
		h.enqueue(true, sessionOp{key: clientKey(cl.ID), value: v})
	}
}

func (h *SessionHook) dropClient(id string) {
	h.enqueue(false,
		sessionOp{key: clientKey(id)},
		sessionOp{key: subPrefix(id), scan: true},
		sessionOp{key: inflightPrefix(id), scan: true})
}

// OnSessionEstablished records a persistent session, or forgets an old
// persistent session of a client that now connects clean.
func (h *SessionHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) {
		h.putClient(cl)
		return
	}
	if _, err := h.s.Get(clientKey(cl.ID)); err == nil {
		h.dropClient(cl.ID)
	}
}

// OnWillSent records that the will was sent (it must not be sent again).
func (h *SessionHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) {
		h.putClient(cl)
	}
}

// OnDisconnect keeps a persistent session or forgets an expired one.
func (h *SessionHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline {
		return
	}
	if expire {
		if errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
			return
		}
		if !persistent(cl) {
			// A clean session never wrote anything.
			return
		}
		h.dropClient(cl.ID)
		return
	}
	h.putClient(cl)
}

// OnClientExpired forgets a session that outlived its expiry.
func (h *SessionHook) OnClientExpired(cl *mqtt.Client) { h.dropClient(cl.ID) }

// OnSubscribed records the subscriptions of a persistent session.
func (h *SessionHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	var ops []sessionOp
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue
		}
		s := storage.Subscription{ID: string(subKey(cl.ID, f.Filter)), T: storage.SubscriptionKey, Client: cl.ID,
			Qos: codes[i], Filter: f.Filter, Identifier: f.Identifier, NoLocal: f.NoLocal,
			RetainHandling: f.RetainHandling, RetainAsPublished: f.RetainAsPublished}
		if v, err := s.MarshalBinary(); err == nil {
			ops = append(ops, sessionOp{key: subKey(cl.ID, f.Filter), value: v})
		}
	}
	if len(ops) > 0 {
		h.enqueue(true, ops...)
	}
}

// OnUnsubscribed forgets subscriptions.
func (h *SessionHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	ops := make([]sessionOp, 0, len(pk.Filters))
	for _, f := range pk.Filters {
		ops = append(ops, sessionOp{key: subKey(cl.ID, f.Filter)})
	}
	h.enqueue(false, ops...)
}

func message(pk packets.Packet, clientID string, sent int64) storage.Message {
	props := pk.Properties.Copy(false)
	return storage.Message{
		Client: clientID, Origin: pk.Origin, PacketID: pk.PacketID, FixedHeader: pk.FixedHeader,
		TopicName: pk.TopicName, Payload: pk.Payload, Sent: sent, Created: pk.Created,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, PayloadFormatFlag: props.PayloadFormatFlag,
			MessageExpiryInterval: props.MessageExpiryInterval, ContentType: props.ContentType,
			ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, User: props.User,
		},
	}
}

// OnRetainMessage stores or deletes (r == -1) a retained message.
func (h *SessionHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if r == -1 {
		h.enqueue(true, sessionOp{key: retainedKey(pk.TopicName)})
		return
	}
	m := message(pk, cl.ID, 0)
	m.T = storage.RetainedKey
	m.ID = string(retainedKey(pk.TopicName))
	if v, err := m.MarshalBinary(); err == nil {
		h.enqueue(true, sessionOp{key: retainedKey(pk.TopicName), value: v})
	}
}

// OnRetainedExpired forgets an expired retained message.
func (h *SessionHook) OnRetainedExpired(topic string) {
	h.enqueue(false, sessionOp{key: retainedKey(topic)})
}

// OnQosPublish stores a message queued for a persistent session before
// mochi writes it to the client.
func (h *SessionHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	// A message for a taken-over client is the TakeoverHook's: it stores
	// it for the session's new connection, under a new packet ID.
	if pk.FixedHeader.Type != packets.Publish || !persistent(cl) || cl.IsTakenOver() {
		return
	}
	m := message(pk, cl.ID, sent)
	m.T = storage.InflightKey
	m.ID = string(inflightKey(cl.ID, pk.PacketID))
	if v, err := m.MarshalBinary(); err == nil {
		h.enqueue(true, sessionOp{key: inflightKey(cl.ID, pk.PacketID), value: v})
	}
}

// OnQosComplete forgets an acknowledged message. A taken-over client's
// messages were copied to the new connection under the same packet IDs, so
// mochi clearing the old client must not delete them.
func (h *SessionHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) && !cl.IsTakenOver() {
		h.enqueue(false, sessionOp{key: inflightKey(cl.ID, pk.PacketID)})
	}
}

// OnQosDropped forgets a message mochi gave up on.
func (h *SessionHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

func scanDecode[T any, P interface {
	*T
	UnmarshalBinary([]byte) error
}](h *SessionHook, prefix string) ([]T, error) {
	var out []T
	err := h.s.Scan([]byte(prefix), nil, func(_, v []byte) error {
		var x T
		if err := P(&x).UnmarshalBinary(v); err != nil {
			h.log.Warn("sessions: skipping an unreadable record", "prefix", prefix, "error", err)
			return nil
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// StoredClients returns the persistent sessions to restore.
func (h *SessionHook) StoredClients() ([]storage.Client, error) {
	return scanDecode[storage.Client](h, keyClient)
}

// StoredSubscriptions returns the subscriptions to restore.
func (h *SessionHook) StoredSubscriptions() ([]storage.Subscription, error) {
	return scanDecode[storage.Subscription](h, keySub)
}

// StoredInflightMessages returns the messages queued for sessions.
func (h *SessionHook) StoredInflightMessages() ([]storage.Message, error) {
	return scanDecode[storage.Message](h, keyInflight)
}

// StoredRetainedMessages returns the retained messages.
func (h *SessionHook) StoredRetainedMessages() ([]storage.Message, error) {
	return scanDecode[storage.Message](h, keyRetained)
}
