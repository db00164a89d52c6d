package broker

import (
	"log/slog"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/sedna-go/sedna/topics"
)

// ACLHook decides what each client may publish and subscribe to. It denies
// by default; every denial is logged and counted.
//
// On the cloud: a node writes only under topics.NodePrefix(node) and reads
// only topics.DownPrefix(node) and topics.BroadcastPrefix(); a cloud user
// reads everything and writes anything but a node's subtree or downlink
// (those belong to the node and to the cloud's own bridge); an admin may do
// anything.
//
// On the edge: local apps (anonymous on loopback, or users with role app)
// read everything and write anything outside the project tree, plus their
// own node's subtree except the bridge's own topics (status, up, downack).
// Desired state, the downlink and broadcasts come only from the cloud,
// through the bridge.
type ACLHook struct {
	mqtt.HookBase
	role    Role
	node    string
	creds   *Credentials
	log     *slog.Logger
	metrics *Metrics
}

// NewACLHook makes the access-control hook of a broker.
func NewACLHook(role Role, node string, creds *Credentials, log *slog.Logger, m *Metrics) *ACLHook {
	return &ACLHook{role: role, node: node, creds: creds, log: log, metrics: m}
}

// ID names the hook.
func (h *ACLHook) ID() string { return "sedna-acl" }

// Provides says which events the hook handles.
func (h *ACLHook) Provides(b byte) bool { return b == mqtt.OnACLCheck }

// OnACLCheck allows or denies a publish (write) or a subscription or
// delivery (read) of topic, which may be a filter for subscriptions.
func (h *ACLHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	ok := h.allowed(cl, stripShare(topic), write)
	if !ok {
		action := "subscribe"
		if write {
			action = "publish"
		}
		h.log.Warn("acl denied", "action", action, "topic", topic, "client", cl.ID,
			"username", string(cl.Properties.Username), "remote", cl.Net.Remote)
		if h.metrics != nil {
			h.metrics.ACLDenied.WithLabelValues(action).Inc()
		}
	}
	return ok
}

func (h *ACLHook) allowed(cl *mqtt.Client, topic string, write bool) bool {
	u := h.creds.user(cl.Properties.Username)
	if h.role == RoleEdge {
		switch {
		case len(cl.Properties.Username) == 0:
			return LocalAppMay(h.node, topic, write)
		case u == nil:
			return false
		case u.Role == UserAdmin:
			return true
		case u.Role == UserApp:
			return LocalAppMay(h.node, topic, write)
		}
		return false
	}
	if u == nil {
		return false
	}
	switch u.Role {
	case UserAdmin:
		return true
	case UserNode:
		return NodeMay(u.Node, topic, write)
	case UserCloud:
		return CloudAppMay(topic, write)
	}
	return false
}

// stripShare removes the "$share/{group}/" of a shared subscription.
func stripShare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			return f
		}
	}
	return filter
}

// NodeMay is the rule of a node's bridge on the cloud broker.
func NodeMay(node, topic string, write bool) bool {
	if write {
		return strings.HasPrefix(topic, topics.NodePrefix(node))
	}
	return strings.HasPrefix(topic, topics.DownPrefix(node)) || strings.HasPrefix(topic, topics.BroadcastPrefix())
}

// CloudAppMay is the rule of a cloud application on the cloud broker.
func CloudAppMay(topic string, write bool) bool {
	if !write {
		return true
	}
	if strings.HasPrefix(topic, "$") {
		return false
	}
	p, _ := topics.Parse(topic)
	switch p.Class {
	case topics.ClassNodeStatus, topics.ClassUplink, topics.ClassDownAck, topics.ClassNodeEvent,
		topics.ClassNodeJob, topics.ClassNodeOther, topics.ClassDownlink, topics.ClassDownOther, topics.ClassCloudEvent,
		topics.ClassJob, topics.ClassAPIReply, topics.ClassUnknown:
		// Desired and observed state belong to the control plane: apps
		// change them through its API (ClassAPIRequest), which admits.
		return false
	}
	// A filter such as "sedna/v1/node/+/x" is not a concrete topic; Parse
	// calls it unknown above. Writes are always concrete.
	return true
}

// LocalAppMay is the rule of a local app or mapper on an edge broker.
func LocalAppMay(node, topic string, write bool) bool {
	if !write {
		return true
	}
	if strings.HasPrefix(topic, "$SYS") {
		return false
	}
	p, err := topics.Parse(topic)
	if err != nil {
		return false
	}
	switch p.Class {
	case topics.ClassForeign:
		return true
	case topics.ClassNodeEvent, topics.ClassNodeJob, topics.ClassNodeOther:
		return p.Node == node
	}
	// Status, up, downack belong to the bridge; the rest comes from the cloud.
	return false
}
