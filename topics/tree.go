package topics

import (
	"fmt"
	"strings"
)

// Root is the versioned root of every project topic. A future incompatible
// tree lives beside it as "sedna/v2" so old and new nodes can share a broker.
const Root = "sedna/v1"

// The first levels below Root.
const (
	levelNode      = "node"      // written by one node: sedna/v1/node/{node}/...
	levelTo        = "to"        // written by the cloud for one node: sedna/v1/to/{node}/...
	levelDown      = "down"      // read by one node: sedna/v1/down/{node}/...
	levelBroadcast = "broadcast" // read by every node
	levelJob       = "job"       // desired and observed state of jobs
	levelCloud     = "cloud"     // written by the cloud manager only
	levelAPI       = "api"       // requests to the control plane
)

// Second levels inside a node's subtree.
const (
	nodeStatus   = "status"   // retained NodeStatus, also the MQTT will
	nodeUp       = "up"       // bridge frames, one topic per stream
	nodeDownAck  = "downack"  // downlink acknowledgement and replay request
	nodeEvents   = "events"   // events a node reports (errors, dead letters, ...)
	nodeKubeEdge = "kubeedge" // KubeEdge EventBus traffic carried from the node
	nodeApp      = "app"      // default prefix for plain MQTT rules
	nodeJob      = "job"      // per-node reports of a job
	nodeDataset  = "dataset"  // samples for a dataset held on the node: local, never bridged by default
)

const (
	downFrames        = "frames"         // downlink frames for one node
	downStatusRequest = "status-request" // the cloud asks the node for its status
)

// MaxNameLen bounds node names, namespaces, job names and kinds. Kubernetes
// names are at most 253 characters; one topic level should stay far below
// an MQTT topic's 65,535 bytes.
const MaxNameLen = 253

// ValidateName checks that s can be one topic level naming a node, a
// namespace, a job or a kind: not empty, at most MaxNameLen bytes, and made
// of ASCII letters, digits, '-', '_' and '.', not starting with '.' (which
// also excludes "." and "..").
func ValidateName(what, s string) error {
	if s == "" {
		return fmt.Errorf("topics: %s name is empty", what)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("topics: %s name is %d bytes, over %d", what, len(s), MaxNameLen)
	}
	if s[0] == '.' {
		return fmt.Errorf("topics: %s name %q starts with '.'", what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("topics: %s name %q has %q at byte %d (allowed: letters, digits, '-', '_', '.')", what, s, c, i)
		}
	}
	return nil
}

// Stream is a traffic class of the bridge. Each stream has its own sequence
// numbers, its own queue and a priority, so that bulk transfers never hold
// up control messages.
type Stream string

// The traffic classes, highest priority first.
const (
	StreamControl   Stream = "control"   // commands, acks, status: small and urgent
	StreamEvents    Stream = "events"    // job events, inference offloads, reports
	StreamTelemetry Stream = "telemetry" // sensor readings and KubeEdge device traffic
	StreamBulk      Stream = "bulk"      // models, datasets, hard examples in chunks
	// StreamDown is the cloud-to-node stream of one node's downlink.
	StreamDown Stream = "down"
)

// UplinkStreams lists the edge-to-cloud streams in priority order.
var UplinkStreams = []Stream{StreamControl, StreamEvents, StreamTelemetry, StreamBulk}

// Priority returns 0 for the most urgent stream; larger is less urgent.
// Unknown streams rank last.
func (s Stream) Priority() int {
	for i, u := range UplinkStreams {
		if u == s {
			return i
		}
	}
	return len(UplinkStreams)
}

// Valid reports whether s is a known stream.
func (s Stream) Valid() bool {
	return s == StreamDown || s.Priority() < len(UplinkStreams)
}

// ParseStream returns the stream named s, or an error naming the valid ones.
func ParseStream(s string) (Stream, error) {
	st := Stream(s)
	if !st.Valid() {
		return "", fmt.Errorf("topics: unknown stream %q (want control, events, telemetry or bulk)", s)
	}
	return st, nil
}

func join(levels ...string) string { return strings.Join(levels, "/") }

// DotLevel is how a '.' in a name is written in a topic level. Names may
// hold dots (Kubernetes names and hostnames do), but RabbitMQ's MQTT plugin
// turns a '.' in a topic into a level separator: a node named edge.3 would
// publish on .../edge/3/... and match no subscription. '~' is in no valid
// name, means nothing to MQTT nor to RabbitMQ, and so reads back exactly.
const DotLevel = '~'

// Level is name as one topic level: its dots written DotLevel
// ("edge.3" → "edge~3"); a name without dots is its own level. Every
// builder of this package writes names through it, and Parse reads them
// back; a wildcard ("+", "#") passes unchanged.
func Level(name string) string {
	if strings.IndexByte(name, '.') < 0 {
		return name
	}
	return strings.ReplaceAll(name, ".", string(DotLevel))
}

// NameOf is the name a topic level written by Level stands for, checked
// with ValidateName. A level with a raw '.' is refused: on a RabbitMQ
// broker it was never one level.
func NameOf(what, level string) (string, error) { return levelName(what, level) }

func levelName(what, level string) (string, error) {
	if strings.IndexByte(level, '.') >= 0 {
		return "", fmt.Errorf("topics: %s level %q has a '.': names are written with %q for '.' in topics (topics.Level)", what, level, DotLevel)
	}
	name := level
	if strings.IndexByte(level, DotLevel) >= 0 {
		name = strings.ReplaceAll(level, string(DotLevel), ".")
	}
	if err := ValidateName(what, name); err != nil {
		return "", err
	}
	return name, nil
}

// levelsRef reads a JobRef from its three topic levels.
func levelsRef(kind, namespace, name string) (JobRef, error) {
	var r JobRef
	var err error
	if r.Kind, err = levelName("kind", kind); err != nil {
		return JobRef{}, err
	}
	if r.Namespace, err = levelName("namespace", namespace); err != nil {
		return JobRef{}, err
	}
	if r.Name, err = levelName("job", name); err != nil {
		return JobRef{}, err
	}
	return r, nil
}

// NodePrefix is the subtree node may write: "sedna/v1/node/{node}/".
func NodePrefix(node string) string { return join(Root, levelNode, Level(node)) + "/" }

// NodeFilter matches everything node may write.
func NodeFilter(node string) string { return NodePrefix(node) + "#" }

// NodeStatusTopic is the retained status topic of node, also its MQTT will.
func NodeStatusTopic(node string) string { return NodePrefix(node) + nodeStatus }

// NodeStatusFilter matches the status of every node.
func NodeStatusFilter() string { return join(Root, levelNode, "+", nodeStatus) }

// Uplink is the topic on which the bridge of node sends frames of stream.
func Uplink(node string, stream Stream) string {
	return NodePrefix(node) + join(nodeUp, string(stream))
}

// UplinkFilter matches the frames of every stream of every node.
func UplinkFilter() string { return join(Root, levelNode, "+", nodeUp, "+") }

// DownAckTopic is the topic on which node acknowledges downlink frames and asks
// for a replay after it reconnects.
func DownAckTopic(node string) string { return NodePrefix(node) + nodeDownAck }

// DownAckFilter matches the downlink acknowledgements of every node.
func DownAckFilter() string { return join(Root, levelNode, "+", nodeDownAck) }

// NodeEvents is the topic of events of the given kind reported by node.
func NodeEvents(node, kind string) string { return NodePrefix(node) + join(nodeEvents, kind) }

// NodeEventsFilter matches every event of every node.
func NodeEventsFilter() string { return join(Root, levelNode, "+", nodeEvents, "#") }

// NodeKubeEdgePrefix is the prefix under which KubeEdge EventBus topics of
// node arrive in the cloud: "$hw/events/upload/x" published on the edge
// becomes NodeKubeEdgePrefix(node)+"$hw/events/upload/x".
func NodeKubeEdgePrefix(node string) string { return NodePrefix(node) + nodeKubeEdge + "/" }

// NodeAppPrefix is the suggested remote prefix of plain MQTT rules.
func NodeAppPrefix(node string) string { return NodePrefix(node) + nodeApp + "/" }

// ToNodePrefix is where cloud applications publish messages for node; the
// cloud keeps them in the node's durable outbox until the node has them.
func ToNodePrefix(node string) string { return join(Root, levelTo, Level(node)) + "/" }

// ToNodeJob is where the cloud publishes what of job r for node (its spec,
// for instance); the node's bridge delivers it on its broker as
// JobPrefix(r)+what.
func ToNodeJob(node string, r JobRef, what string) string {
	return ToNodePrefix(node) + join(nodeJob, r.levels(), what)
}

// ToNodeFilter matches every message for every node.
func ToNodeFilter() string { return join(Root, levelTo, "+", "#") }

// ToNodeKubeEdgePrefix is where the cloud publishes KubeEdge topics for the
// edge broker of node: ToNodeKubeEdgePrefix(node)+"$hw/events/device/ns/d/twin/update/delta"
// appears on the edge broker as "$hw/events/device/ns/d/twin/update/delta".
func ToNodeKubeEdgePrefix(node string) string { return ToNodePrefix(node) + nodeKubeEdge + "/" }

// ToNodeAppPrefix is the suggested cloud-side prefix of plain downlink rules.
func ToNodeAppPrefix(node string) string { return ToNodePrefix(node) + nodeApp + "/" }

// DownPrefix is the subtree node reads: "sedna/v1/down/{node}/".
func DownPrefix(node string) string { return join(Root, levelDown, Level(node)) + "/" }

// DownFilter matches everything node may read below its downlink.
func DownFilter(node string) string { return DownPrefix(node) + "#" }

// Downlink is the topic on which the cloud sends frames to node.
func Downlink(node string) string { return DownPrefix(node) + downFrames }

// BroadcastPrefix is the subtree every node may read.
func BroadcastPrefix() string { return join(Root, levelBroadcast) + "/" }

// BroadcastFilter matches every broadcast.
func BroadcastFilter() string { return BroadcastPrefix() + "#" }

// Broadcast is a broadcast topic below BroadcastPrefix.
func Broadcast(name string) string { return BroadcastPrefix() + name }

// StatusRequestTopic is where the cloud asks one node for its status
// (StatusRequest): below the node's downlink, so that the one
// subscription a bridge holds, DownFilter, receives both its frames and
// the requests (on RabbitMQ 3.10 every subscription is a binding in the
// cluster's database: one per node, not two).
func StatusRequestTopic(node string) string { return DownPrefix(node) + downStatusRequest }

// CloudEvents is the topic of events of the given kind reported by the
// cloud manager itself (for instance a frame it dead-lettered).
func CloudEvents(kind string) string { return join(Root, levelCloud, "events", kind) }

// CloudEventsFilter matches every event of the cloud manager.
func CloudEventsFilter() string { return join(Root, levelCloud, "events", "#") }

// APIRequestTopic is where the user named user (the CLI, a dashboard) sends
// requests to the control plane. The user is a level of the topic so that
// the broker's ACL, which lets each user write only its own, tells the
// control plane who asks: a request's rights are its user's role.
func APIRequestTopic(user string) string { return join(Root, levelAPI, "request", Level(user)) }

// APIRequestFilter matches the requests of every user.
func APIRequestFilter() string { return join(Root, levelAPI, "request", "+") }

// APIReplyPrefix is the start of every reply of the control plane; a
// user's own are under APIReplyPrefix() + user + "/".
func APIReplyPrefix() string { return Root + "/" + levelCloud + "/" + levelAPI + "/" }

// APIReplyTopic is where the control plane answers the client named client
// of user. Only the cloud manager writes under sedna/v1/cloud/; only user
// (and the manager) may read its replies.
func APIReplyTopic(user, client string) string {
	return join(Root, levelCloud, levelAPI, Level(user), Level(client))
}

// JobEvents is where the control plane reports what happens to a job (not
// retained); JobStatus holds the last state.
func JobEvents(r JobRef) string { return JobPrefix(r) + "events" }

// NodeJobFilter matches every per-node report of every job.
func NodeJobFilter() string { return join(Root, levelNode, "+", nodeJob, "#") }

// NodeJobsFilter matches what every node reports under what for every job
// of kind: NodeJob(node, {kind, ns, name}, what) for any node, ns, name.
func NodeJobsFilter(kind, what string) string {
	return join(Root, levelNode, "+", nodeJob, Level(kind), "+", "+", what)
}

// JobRef names one job (or other resource) of the control plane.
type JobRef struct {
	Kind      string // e.g. "FederatedLearningJob"
	Namespace string
	Name      string
}

// Validate checks every part of r is a valid topic level.
func (r JobRef) Validate() error {
	if err := ValidateName("kind", r.Kind); err != nil {
		return err
	}
	if err := ValidateName("namespace", r.Namespace); err != nil {
		return err
	}
	return ValidateName("job", r.Name)
}

// String returns "kind/namespace/name".
func (r JobRef) String() string { return join(r.Kind, r.Namespace, r.Name) }

// ParseJobRef reads a key "kind/namespace/name" (JobRef.String) and
// validates it.
func ParseJobRef(key string) (JobRef, error) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return JobRef{}, fmt.Errorf("topics: %q is not kind/namespace/name", key)
	}
	r := JobRef{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
	return r, r.Validate()
}

// JobPrefix is the subtree of one job: "sedna/v1/job/{kind}/{ns}/{name}/".
func JobPrefix(r JobRef) string { return join(Root, levelJob, r.levels()) + "/" }

// levels is r as three topic levels (Level).
func (r JobRef) levels() string { return join(Level(r.Kind), Level(r.Namespace), Level(r.Name)) }

// JobSpec is the retained desired state of a job.
func JobSpec(r JobRef) string { return JobPrefix(r) + "spec" }

// JobStatus is the retained observed state of a job.
func JobStatus(r JobRef) string { return JobPrefix(r) + "status" }

// JobStatusFilter matches the statuses of the resources of kind in
// namespace; an empty kind or namespace matches any.
func JobStatusFilter(kind, namespace string) string {
	kind, namespace = Level(kind), Level(namespace)
	if kind == "" {
		kind = "+"
	}
	if namespace == "" {
		namespace = "+"
	}
	return join(Root, levelJob, kind, namespace, "+", "status")
}

// NodeJob is the topic on which node reports what of job r: the per-node
// side of a job (worker status, round updates, offload results).
func NodeJob(node string, r JobRef, what string) string {
	return NodePrefix(node) + join(nodeJob, r.levels(), what)
}

// NodeDataset is where local apps publish samples for a Dataset held on
// node. It is the node's own: no default bridge rule carries it up, since
// raw samples stay on the node unless a job uploads them.
func NodeDataset(node, namespace, name string) string {
	return NodePrefix(node) + join(nodeDataset, Level(namespace), Level(name))
}

// JobFilter matches every topic of every job.
func JobFilter() string { return join(Root, levelJob, "#") }

// Class says which part of the tree a topic belongs to.
type Class int

// The classes Parse recognises.
const (
	ClassForeign       Class = iota // not under Root: KubeEdge, plain MQTT apps, $SYS, ...
	ClassNodeStatus                 // sedna/v1/node/{node}/status
	ClassUplink                     // sedna/v1/node/{node}/up/{stream}
	ClassDownAck                    // sedna/v1/node/{node}/downack
	ClassNodeEvent                  // sedna/v1/node/{node}/events/{kind...}
	ClassNodeJob                    // sedna/v1/node/{node}/job/{kind}/{ns}/{name}/{rest}
	ClassNodeOther                  // sedna/v1/node/{node}/{anything else}: raw relayed traffic
	ClassToNode                     // sedna/v1/to/{node}/{rest}
	ClassDownlink                   // sedna/v1/down/{node}/frames
	ClassDownOther                  // sedna/v1/down/{node}/{anything else}
	ClassStatusRequest              // sedna/v1/down/{node}/status-request
	ClassBroadcast                  // sedna/v1/broadcast/{rest}
	ClassJob                        // sedna/v1/job/{kind}/{ns}/{name}/{rest}
	ClassCloudEvent                 // sedna/v1/cloud/events/{kind...}
	ClassAPIRequest                 // sedna/v1/api/request/{user}
	ClassAPIReply                   // sedna/v1/cloud/api/{user}/{client}
	ClassUnknown                    // under Root but not a known shape
)

var classNames = [...]string{"foreign", "node-status", "uplink", "downack", "node-event", "node-job", "node-other",
	"to-node", "downlink", "down-other", "status-request", "broadcast", "job", "cloud-event", "api-request", "api-reply", "unknown"}

// String returns a short name of the class.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Parsed is a topic taken apart by Parse.
type Parsed struct {
	Class  Class
	Node   string // for node, to-node and down classes
	Stream Stream // for ClassUplink
	Job    JobRef // for ClassJob
	User   string // for ClassAPIRequest and ClassAPIReply
	Rest   string // the levels after the recognised part, "" if none
}

// Parse takes a concrete topic (no wildcards) apart. Topics outside Root
// are ClassForeign; topics under Root of an unknown shape are ClassUnknown
// with an error saying what is wrong. Parse never panics.
func Parse(topic string) (Parsed, error) {
	if topic != Root && !strings.HasPrefix(topic, Root+"/") {
		return Parsed{Class: ClassForeign, Rest: topic}, nil
	}
	unknown := func(why string) (Parsed, error) {
		return Parsed{Class: ClassUnknown, Rest: topic}, fmt.Errorf("topics: %q: %s", topic, why)
	}
	if topic == Root {
		return unknown("no level below the root")
	}
	// The first levels, without allocating: Parse runs for every publish
	// on a project topic.
	body := topic[len(Root)+1:]
	total := strings.Count(body, "/") + 1
	var lv [7]string
	var start [7]int
	for i, off := 0, 0; i < len(lv) && i < total; i++ {
		start[i] = off
		end := strings.IndexByte(body[off:], '/')
		if end < 0 {
			lv[i] = body[off:]
			break
		}
		lv[i] = body[off : off+end]
		off += end + 1
	}
	levels := lvView{lv: &lv, n: total}
	rest := func(from int) string {
		if from >= total {
			return ""
		}
		return body[start[from]:]
	}
	switch levels.lv[0] {
	case levelNode, levelTo, levelDown:
		if levels.n < 3 {
			return unknown("want " + levels.lv[0] + "/{node}/...")
		}
		node, err := levelName("node", levels.lv[1])
		if err != nil {
			return unknown(err.Error())
		}
		p := Parsed{Node: node, Rest: rest(2)}
		switch levels.lv[0] {
		case levelTo:
			p.Class = ClassToNode
		case levelDown:
			p.Class = ClassDownOther
			switch {
			case levels.n == 3 && levels.lv[2] == downFrames:
				p.Class, p.Rest = ClassDownlink, ""
			case levels.n == 3 && levels.lv[2] == downStatusRequest:
				p.Class, p.Rest = ClassStatusRequest, ""
			}
		case levelNode:
			p.Class = ClassNodeOther
			switch {
			case levels.n == 3 && levels.lv[2] == nodeStatus:
				p.Class, p.Rest = ClassNodeStatus, ""
			case levels.n == 3 && levels.lv[2] == nodeDownAck:
				p.Class, p.Rest = ClassDownAck, ""
			case levels.lv[2] == nodeUp:
				if levels.n != 4 {
					return unknown("want node/{node}/up/{stream}")
				}
				s, err := ParseStream(levels.lv[3])
				if err != nil || s == StreamDown {
					return unknown(fmt.Sprintf("unknown uplink stream %q", levels.lv[3]))
				}
				p.Class, p.Stream, p.Rest = ClassUplink, s, ""
			case levels.lv[2] == nodeEvents && levels.n > 3:
				p.Class, p.Rest = ClassNodeEvent, rest(3)
			case levels.lv[2] == nodeJob:
				if levels.n < 6 {
					return unknown("want node/{node}/job/{kind}/{namespace}/{name}/...")
				}
				ref, err := levelsRef(levels.lv[3], levels.lv[4], levels.lv[5])
				if err != nil {
					return unknown(err.Error())
				}
				p.Class, p.Job, p.Rest = ClassNodeJob, ref, rest(6)
			}
		}
		return p, nil
	case levelBroadcast:
		if levels.n < 2 || levels.lv[1] == "" {
			return unknown("want broadcast/{name}")
		}
		return Parsed{Class: ClassBroadcast, Rest: rest(1)}, nil
	case levelCloud:
		if levels.n == 4 && levels.lv[1] == levelAPI {
			user, err := levelName("user", levels.lv[2])
			if err != nil {
				return unknown(err.Error())
			}
			client, err := levelName("client", levels.lv[3])
			if err != nil {
				return unknown(err.Error())
			}
			return Parsed{Class: ClassAPIReply, User: user, Rest: client}, nil
		}
		if levels.n < 3 || levels.lv[1] != "events" || levels.lv[2] == "" {
			return unknown("want cloud/events/{kind} or cloud/api/{user}/{client}")
		}
		return Parsed{Class: ClassCloudEvent, Rest: rest(2)}, nil
	case levelAPI:
		if levels.n != 3 || levels.lv[1] != "request" {
			return unknown("want api/request/{user}")
		}
		user, err := levelName("user", levels.lv[2])
		if err != nil {
			return unknown(err.Error())
		}
		return Parsed{Class: ClassAPIRequest, User: user}, nil
	case levelJob:
		if levels.n < 4 {
			return unknown("want job/{kind}/{namespace}/{name}/...")
		}
		ref, err := levelsRef(levels.lv[1], levels.lv[2], levels.lv[3])
		if err != nil {
			return unknown(err.Error())
		}
		return Parsed{Class: ClassJob, Job: ref, Rest: rest(4)}, nil
	}
	return unknown(fmt.Sprintf("unknown level %q below the root", levels.lv[0]))
}

// lvView is the first levels of a topic and how many it has in all.
type lvView struct {
	lv *[7]string
	n  int
}

// Payload says what a topic's payload must be.
type Payload int

// The payload kinds of the tree.
const (
	PayloadRaw      Payload = iota // any bytes, carried unchanged (KubeEdge JSON, plain MQTT apps)
	PayloadEnvelope                // an Envelope
	PayloadFrame                   // a Frame of the bridge
	PayloadInvalid                 // under Root but not a known shape: refuse it
)

// PayloadOf says what the payload of a concrete topic must be. Everything a
// node relays for KubeEdge apps or plain MQTT rules is raw; the project's
// own topics carry envelopes, the bridge's topics carry frames.
func PayloadOf(topic string) Payload {
	p, err := Parse(topic)
	if err != nil {
		return PayloadInvalid
	}
	switch p.Class {
	case ClassUplink, ClassDownlink:
		return PayloadFrame
	case ClassNodeStatus, ClassDownAck, ClassStatusRequest, ClassNodeEvent, ClassNodeJob, ClassJob, ClassBroadcast, ClassCloudEvent,
		ClassAPIRequest, ClassAPIReply:
		return PayloadEnvelope
	}
	return PayloadRaw
}
