package bridge

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// CaptureHook is the edge half of the uplink: a publish on the edge broker
// whose topic matches an uplink Rule is appended to the durable Queue
// before mochi sends its PUBACK (mochi calls OnPublish first), so a PUBACK
// means the message is on disk with the store's write mode.
//
// Payloads on the project's envelope topics are checked; a malformed one,
// one of an unknown schema version or one over the size limit is acked,
// dead-lettered and reported, never queued. Messages published by the
// process itself (the inline client: the bridge republishing downlink
// messages) are never captured, so nothing loops.
//
// A message no uplink rule matches and no subscriber takes (neither a
// client, nor the process, nor a client away with a persistent session)
// would vanish without a trace: it is counted (metrics.Set.Unrouted, by
// topics.Family and source) and logged at debug level once per family. A
// retained one is not: the broker keeps it for later subscribers.
type CaptureHook struct {
	mqtt.HookBase
	rules   Rules
	queue   *queue.Queue
	dead    *queue.DeadLetters
	limits  topics.Limits
	direct  func(stream topics.Stream, r queue.Record)
	srv     *mqtt.Server
	metrics *metrics.Set
	log     *slog.Logger
	clock   broker.Clock

	// Draining: a planned stop refuses new publishes and waits until the
	// PUBACKs of those already taken are written, so no app resends a
	// message the node already has.
	mu       sync.Mutex
	draining bool
	pending  map[pendingAck]struct{}
	drained  chan struct{} // closed when pending empties while draining

	// The families of unrouted messages already logged, at most
	// maxUnroutedLogged of them.
	unroutedMu   sync.Mutex
	unroutedSeen map[string]struct{}
}

// maxUnroutedLogged bounds the families of unrouted messages logged (and
// remembered): apps choose their topics, so their families are unbounded.
const maxUnroutedLogged = 1024

// The sources of metrics.Set.Unrouted.
const (
	sourceApp     = "app"     // a client of the broker: an app, a mapper, a will
	sourceProcess = "process" // the node itself: the downlink, its workers
)

type pendingAck struct {
	conn net.Conn
	pid  uint16
}

// ID names the hook.
func (h *CaptureHook) ID() string { return "sedna-capture" }

// Provides says which events the hook handles.
func (h *CaptureHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnPacketSent || b == mqtt.OnDisconnect || b == mqtt.OnWillSent
}

// OnWillSent carries a client's will to the cloud when an uplink rule
// matches its topic, as a publish of it would be: mochi publishes a will
// without the OnPublish hooks (it was authorized at CONNECT). Its client
// is gone, so there is no PUBACK to hold.
func (h *CaptureHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	rule, remote, ok := h.rules.Out(pk.TopicName)
	if !ok {
		h.unrouted(cl, pk, sourceApp)
		return
	}
	pk.FixedHeader.Qos = 0
	if _, err := h.capture(cl, pk, rule, remote); err != nil && !errors.Is(err, packets.CodeSuccessIgnore) {
		h.log.Warn("a will not taken into the bridge queue", "topic", pk.TopicName, "client", cl.ID, "error", err)
	}
}

// OnPublish captures matching publishes before their PUBACK, and counts
// the unrouted ones (also before their PUBACK).
func (h *CaptureHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	rule, remote, ok := h.rules.Out(pk.TopicName)
	if !ok {
		source := sourceApp
		if cl.Net.Inline {
			source = sourceProcess
		}
		h.unrouted(cl, pk, source)
		return pk, nil
	}
	if cl.Net.Inline {
		// Never captured. Not unrouted either: the process sends what it
		// means for the cloud itself (Bridge.Send) and publishes a local
		// copy, or republishes from the downlink a topic the node also
		// carries up (such as "+/user/#").
		return pk, nil
	}
	if pk.FixedHeader.Qos > 0 {
		h.mu.Lock()
		if h.draining {
			h.mu.Unlock()
			return h.refuse(cl, pk, errDraining)
		}
		if h.pending == nil {
			h.pending = map[pendingAck]struct{}{}
		}
		h.pending[pendingAck{cl.Net.Conn, pk.PacketID}] = struct{}{}
		h.mu.Unlock()
	}
	pkx, err := h.capture(cl, pk, rule, remote)
	if err != nil && pk.FixedHeader.Qos > 0 && !errors.Is(err, packets.CodeSuccessIgnore) {
		// Refused: no PUBACK will be written.
		h.settle(pendingAck{cl.Net.Conn, pk.PacketID})
	}
	return pkx, err
}

var errDraining = errors.New("broker: the node is stopping")

// unrouted counts and logs pk, which no rule carries, if no subscriber
// takes it.
func (h *CaptureHook) unrouted(cl *mqtt.Client, pk packets.Packet, source string) {
	if pk.FixedHeader.Retain || h.srv == nil || h.subscribed(cl.ID, pk.TopicName) {
		return
	}
	family, filter := topics.Family(pk.TopicName)
	if h.metrics != nil {
		h.metrics.Unrouted.WithLabelValues(family, source).Inc()
	}
	logIt, overflow := false, false
	h.unroutedMu.Lock()
	if _, seen := h.unroutedSeen[filter]; !seen {
		if h.unroutedSeen == nil {
			h.unroutedSeen = map[string]struct{}{}
		}
		switch n := len(h.unroutedSeen); {
		case n < maxUnroutedLogged:
			h.unroutedSeen[filter], logIt = struct{}{}, true
		case n == maxUnroutedLogged:
			// "" is no family: it marks the line below as written.
			h.unroutedSeen[""], overflow = struct{}{}, true
		}
	}
	h.unroutedMu.Unlock()
	if logIt {
		h.log.Debug("message dropped: no bridge rule carries it and no subscriber takes it; later ones of its family are counted, not logged",
			"topic", pk.TopicName, "family", filter, "class", family, "source", source, "client", cl.ID)
	}
	if overflow {
		h.log.Debug("messages that no bridge rule carries and no subscriber takes: too many topic families to log each; they are still counted",
			"families", maxUnroutedLogged, "metric", "sedna_broker_unrouted_messages_total")
	}
}

// subscribed reports whether a subscriber other than the publisher
// (client) with No Local takes a message on topic.
func (h *CaptureHook) subscribed(client, topic string) bool {
	subs := h.srv.Topics.Subscribers(topic)
	if len(subs.InlineSubscriptions) > 0 || len(subs.Shared) > 0 {
		return true
	}
	for id, sub := range subs.Subscriptions {
		if !sub.NoLocal || id != client {
			return true
		}
	}
	return false
}

// OnPacketSent notes that the PUBACK of a captured publish was written,
// on a connection without an ack gate (a gated one reports it itself,
// when the bytes really leave).
func (h *CaptureHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if _, gated := broker.GateOf(cl.Net.Conn); gated {
		return
	}
	if t := pk.FixedHeader.Type; t == packets.Puback || t == packets.Pubrec {
		h.settle(pendingAck{cl.Net.Conn, pk.PacketID})
	}
}

// ackWritten is told by a gated connection that an acknowledgement left.
func (h *CaptureHook) ackWritten(c net.Conn, pid uint16) { h.settle(pendingAck{c, pid}) }

// OnDisconnect forgets the PUBACKs a client will never get.
func (h *CaptureHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.pending {
		if k.conn == cl.Net.Conn {
			delete(h.pending, k)
		}
	}
	h.checkDrainedLocked()
}

func (h *CaptureHook) settle(k pendingAck) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, k)
	h.checkDrainedLocked()
}

func (h *CaptureHook) checkDrainedLocked() {
	if h.draining && len(h.pending) == 0 && h.drained != nil {
		close(h.drained)
		h.drained = nil
	}
}

// Drain refuses new publishes and waits, at most timeout, until every
// publish already taken has had its PUBACK written.
func (h *CaptureHook) Drain(timeout time.Duration) {
	h.mu.Lock()
	h.draining = true
	if len(h.pending) == 0 {
		h.mu.Unlock()
		return
	}
	done := make(chan struct{})
	h.drained = done
	h.mu.Unlock()
	select {
	case <-done:
	case <-time.After(timeout):
		h.log.Warn("stopping with PUBACKs not yet written; their publishers will resend")
	}
}

func (h *CaptureHook) capture(cl *mqtt.Client, pk packets.Packet, rule *Rule, remote string) (packets.Packet, error) {
	dead := func(reason, detail string) (packets.Packet, error) {
		h.dead.Add(queue.DeadLetter{Component: "edge/capture", Reason: reason, Detail: detail,
			Topic: pk.TopicName, Client: cl.ID, Payload: pk.Payload})
		// Acked (so the publisher does not resend it forever) and not
		// delivered: it is in the dead-letter store instead. An MQTT 5
		// publisher learns why from the PUBACK's reason code.
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
			if reason == "too-large" {
				return pk, packets.ErrQuotaExceeded
			}
			return pk, packets.ErrPayloadFormatInvalid
		}
		return pk, packets.CodeSuccessIgnore
	}
	if reason, detail := access.CheckPayload(remote, pk.Payload, h.limits); reason != "" {
		return dead(reason, detail)
	}
	rec := queue.Record{Topic: remote, Payload: append([]byte(nil), pk.Payload...), Retain: pk.FixedHeader.Retain, QoS: rule.qos(), Time: h.clock.Now()}
	if rule.TTL > 0 {
		rec.Expires = rec.Time.Add(time.Duration(rule.TTL))
	}
	if !rule.Durable() {
		h.direct(rule.Stream, rec)
		return pk, nil
	}
	if gc, ok := broker.GateOf(cl.Net.Conn); ok && pk.FixedHeader.Qos > 0 {
		// Hold the PUBACK in the connection until the message is written,
		// and let mochi read the client's next packet meanwhile.
		// The callback keeps what it logs, not the packet: a closure over
		// pk would move the whole packet to the heap for every publish.
		pid, topic, client := pk.PacketID, pk.TopicName, cl.ID
		gc.Hold(pid)
		_, err := h.queue.AppendAsync(string(rule.Stream), []queue.Record{rec}, func(err error) {
			if err != nil {
				h.log.Warn("publish not written: dropping the connection so the client sends it again",
					"error", err, "topic", topic, "client", client)
				if h.metrics != nil {
					h.metrics.Refused.WithLabelValues("store-error").Inc()
				}
				gc.Fail(pid)
				return
			}
			gc.Release(pid)
		})
		if err != nil {
			gc.Release(pid) // no PUBACK will be written for it
			return h.refuse(cl, pk, err)
		}
		return pk, nil
	}
	if _, err := h.queue.Append(string(rule.Stream), []queue.Record{rec}, nil); err != nil {
		return h.refuse(cl, pk, err)
	}
	return pk, nil
}

// refuse answers a publish that could not be queued: MQTT 5 clients get a
// reason code; MQTT 3.1.1 has none, so the publish gets no PUBACK and the
// client is disconnected, to send it again when it reconnects.
func (h *CaptureHook) refuse(cl *mqtt.Client, pk packets.Packet, err error) (packets.Packet, error) {
	reason, code := "store-error", packets.ErrUnspecifiedError
	switch {
	case errors.Is(err, queue.ErrFull):
		reason, code = "queue-full", packets.ErrQuotaExceeded
	case errors.Is(err, store.ErrFull):
		reason, code = "disk-full", packets.ErrQuotaExceeded
	case errors.Is(err, errDraining), errors.Is(err, store.ErrClosed):
		reason, code = "stopping", packets.ErrServerShuttingDown
	}
	if h.metrics != nil {
		h.metrics.Refused.WithLabelValues(reason).Inc()
	}
	h.log.Warn("publish refused: not taken into the bridge queue", "reason", reason, "error", err,
		"topic", pk.TopicName, "client", cl.ID, "qos", pk.FixedHeader.Qos)
	if pk.FixedHeader.Qos == 0 {
		return pk, packets.ErrRejectPacket
	}
	if cl.Properties.ProtocolVersion == 5 {
		return pk, code
	}
	if h.srv != nil {
		_ = h.srv.DisconnectClient(cl, code)
	}
	return pk, packets.ErrRejectPacket
}
