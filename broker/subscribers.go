package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/topics"
)

// SubscriberLimits bound what one client's subscriptions may cost a broker,
// so that a subscriber that reads slowly, or not at all, never slows
// another client (docs/ARCHITECTURE.md, "Slow subscribers").
type SubscriberLimits struct {
	// MaxPending bounds a connected client's messages sent and not yet
	// acknowledged; default 8,192.
	MaxPending int `json:"maxPending,omitempty"`
	// MaxPendingBytes bounds their bytes, and the bytes waiting for the
	// client's socket to take them; default 16 MiB (4 MiB on a node).
	MaxPendingBytes int64 `json:"maxPendingBytes,omitempty"`
	// MaxSessionMessages bounds what a persistent session keeps while its
	// client is away; default 65,535 (MQTT's packet IDs).
	MaxSessionMessages int `json:"maxSessionMessages,omitempty"`
	// MaxSessionBytes bounds their bytes; default 64 MiB (16 MiB on a node).
	MaxSessionBytes int64 `json:"maxSessionBytes,omitempty"`
	// Disabled leaves mochi's own behaviour (a full client queue drops
	// messages, QoS 1 included, and nothing is counted): for the control
	// run of a measurement only.
	Disabled bool `json:"-"`
}

func (l SubscriberLimits) withDefaults(role access.Role) SubscriberLimits {
	if l.MaxPending <= 0 {
		l.MaxPending = 8192
	}
	if l.MaxPendingBytes <= 0 {
		l.MaxPendingBytes = 16 << 20
		if role == access.RoleEdge {
			l.MaxPendingBytes = 4 << 20
		}
	}
	if l.MaxSessionMessages <= 0 || l.MaxSessionMessages > 65535 {
		l.MaxSessionMessages = 65535
	}
	if l.MaxSessionBytes <= 0 {
		l.MaxSessionBytes = 64 << 20
		if role == access.RoleEdge {
			l.MaxSessionBytes = 16 << 20
		}
	}
	return l
}

// SubscriberHook keeps slow subscribers from slowing anyone else.
//
// mochi hands a message to a connected subscriber by a non-blocking send
// into the client's queue and drops it, QoS 1 too, when the queue is full
// (measured: 46% of 100,000 QoS 1 messages lost by one slow paho
// subscriber). The broker used to make publishers wait instead; then one
// subscriber that never read stalled every publisher to its topics (1,983
// of 10,000 messages reached a normal subscriber in 60 s). Now nobody
// waits for a subscriber:
//
//   - A connected client whose messages sent and not acknowledged exceed
//     MaxPending or MaxPendingBytes, or whose socket leaves more than
//     MaxPendingBytes unread (gatedConn), is disconnected at once, before
//     its queue can fill and drop anything.
//   - A clean session ends there: what it had not acknowledged is lost, as
//     MQTT says of a clean session; it is counted
//     (sedna_broker_lost_messages_total{reason="slow-clean-session"}),
//     logged, and reported as an error event naming the client.
//   - A persistent session keeps everything: its messages stay in the
//     session (in the store, with the SessionHook) and new ones are added
//     while its client is away, up to MaxSessionMessages and
//     MaxSessionBytes; past them a message for it is dropped, counted and
//     reported, since a session kept without bound would let any client
//     take the broker's memory and disk. When the client returns, what the
//     session kept is sent again, and that burst does not count against
//     it.
//
// A session is taken over by one connection at a time. mochi (v2.7.9)
// looks up the session of a client ID (inheritClientSession), takes it
// over (copies its in-flight messages, clears them) and only then makes
// the new connection the session's client (Clients.Add), without a lock
// around the three: two connections of one client ID that log in at once
// both take over the same old client, and the one added second replaces
// the first without disconnecting it or marking it taken over. The
// messages published to the first meanwhile stay in its in-flight set,
// which nothing ever sends again; if the first is the one added last,
// the client's live connection gets nothing at all until it reconnects.
// It happens to a slow persistent subscriber: its session is big, its
// takeover (thousands of in-flight messages copied and cleared, one by
// one through the hooks) can outlast under load the client's wait for
// its CONNACK, and the client connects again while it runs (seen: 1 of
// 10,000 messages lost in a loaded run of
// TestSlowPersistentSubscriberLosesNothing, up to 4 connections taking
// over one old client at once; TestConcurrentTakeoversOfOneSessionLoseNothing
// makes it happen every time).
// So a connection waits, before mochi looks its session up
// (OnSessionEstablish), until the previous connection of its client ID has
// finished its own takeover: until mochi reads that connection's packets
// (all its OnSessionEstablished hooks have run) or the connection ended.
// A connection that comes while a takeover of its session is under way
// waits before it logs in (OnConnect), and is dropped if its client has
// given up on it meanwhile: a takeover of a big session takes a while, and
// one for nobody only delays the one the client waits for.
type SubscriberHook struct {
	mqtt.HookBase
	limits  SubscriberLimits
	metrics *metrics.Set
	log     *slog.Logger
	report  func(topics.ErrorEvent)

	states sync.Map // client ID -> *subState: a session outlives its client objects

	turnMu sync.Mutex
	turns  map[string]*turns // by client ID, while a connection takes over its session
	// observe, if set, is told when a connection waits for another one's
	// takeover ("waits") and when one is dropped as abandoned (tests).
	observe func(clientID, event string)
}

// turns are the connections of a client ID that take over its session,
// one after the other.
type turns struct {
	queue []chan struct{} // the first one's turn is now; each next one's channel is closed when its turn comes
	idle  chan struct{}   // closed once the queue is empty
}

type subState struct {
	mu    sync.Mutex
	owner *mqtt.Client   // the session's current client object
	pids  map[uint16]int // packet ID -> payload bytes, of messages not acknowledged
	bytes int64
	// resent are the messages sent again when the client last connected,
	// not yet acknowledged, and bursty their bytes: allowed beyond the
	// limits.
	resent  map[uint16]bool
	bursty  int64
	dropped int // messages dropped while the client was away
	offline bool
}

// NewSubscriberHook makes the hook; report, if set, receives the error
// events it raises.
func NewSubscriberHook(l SubscriberLimits, role access.Role, m *metrics.Set, log *slog.Logger, report func(topics.ErrorEvent)) *SubscriberHook {
	return &SubscriberHook{limits: l.withDefaults(role), metrics: m, log: log, report: report}
}

// ID names the hook.
func (h *SubscriberHook) ID() string { return "sedna-subscribers" }

// Provides says which events the hook handles.
func (h *SubscriberHook) Provides(b byte) bool {
	if h.limits.Disabled {
		return false
	}
	switch b {
	case mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnDisconnect, mqtt.OnConnect,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnPublishDropped, mqtt.OnClientExpired:
		return true
	}
	return false
}

func (h *SubscriberHook) state(cl *mqtt.Client) *subState {
	if v, ok := h.states.Load(cl.ID); ok {
		return v.(*subState)
	}
	v, _ := h.states.LoadOrStore(cl.ID, &subState{owner: cl, pids: map[uint16]int{}})
	return v.(*subState)
}

// errAbandoned drops a connection its client gave up on.
var errAbandoned = errors.New("broker: connection dropped: its client gave up on it while another connection of its client ID took over its session")

// OnConnect makes a connection that comes while another one of its client
// ID takes over its session wait until that is done, and drops it if its
// client has closed it meanwhile (see SubscriberHook).
func (h *SubscriberHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	g, ok := cl.Net.Conn.(*gatedConn)
	if !ok || cl.Net.Inline {
		return nil
	}
	h.turnMu.Lock()
	var idle chan struct{}
	if t := h.turns[cl.ID]; t != nil {
		idle = t.idle
	}
	h.turnMu.Unlock()
	if idle == nil {
		return nil
	}
	h.log.Debug("a connection waits for another one of its client ID to take over its session first", "client", cl.ID)
	if h.observe != nil {
		h.observe(cl.ID, "waits")
	}
	<-idle
	if g.peerGone() {
		h.log.Info("connection dropped: its client gave up on it while another one took over its session", "client", cl.ID, "remote", cl.Net.Remote)
		if h.metrics != nil {
			h.metrics.ConnectRefused.WithLabelValues("abandoned").Inc()
		}
		if h.observe != nil {
			h.observe(cl.ID, "abandoned")
		}
		return errAbandoned
	}
	return nil
}

// OnSessionEstablish waits until no other connection of the client's ID
// is taking over its session, and makes the others wait until this one
// has (see SubscriberHook). Only a gated connection takes part: its end is
// known, so its turn always ends. A connection whose turn comes while the
// broker closes is closed: mochi, which disconnects the clients it knows
// when it closes, does not know this one yet.
func (h *SubscriberHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	g, ok := cl.Net.Conn.(*gatedConn)
	if !ok || cl.Net.Inline {
		return
	}
	g.holdUntilRead(h.takeTurn(cl.ID))
	if g.shuttingDown() {
		_ = g.Close()
	}
}

// takeTurn waits for the turn of a connection of client ID id, and
// returns what ends it (once; any later call does nothing).
func (h *SubscriberHook) takeTurn(id string) (done func()) {
	me := make(chan struct{})
	h.turnMu.Lock()
	if h.turns == nil {
		h.turns = map[string]*turns{}
	}
	t := h.turns[id]
	if t == nil {
		t = &turns{idle: make(chan struct{})}
		h.turns[id] = t
	}
	t.queue = append(t.queue, me)
	ahead := len(t.queue) - 1
	h.turnMu.Unlock()
	if ahead > 0 {
		h.log.Debug("a connection waits for another one of its client ID to take over its session first", "client", id, "ahead", ahead)
		if h.observe != nil {
			h.observe(id, "waits")
		}
		<-me
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.turnMu.Lock()
			defer h.turnMu.Unlock()
			if t.queue[0] != me {
				return // cannot happen: only the first of the queue has a turn to end
			}
			t.queue = t.queue[1:]
			if len(t.queue) > 0 {
				close(t.queue[0])
				return
			}
			close(t.idle)
			delete(h.turns, id)
		})
	}
}

// OnSessionEstablished counts what the client's session holds (a session
// it took over, or a new one), all of it resent now and allowed beyond
// the limits until acknowledged.
func (h *SubscriberHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	st := h.state(cl)
	st.mu.Lock()
	st.owner, st.offline, st.dropped = cl, false, 0
	clear(st.pids)
	st.bytes = 0
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish {
			st.pids[pk.PacketID] = len(pk.Payload)
			st.bytes += int64(len(pk.Payload))
		}
	}
	st.resent = make(map[uint16]bool, len(st.pids))
	for pid := range st.pids {
		st.resent[pid] = true
	}
	st.bursty = st.bytes
	st.mu.Unlock()
	if g, ok := cl.Net.Conn.(*gatedConn); ok {
		g.establish(h.limits.MaxPendingBytes)
	}
}

// OnClientExpired forgets a persistent session that expired.
func (h *SubscriberHook) OnClientExpired(cl *mqtt.Client) { h.states.Delete(cl.ID) }

// OnQosPublish counts a message sent (or queued) to a client, and
// disconnects a connected client that is over its limits.
func (h *SubscriberHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if cl.Net.Inline || pk.FixedHeader.Type != packets.Publish {
		return
	}
	st := h.state(cl)
	st.mu.Lock()
	if _, known := st.pids[pk.PacketID]; !known { // a resend is counted once
		st.pids[pk.PacketID] = len(pk.Payload)
		st.bytes += int64(len(pk.Payload))
	}
	why := ""
	if !st.offline {
		switch {
		case len(st.pids) > h.limits.MaxPending+len(st.resent):
			why = fmt.Sprintf("%d messages not acknowledged, over the limit of %d", len(st.pids)-len(st.resent), h.limits.MaxPending)
		case st.bytes > h.limits.MaxPendingBytes+st.bursty:
			why = fmt.Sprintf("%d bytes not acknowledged, over the limit of %d", st.bytes-st.bursty, h.limits.MaxPendingBytes)
		}
	}
	st.mu.Unlock()
	// A connection is judged once its session is established: before, mochi
	// is sending the session again (the burst established allows for).
	if why != "" {
		if g, ok := cl.Net.Conn.(*gatedConn); ok && g.isEstablished() {
			g.slowDown(why)
		}
	}
}

// Full reports whether a message may not be added to cl's session: its
// client is away and the session is at its limits. The
// message is then not delivered (the authorization hook refuses it before
// mochi queues it), and counted.
func (h *SubscriberHook) Full(cl *mqtt.Client) bool {
	if h.limits.Disabled || cl.Net.Inline {
		return false
	}
	v, ok := h.states.Load(cl.ID)
	if !ok {
		return false
	}
	st := v.(*subState)
	st.mu.Lock()
	full := st.offline && (len(st.pids) >= h.limits.MaxSessionMessages || st.bytes > h.limits.MaxSessionBytes)
	first := false
	if full {
		st.dropped++
		first = st.dropped == 1
	}
	st.mu.Unlock()
	if full {
		h.lost("session-full", 1)
		if first {
			ev := topics.ErrorEvent{Component: "broker/subscribers", Reason: "session-full", Client: cl.ID,
				Detail: fmt.Sprintf("the session of %s (user %q) is full while its client is away (%d messages, %d bytes kept): messages for it are dropped until it returns",
					cl.ID, cl.Properties.Username, h.limits.MaxSessionMessages, h.limits.MaxSessionBytes)}
			h.log.Warn("session full: dropping messages for it", "client", cl.ID, "username", string(cl.Properties.Username))
			h.raise(ev)
		}
	}
	return full
}

// OnQosComplete forgets an acknowledged message.
func (h *SubscriberHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.done(cl, pk.PacketID) }

// OnQosDropped forgets a message mochi dropped (expired).
func (h *SubscriberHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.done(cl, pk.PacketID) }

func (h *SubscriberHook) done(cl *mqtt.Client, pid uint16) {
	v, ok := h.states.Load(cl.ID)
	if !ok {
		return
	}
	st := v.(*subState)
	st.mu.Lock()
	if n, ok := st.pids[pid]; ok {
		delete(st.pids, pid)
		st.bytes -= int64(n)
		if st.resent[pid] {
			delete(st.resent, pid)
			st.bursty -= int64(n)
		}
	}
	st.mu.Unlock()
}

// OnPublishDropped counts a message mochi dropped because the client's
// queue was full: with the limits on, only a QoS 0 message can meet a
// full queue (its socket is read, but slower than the messages come).
func (h *SubscriberHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	reason := "queue-full-qos0"
	if pk.FixedHeader.Qos > 0 {
		reason = "queue-full"
	}
	h.lost(reason, 1)
}

// OnDisconnect ends a clean session's count (reporting what a slow one
// lost) and keeps a persistent session's, now offline.
func (h *SubscriberHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline {
		return
	}
	slow := ""
	if g, ok := cl.Net.Conn.(*gatedConn); ok {
		slow = g.slowReason()
	}
	var pending int
	var bytes int64
	// A client taken over leaves its session to the new one.
	if v, ok := h.states.Load(cl.ID); ok && !cl.IsTakenOver() {
		st := v.(*subState)
		st.mu.Lock()
		if st.owner == cl {
			pending, bytes = len(st.pids), st.bytes
			if expire {
				h.states.Delete(cl.ID)
			} else {
				st.offline, st.resent, st.bursty = true, nil, 0
			}
		}
		st.mu.Unlock()
	}
	if slow == "" {
		return
	}
	kind := "persistent"
	if expire {
		kind = "clean"
	}
	if h.metrics != nil {
		h.metrics.SlowDisconnects.WithLabelValues(kind).Inc()
	}
	ev := topics.ErrorEvent{Component: "broker/subscribers", Reason: "slow-subscriber", Client: cl.ID}
	if expire {
		h.lost("slow-clean-session", pending)
		ev.Detail = fmt.Sprintf("%s (user %q) was disconnected for reading too slowly (%s); its clean session lost %d messages not acknowledged",
			cl.ID, cl.Properties.Username, slow, pending)
	} else {
		ev.Detail = fmt.Sprintf("%s (user %q) was disconnected for reading too slowly (%s); its session keeps its %d messages (%d bytes) for when it returns",
			cl.ID, cl.Properties.Username, slow, pending, bytes)
	}
	h.log.Warn("slow subscriber disconnected", "client", cl.ID, "username", string(cl.Properties.Username), "why", slow,
		"session", kind, "pending", pending)
	h.raise(ev)
}

func (h *SubscriberHook) lost(reason string, n int) {
	if h.metrics != nil && n > 0 {
		h.metrics.Lost.WithLabelValues(reason).Add(float64(n))
	}
}

func (h *SubscriberHook) raise(ev topics.ErrorEvent) {
	if h.report != nil {
		h.report(ev)
	}
}
