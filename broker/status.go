package broker

import (
	"log/slog"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/topics"
)

// StatusHook keeps a node's retained status that of its latest session.
//
// A bridge's will says "offline" for the connection it was set on. When a
// node reconnects while the broker still holds its old, half-open
// connection, the old connection's will can land after the new one said
// "online" (measured: a bridge that timed out behind a slow subscriber
// reconnected, and the cloud kept the node offline while it was connected).
// Every status carries its session number (topics.NodeStatus.Session);
// this hook remembers the latest status of each node and, when a will of
// an older session is about to be published, publishes the latest status
// again instead, so the retained topic and every subscriber see the
// node's real state. Consumers apply NodeStatus.Supersedes too, for
// brokers where no hook runs.
type StatusHook struct {
	mqtt.HookBase
	log *slog.Logger

	mu     sync.Mutex
	latest map[string]nodeStatusSeen
}

type nodeStatusSeen struct {
	st      topics.NodeStatus
	payload []byte
}

// NewStatusHook makes the hook.
func NewStatusHook(log *slog.Logger) *StatusHook {
	return &StatusHook{log: log, latest: map[string]nodeStatusSeen{}}
}

// ID names the hook.
func (h *StatusHook) ID() string { return "sedna-node-status" }

// Provides says which events the hook handles.
func (h *StatusHook) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnWill }

// decodeStatus returns the node and status of a status message.
func decodeStatus(topic string, payload []byte) (string, topics.NodeStatus, bool) {
	p, err := topics.Parse(topic)
	if err != nil || p.Class != topics.ClassNodeStatus || len(payload) == 0 {
		return "", topics.NodeStatus{}, false
	}
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil {
		return "", topics.NodeStatus{}, false
	}
	var st topics.NodeStatus
	if env.DecodeBody(&st) != nil {
		return "", topics.NodeStatus{}, false
	}
	return p.Node, st, true
}

// OnPublish notes each status a bridge publishes.
func (h *StatusHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !strings.HasSuffix(pk.TopicName, "/status") { // every publish passes here: most are frames
		return pk, nil
	}
	if node, st, ok := decodeStatus(pk.TopicName, pk.Payload); ok {
		h.note(node, st, pk.Payload)
	}
	return pk, nil
}

// note keeps st if it supersedes what is known; it reports whether it did.
func (h *StatusHook) note(node string, st topics.NodeStatus, payload []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.latest[node]; ok && !st.Supersedes(old.st) {
		return false
	}
	h.latest[node] = nodeStatusSeen{st: st, payload: append([]byte(nil), payload...)}
	return true
}

// OnWill replaces a stale will by the node's latest status.
func (h *StatusHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	node, st, ok := decodeStatus(will.TopicName, will.Payload)
	if !ok || h.note(node, st, will.Payload) {
		return will, nil
	}
	h.mu.Lock()
	cur := h.latest[node]
	h.mu.Unlock()
	h.log.Info("a will of an older session of the node: its latest status is published instead",
		"node", node, "will_session", st.Session, "session", cur.st.Session, "state", cur.st.State)
	will.Payload = cur.payload
	will.Retain = true
	return will, nil
}
