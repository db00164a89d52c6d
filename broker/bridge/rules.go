package bridge

import (
	"fmt"
	"strings"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/topics"
)

// Direction says which way a Rule carries messages.
type Direction string

// The directions of a rule.
const (
	Out  Direction = "out"  // edge to cloud
	In   Direction = "in"   // cloud to edge
	Both Direction = "both" // both ways
)

// Rule is one bridge rule, like a mosquitto "topic" line: messages whose
// topic is LocalPrefix+X on the edge broker, with X matching Filter, go to
// RemotePrefix+X in the cloud (Out), and the reverse (In). Payloads are
// carried unchanged, byte for byte.
//
// "{node}" in a prefix is replaced by the node's name as a topic level
// (topics.Level: a '.' written '~').
type Rule struct {
	Filter       string    `json:"filter"`
	Direction    Direction `json:"direction"`
	LocalPrefix  string    `json:"localPrefix,omitempty"`
	RemotePrefix string    `json:"remotePrefix,omitempty"`
	// QoS 1 (the default) keeps every message in the node's durable queue
	// until the cloud has it; QoS 0 sends it only if the link is up.
	QoS *int `json:"qos,omitempty"`
	// Stream is the traffic class of uplink messages; default telemetry.
	Stream topics.Stream `json:"stream,omitempty"`
	// TTL, if set, drops uplink messages not sent within it.
	TTL broker.Duration `json:"ttl,omitempty"`
}

// Durable reports whether the rule keeps messages in the durable queue.
func (r *Rule) Durable() bool { return r.QoS == nil || *r.QoS > 0 }

func (r *Rule) qos() byte {
	if r.Durable() {
		return 1
	}
	return 0
}

// expand returns the rule for node, with defaults filled in.
func (r Rule) expand(node string) Rule {
	r.LocalPrefix = strings.ReplaceAll(r.LocalPrefix, "{node}", topics.Level(node))
	r.RemotePrefix = strings.ReplaceAll(r.RemotePrefix, "{node}", topics.Level(node))
	if r.Stream == "" {
		r.Stream = topics.StreamTelemetry
	}
	if r.Direction == "" {
		r.Direction = Out
	}
	return r
}

// validate checks an expanded rule of node: the cloud must accept what it
// sends (under the node's own subtree) and what it takes must be the
// node's downlink.
func (r *Rule) validate(node string) error {
	if err := topics.ValidateFilter(r.Filter); err != nil {
		return err
	}
	if strings.ContainsAny(r.LocalPrefix+r.RemotePrefix, "+#") {
		return fmt.Errorf("prefixes may not hold wildcards")
	}
	if r.QoS != nil && (*r.QoS < 0 || *r.QoS > 1) {
		return fmt.Errorf("qos %d: want 0 or 1", *r.QoS)
	}
	if r.Stream.Priority() >= len(topics.UplinkStreams) {
		return fmt.Errorf("stream %q: want control, events, telemetry or bulk", r.Stream)
	}
	if r.TTL < 0 {
		return fmt.Errorf("negative ttl")
	}
	switch r.Direction {
	case Out, In, Both:
	default:
		return fmt.Errorf("direction %q: want out, in or both", r.Direction)
	}
	if r.Direction != In {
		if !strings.HasPrefix(r.RemotePrefix+r.Filter, topics.NodePrefix(node)) {
			return fmt.Errorf("remote topics %s%s are not under the node's subtree %s; the cloud would refuse them",
				r.RemotePrefix, r.Filter, topics.NodePrefix(node))
		}
		own := []string{topics.NodeStatusTopic(node), topics.DownAckTopic(node)}
		for _, st := range topics.UplinkStreams {
			own = append(own, topics.Uplink(node, st))
		}
		for _, o := range own {
			if x, ok := strings.CutPrefix(o, r.RemotePrefix); ok && topics.Match(r.Filter, x) {
				return fmt.Errorf("remote topics %s%s include the bridge's own topic %s", r.RemotePrefix, r.Filter, o)
			}
		}
	}
	if r.Direction != Out && !strings.HasPrefix(r.RemotePrefix, topics.ToNodePrefix(node)) {
		return fmt.Errorf("remote prefix %q of a downlink rule must start with %s", r.RemotePrefix, topics.ToNodePrefix(node))
	}
	return nil
}

// mapOut returns the cloud topic for a local topic, if the rule carries it up.
func (r *Rule) mapOut(local string) (string, bool) {
	if r.Direction == In {
		return "", false
	}
	x, ok := strings.CutPrefix(local, r.LocalPrefix)
	if !ok || !topics.Match(r.Filter, x) {
		return "", false
	}
	return r.RemotePrefix + x, true
}

// mapIn returns the local topic for a cloud topic, if the rule carries it down.
func (r *Rule) mapIn(remote string) (string, bool) {
	if r.Direction == Out {
		return "", false
	}
	x, ok := strings.CutPrefix(remote, r.RemotePrefix)
	if !ok || !topics.Match(r.Filter, x) {
		return "", false
	}
	return r.LocalPrefix + x, true
}

// Rules is an ordered list of rules of one node; the first match wins.
type Rules []Rule

// NewRules expands and checks rules for node.
func NewRules(node string, rules []Rule) (Rules, error) {
	out := make(Rules, 0, len(rules))
	for i, r := range rules {
		e := r.expand(node)
		if err := e.validate(node); err != nil {
			return nil, fmt.Errorf("broker: bridge rule %d (%s %s): %w", i+1, r.Direction, r.Filter, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Out finds the first rule that carries local up, and the cloud topic.
func (rs Rules) Out(local string) (*Rule, string, bool) {
	for i := range rs {
		if remote, ok := rs[i].mapOut(local); ok {
			return &rs[i], remote, true
		}
	}
	return nil, "", false
}

// In finds the first rule that carries remote down, and the local topic.
func (rs Rules) In(remote string) (*Rule, string, bool) {
	for i := range rs {
		if local, ok := rs[i].mapIn(remote); ok {
			return &rs[i], local, true
		}
	}
	return nil, "", false
}

// DefaultRules are the rules of every node unless its configuration says
// otherwise: KubeEdge EventBus topics both ways (topics.KubeEdgeUplinkFilters
// and KubeEdgeDownlinkFilters: device-ID-only and namespaced forms, KubeEdge
// v1.12 to the latest), the node's own project events and job reports up,
// job desired state and plain app messages down.
func DefaultRules() []Rule {
	const n = "{node}"
	var rs []Rule
	for _, f := range topics.KubeEdgeUplinkFilters {
		rs = append(rs, Rule{Filter: f, Direction: Out, RemotePrefix: topics.NodeKubeEdgePrefix(n), Stream: topics.StreamTelemetry})
	}
	for _, f := range topics.KubeEdgeDownlinkFilters {
		rs = append(rs, Rule{Filter: f, Direction: In, RemotePrefix: topics.ToNodeKubeEdgePrefix(n)})
	}
	rs = append(rs,
		Rule{Filter: "events/#", Direction: Out, LocalPrefix: topics.NodePrefix(n), RemotePrefix: topics.NodePrefix(n), Stream: topics.StreamEvents},
		Rule{Filter: "job/#", Direction: Out, LocalPrefix: topics.NodePrefix(n), RemotePrefix: topics.NodePrefix(n), Stream: topics.StreamEvents},
		Rule{Filter: "job/#", Direction: In, LocalPrefix: topics.TreePrefix(), RemotePrefix: topics.ToNodePrefix(n)},
		Rule{Filter: "#", Direction: In, RemotePrefix: topics.ToNodeAppPrefix(n)},
	)
	return rs
}
