package access

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/topics"
)

// The one authorization point of both brokers. Every way a message can
// enter a broker is a Path, every sender or reader a Principal, and
// Authorize alone decides, so that no path (a will, a retained message, a
// message inside a bridge frame, a publish made by the process on behalf
// of someone) is a way around the rules: docs/SECURITY.md is the model.

// Role says which side of the bridge a broker serves; the side decides
// who may connect and what each principal may use (Authorize).
type Role string

// The roles.
const (
	// RoleEdge: the broker of an edge node; anonymous clients on loopback
	// are local apps and mappers, as KubeEdge expects.
	RoleEdge Role = "edge"
	// RoleCloud: the cloud broker; every client authenticates and nodes
	// are confined to their own subtree.
	RoleCloud Role = "cloud"
)

// PrincipalKind is what a sender or reader is to a broker.
type PrincipalKind uint8

// The kinds of principals.
const (
	// Nobody is no one the broker knows: refused everything.
	Nobody PrincipalKind = iota
	// LocalApp is an app or mapper on an edge node: anonymous on loopback,
	// or a user of role app (or admin) from elsewhere.
	LocalApp
	// NodeBridge is a node's bridge on the cloud broker (role node).
	NodeBridge
	// Operator is a cloud user who runs jobs (role operator).
	Operator
	// Viewer is a cloud user who only reads (role viewer).
	Viewer
	// Admin is a cloud user who may also define worker commands (role
	// admin). On topics it has an operator's rights: desired state goes
	// through the control plane's admission, whoever asks.
	Admin
	// CloudDownlink is the cloud speaking on an edge broker: what the
	// node's bridge republishes from its downlink.
	CloudDownlink
	// System is the process itself: the control plane, the agent, the
	// built-in workers.
	System
)

var kindNames = [...]string{"nobody", "local-app", "node", "operator", "viewer", "admin", "cloud-downlink", "system"}

// String names the kind.
func (k PrincipalKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Principal is who sends or reads a message.
type Principal struct {
	Kind PrincipalKind
	// User is the username, if the principal logged in with one.
	User string
	// Node is the node a NodeBridge speaks for.
	Node string
}

// SystemPrincipal is the process itself, named by its component.
func SystemPrincipal(component string) Principal { return Principal{Kind: System, User: component} }

// NodePrincipal is node's bridge.
func NodePrincipal(node string) Principal { return Principal{Kind: NodeBridge, Node: node} }

// LocalAppPrincipal is an anonymous app on an edge node.
var LocalAppPrincipal = Principal{Kind: LocalApp}

// CloudDownlinkPrincipal is the cloud, through a node's downlink.
var CloudDownlinkPrincipal = Principal{Kind: CloudDownlink}

// String is how logs name a principal.
func (p Principal) String() string {
	switch {
	case p.Kind == NodeBridge:
		return "node " + p.Node
	case p.User != "":
		return p.Kind.String() + " " + p.User
	}
	return p.Kind.String()
}

// Path is how a message enters a broker, or how it is read.
type Path uint8

// The paths.
const (
	// PathPublish is a client's PUBLISH.
	PathPublish Path = iota
	// PathRetain is a client's PUBLISH with the retain flag: it stays on
	// the topic for every later subscriber.
	PathRetain
	// PathWill is the will a client gives at CONNECT, published by the
	// broker when the connection drops.
	PathWill
	// PathFrame is one message inside a bridge frame: a node's, on the
	// cloud broker; the cloud's, on a node's broker.
	PathFrame
	// PathInline is a publish by the process itself, on behalf of the
	// principal.
	PathInline
	// PathSubscribe is a subscription filter, or a message delivered to a
	// subscriber.
	PathSubscribe
)

var pathNames = [...]string{"publish", "retain", "will", "frame", "inline", "subscribe"}

// String names the path.
func (p Path) String() string {
	if int(p) < len(pathNames) {
		return pathNames[p]
	}
	return fmt.Sprintf("path(%d)", int(p))
}

// ErrNotAuthorized wraps every refusal of Authorize.
var ErrNotAuthorized = errors.New("not authorized")

func deny(p Principal, path Path, topic, why string) error {
	return fmt.Errorf("%w: %s may not %s %q: %s", ErrNotAuthorized, p, path, topic, why)
}

// Authorize decides whether principal p may use topic by path on the
// broker of side (node is the edge broker's node). It returns nil or an
// error wrapping ErrNotAuthorized that says why. For PathSubscribe the
// topic may be a filter.
func Authorize(side Role, node string, p Principal, path Path, topic string) error {
	if path == PathSubscribe {
		if err := topics.ValidateFilter(stripShare(topic)); err != nil {
			return deny(p, path, topic, err.Error())
		}
		return authorizeRead(side, p, stripShare(topic))
	}
	if err := topics.ValidateTopic(topic); err != nil {
		return deny(p, path, topic, err.Error())
	}
	if len(topic) >= 4 && strings.EqualFold(topic[:4], "$SYS") {
		return deny(p, path, topic, "$SYS belongs to the broker")
	}
	if side == RoleEdge {
		return authorizeEdgeWrite(node, p, path, topic)
	}
	return authorizeCloudWrite(p, path, topic)
}

func authorizeRead(side Role, p Principal, filter string) error {
	switch p.Kind {
	case System:
		return nil
	case NodeBridge:
		if side == RoleCloud && (strings.HasPrefix(filter, topics.DownPrefix(p.Node)) || strings.HasPrefix(filter, topics.BroadcastPrefix())) {
			return nil
		}
		return deny(p, PathSubscribe, filter, "a node reads only its own downlink and broadcasts")
	case LocalApp:
		if side == RoleEdge {
			return nil
		}
	case Operator, Viewer, Admin:
		if side != RoleCloud {
			break
		}
		// Anyone's replies but their own are refused, as filters and per
		// message: a filter such as "#" is fine, the other users' replies
		// it would match are not delivered. (No allocation: this runs for
		// every delivery.)
		if rest, ok := strings.CutPrefix(filter, topics.APIReplyPrefix()); ok {
			// The user's level as topics.Level writes it; allocates only
			// for a user whose name has a dot.
			if own, ok := strings.CutPrefix(rest, topics.Level(p.User)); !ok || p.User == "" || !strings.HasPrefix(own, "/") {
				return deny(p, PathSubscribe, filter, "the replies of other users")
			}
		}
		return nil
	}
	return deny(p, PathSubscribe, filter, p.Kind.String()+" reads nothing on a "+string(side)+" broker")
}

func authorizeCloudWrite(p Principal, path Path, topic string) error {
	if p.Kind == System {
		return nil
	}
	pr, perr := topics.Parse(topic)
	switch p.Kind {
	case NodeBridge:
		return nodeWrite(p, path, topic, pr, perr)
	case Operator, Admin, Viewer:
		return userWrite(p, path, topic, pr, perr)
	}
	return deny(p, path, topic, p.Kind.String()+" writes nothing on the cloud broker")
}

// nodeWrite: a bridge publishes its status (which is also its will), its
// frames and its downlink acknowledgements itself; everything else of its
// node comes inside frames, where the ingress checks it.
func nodeWrite(p Principal, path Path, topic string, pr topics.Parsed, perr error) error {
	if perr != nil || pr.Node != p.Node || !strings.HasPrefix(topic, topics.NodePrefix(p.Node)) {
		return deny(p, path, topic, "a node writes only under "+topics.NodePrefix(p.Node))
	}
	own := pr.Class == topics.ClassNodeStatus || pr.Class == topics.ClassUplink || pr.Class == topics.ClassDownAck
	switch path {
	case PathPublish:
		if own {
			return nil
		}
		return deny(p, path, topic, "a node's bridge publishes its status, frames and acknowledgements; the rest travels in frames")
	case PathRetain, PathWill:
		if pr.Class == topics.ClassNodeStatus {
			return nil
		}
		return deny(p, path, topic, "only a node's status is retained or a will")
	case PathFrame, PathInline:
		if own {
			return deny(p, path, topic, "the bridge's own topics are not relayed")
		}
		return nil
	}
	return deny(p, path, topic, "not a path of a node")
}

// userWrite: cloud users talk to the control plane through their own
// request topic, reach nodes' apps and KubeEdge devices through their
// downlinks, broadcast, and use any topic outside the project's tree.
// Desired and observed state (specs, statuses, a node's subtree, its
// outbox of jobs) belong to the control plane and the nodes.
func userWrite(p Principal, path Path, topic string, pr topics.Parsed, perr error) error {
	if perr != nil {
		return deny(p, path, topic, perr.Error())
	}
	if path == PathFrame || path == PathInline {
		return deny(p, path, topic, "users do not send frames")
	}
	if p.Kind == Viewer {
		if path == PathPublish && pr.Class == topics.ClassAPIRequest && pr.User == p.User {
			return nil
		}
		return deny(p, path, topic, "a viewer only sends requests, on its own request topic")
	}
	switch pr.Class {
	case topics.ClassForeign:
		if strings.HasPrefix(topic, "$") {
			return deny(p, path, topic, "topics starting with $ belong to the broker")
		}
		return nil
	case topics.ClassAPIRequest:
		if pr.User != p.User {
			return deny(p, path, topic, "requests go on the user's own topic "+topics.APIRequestTopic(p.User))
		}
		if path != PathPublish {
			return deny(p, path, topic, "a request is never retained nor a will: it would be replayed later")
		}
		return nil
	case topics.ClassToNode:
		if path == PathWill {
			return deny(p, path, topic, "a message for a node is never a will")
		}
		if strings.HasPrefix(pr.Rest, "app/") || strings.HasPrefix(pr.Rest, "kubeedge/") {
			return nil
		}
		return deny(p, path, topic, "users write a node's app/ and kubeedge/ topics; jobs reach nodes through the control plane")
	case topics.ClassBroadcast:
		if path == PathPublish {
			return nil
		}
		return deny(p, path, topic, "a broadcast is never retained nor a will")
	case topics.ClassJob:
		if topics.IsJobLabel(pr) {
			if path == PathPublish {
				return nil
			}
			return deny(p, path, topic, "a label is never retained nor a will")
		}
	}
	return deny(p, path, topic, "desired and observed state belong to the control plane and the nodes: use the API")
}

// authorizeEdgeWrite: on an edge broker, local apps write anything outside
// the project's tree and their node's events, job reports and relayed
// topics; the cloud (through the downlink) writes job state and anything
// outside the tree; only the bridge writes the node's status, frames and
// acknowledgements.
func authorizeEdgeWrite(node string, p Principal, path Path, topic string) error {
	if p.Kind == System {
		return nil
	}
	pr, perr := topics.Parse(topic)
	switch p.Kind {
	case LocalApp:
		if path == PathFrame {
			return deny(p, path, topic, "apps do not send frames")
		}
		if perr != nil {
			return deny(p, path, topic, perr.Error())
		}
		switch pr.Class {
		case topics.ClassForeign:
			return nil
		case topics.ClassNodeEvent, topics.ClassNodeJob, topics.ClassNodeOther:
			if pr.Node == node {
				return nil
			}
			return deny(p, path, topic, "another node's subtree")
		}
		return deny(p, path, topic, "desired state, the downlink and broadcasts come only from the cloud; status, frames and acknowledgements only from the bridge")
	case CloudDownlink:
		if path != PathFrame && path != PathInline {
			return deny(p, path, topic, "the cloud speaks only through the downlink")
		}
		if perr != nil {
			return deny(p, path, topic, perr.Error())
		}
		switch pr.Class {
		case topics.ClassForeign, topics.ClassJob, topics.ClassBroadcast:
			return nil
		}
		return deny(p, path, topic, "the downlink delivers job state, broadcasts and topics outside the tree, never a node's own topics")
	}
	return deny(p, path, topic, p.Kind.String()+" writes nothing on an edge broker")
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

// principalOf is who a connected client is on the broker of side.
func principalOf(side Role, creds *Credentials, cl *mqtt.Client) Principal {
	if cl.Net.Inline {
		return SystemPrincipal("inline")
	}
	if side == RoleCloud {
		if node, _ := creds.certNode(cl); node != "" {
			return Principal{Kind: NodeBridge, User: node, Node: node}
		}
	}
	name := cl.Properties.Username
	if len(name) == 0 {
		// The AuthHook lets an anonymous client in only on an edge
		// broker, from loopback: it is a local app.
		if side == RoleEdge {
			return LocalAppPrincipal
		}
		return Principal{}
	}
	return principalOfUser(side, creds.user(name))
}

func principalOfUser(side Role, u *User) Principal {
	if u == nil {
		return Principal{}
	}
	if side == RoleEdge {
		switch u.Role {
		case UserApp, UserAdmin:
			return Principal{Kind: LocalApp, User: u.Username}
		}
		return Principal{User: u.Username}
	}
	switch u.Role {
	case UserNode:
		return Principal{Kind: NodeBridge, User: u.Username, Node: u.Node}
	case UserOperator:
		return Principal{Kind: Operator, User: u.Username}
	case UserViewer:
		return Principal{Kind: Viewer, User: u.Username}
	case UserAdmin:
		return Principal{Kind: Admin, User: u.Username}
	}
	return Principal{User: u.Username}
}

// AuthzHook applies Authorize to what clients publish (with the retain
// flag), subscribe to and receive; wills are checked at CONNECT by the
// AuthHook, frames by the ingress, inline publishes by Server.Publish.
// Every refusal is logged and counted.
type AuthzHook struct {
	mqtt.HookBase
	role    Role
	node    string
	creds   *Credentials
	log     *slog.Logger
	metrics *metrics.Set
	srv     *mqtt.Server
	// full, if set, says whether the session of a client away is full: a
	// delivery to it is refused.
	full func(cl *mqtt.Client) bool
}

// NewAuthzHook makes the authorization hook of a broker.
func NewAuthzHook(role Role, node string, creds *Credentials, log *slog.Logger, m *metrics.Set) *AuthzHook {
	return &AuthzHook{role: role, node: node, creds: creds, log: log, metrics: m}
}

// Attach gives the hook its broker, to disconnect an MQTT 3.1.1 client
// whose retained publish it refuses, and full, if set, which says whether
// the session of a client away is full (a delivery to it is then refused,
// and counted there). Call it before the broker starts.
func (h *AuthzHook) Attach(srv *mqtt.Server, full func(cl *mqtt.Client) bool) {
	h.srv, h.full = srv, full
}

// Authorize is Authorize on the hook's broker, for a publish the process
// makes on behalf of p: a refusal is logged and counted as the hook's own
// are.
func (h *AuthzHook) Authorize(p Principal, path Path, topic string) error {
	err := Authorize(h.role, h.node, p, path, topic)
	if err != nil {
		h.denied(path, err)
	}
	return err
}

// ID names the hook.
func (h *AuthzHook) ID() string { return "sedna-authz" }

// Provides says which events the hook handles.
func (h *AuthzHook) Provides(b byte) bool { return b == mqtt.OnACLCheck || b == mqtt.OnPublish }

// OnACLCheck allows or denies a publish (write), or a subscription or a
// delivery (read) of topic, which may be a filter for subscriptions.
func (h *AuthzHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	path := PathSubscribe
	if write {
		path = PathPublish
	}
	if !h.check(cl, path, topic) {
		return false
	}
	// mochi asks before it queues a message for a client: a session that
	// is full while its client is away takes no more (counted there).
	if !write && cl.Closed() && h.full != nil && h.full(cl) {
		return false
	}
	return true
}

// OnPublish refuses a retained publish its sender may not retain.
func (h *AuthzHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !pk.FixedHeader.Retain {
		return pk, nil
	}
	if h.check(cl, PathRetain, pk.TopicName) {
		return pk, nil
	}
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return pk, packets.ErrNotAuthorized
	}
	if pk.FixedHeader.Qos > 0 && h.srv != nil {
		_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
	return pk, packets.ErrRejectPacket
}

func (h *AuthzHook) check(cl *mqtt.Client, path Path, topic string) bool {
	err := Authorize(h.role, h.node, principalOf(h.role, h.creds, cl), path, topic)
	if err == nil {
		return true
	}
	h.denied(path, err, "client", cl.ID, "username", string(cl.Properties.Username), "remote", cl.Net.Remote)
	return false
}

func (h *AuthzHook) denied(path Path, err error, attrs ...any) {
	h.log.Warn("authorization denied", append([]any{"path", path.String(), "error", err}, attrs...)...)
	if h.metrics != nil {
		h.metrics.ACLDenied.WithLabelValues(path.String()).Inc()
	}
}
