package topics

import (
	"strings"
	"testing"
)

func TestBuildersParseBack(t *testing.T) {
	job := JobRef{Kind: "FederatedLearningJob", Namespace: "default", Name: "surface-defect"}
	cases := []struct {
		topic string
		want  Parsed
		pay   Payload
	}{
		{NodeStatusTopic("edge-1"), Parsed{Class: ClassNodeStatus, Node: "edge-1"}, PayloadEnvelope},
		{Uplink("edge-1", StreamBulk), Parsed{Class: ClassUplink, Node: "edge-1", Stream: StreamBulk}, PayloadFrame},
		{DownAckTopic("n.2"), Parsed{Class: ClassDownAck, Node: "n.2"}, PayloadEnvelope},
		{NodeEvents("a", "error"), Parsed{Class: ClassNodeEvent, Node: "a", Rest: "error"}, PayloadEnvelope},
		{NodeKubeEdgePrefix("a") + "$hw/events/upload/x", Parsed{Class: ClassNodeOther, Node: "a", Rest: "kubeedge/$hw/events/upload/x"}, PayloadRaw},
		{NodeAppPrefix("a") + "sensors/t", Parsed{Class: ClassNodeOther, Node: "a", Rest: "app/sensors/t"}, PayloadRaw},
		{NodeJob("a", job, "status"), Parsed{Class: ClassNodeJob, Node: "a", Job: job, Rest: "status"}, PayloadEnvelope},
		{ToNodeKubeEdgePrefix("a") + "$hw/events/device/ns/d/twin/update/delta", Parsed{Class: ClassToNode, Node: "a", Rest: "kubeedge/$hw/events/device/ns/d/twin/update/delta"}, PayloadRaw},
		{ToNodeJob("a", job, "spec"), Parsed{Class: ClassToNode, Node: "a", Rest: "job/FederatedLearningJob/default/surface-defect/spec"}, PayloadRaw},
		{Downlink("a"), Parsed{Class: ClassDownlink, Node: "a"}, PayloadFrame},
		{DownPrefix("a") + "other", Parsed{Class: ClassDownOther, Node: "a", Rest: "other"}, PayloadRaw},
		{StatusRequestTopic("a"), Parsed{Class: ClassStatusRequest, Node: "a"}, PayloadEnvelope},
		{StatusRequestTopic("edge.3"), Parsed{Class: ClassStatusRequest, Node: "edge.3"}, PayloadEnvelope},
		{Broadcast("models/x"), Parsed{Class: ClassBroadcast, Rest: "models/x"}, PayloadEnvelope},
		{JobSpec(job), Parsed{Class: ClassJob, Job: job, Rest: "spec"}, PayloadEnvelope},
		{JobStatus(job), Parsed{Class: ClassJob, Job: job, Rest: "status"}, PayloadEnvelope},
		{CloudEvents("error"), Parsed{Class: ClassCloudEvent, Rest: "error"}, PayloadEnvelope},
		{APIRequestTopic("ops"), Parsed{Class: ClassAPIRequest, User: "ops"}, PayloadEnvelope},
		{APIReplyTopic("ops", "cli-1"), Parsed{Class: ClassAPIReply, User: "ops", Rest: "cli-1"}, PayloadEnvelope},
		{JobEvents(job), Parsed{Class: ClassJob, Job: job, Rest: "events"}, PayloadEnvelope},
		{NodeDataset("edge-1", "default", "d"), Parsed{Class: ClassNodeOther, Node: "edge-1", Rest: "dataset/default/d"}, PayloadRaw},
		{"$hw/events/upload/x", Parsed{Class: ClassForeign, Rest: "$hw/events/upload/x"}, PayloadRaw},
		{"sedna/v10/x", Parsed{Class: ClassForeign, Rest: "sedna/v10/x"}, PayloadRaw},
	}
	for _, c := range cases {
		got, err := Parse(c.topic)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.topic, err)
			continue
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.topic, got, c.want)
		}
		if p := PayloadOf(c.topic); p != c.pay {
			t.Errorf("PayloadOf(%q) = %d, want %d", c.topic, p, c.pay)
		}
	}
}

func TestParseRefusesBadShapes(t *testing.T) {
	for _, topic := range []string{
		"sedna/v1", "sedna/v1/", "sedna/v1/nope/x", "sedna/v1/node/a", "sedna/v1/node/+/status",
		"sedna/v1/node/a/up/unknown", "sedna/v1/node/a/up/down", "sedna/v1/node/a/up/bulk/extra",
		"sedna/v1/node/a/job/k/ns", "sedna/v1/job/k/ns", "sedna/v1/cloud/x", "sedna/v1/cloud/events", "sedna/v1/broadcast", "sedna/v1/node/../status",
		"sedna/v1/node/" + strings.Repeat("x", MaxNameLen+1) + "/status",
		"sedna/v1/node/edge.3/status", "sedna/v1/job/k/ns/a.b/spec", "sedna/v1/api/request/ops.1", "sedna/v1/node/~a/status",
	} {
		p, err := Parse(topic)
		if err == nil || p.Class != ClassUnknown {
			t.Errorf("Parse(%q) = %+v, %v; want ClassUnknown and an error", topic, p, err)
		}
		if PayloadOf(topic) != PayloadInvalid {
			t.Errorf("PayloadOf(%q) should be invalid", topic)
		}
	}
}

// TestDottedNamesAreOneLevel: every builder writes a name's dots as '~',
// so that RabbitMQ's MQTT plugin, which reads '.' as a level separator,
// sees the levels the builder meant; Parse reads the names back.
func TestDottedNamesAreOneLevel(t *testing.T) {
	job := JobRef{Kind: "Dataset", Namespace: "team.a", Name: "model-v1.2"}
	rabbit := func(topic string) string { return strings.ReplaceAll(topic, ".", "/") }
	cases := []struct {
		topic string
		want  Parsed
	}{
		{NodeStatusTopic("edge.3"), Parsed{Class: ClassNodeStatus, Node: "edge.3"}},
		{Uplink("ip-10-0-0-1.ec2.internal", StreamEvents), Parsed{Class: ClassUplink, Node: "ip-10-0-0-1.ec2.internal", Stream: StreamEvents}},
		{Downlink("edge.3"), Parsed{Class: ClassDownlink, Node: "edge.3"}},
		{NodeJob("edge.3", job, "status"), Parsed{Class: ClassNodeJob, Node: "edge.3", Job: job, Rest: "status"}},
		{ToNodeJob("edge.3", job, "spec"), Parsed{Class: ClassToNode, Node: "edge.3", Rest: "job/Dataset/team~a/model-v1~2/spec"}},
		{JobSpec(job), Parsed{Class: ClassJob, Job: job, Rest: "spec"}},
		{APIRequestTopic("ops.team"), Parsed{Class: ClassAPIRequest, User: "ops.team"}},
		{APIReplyTopic("ops.team", "cli.1"), Parsed{Class: ClassAPIReply, User: "ops.team", Rest: "cli.1"}},
	}
	for _, c := range cases {
		if strings.Contains(c.topic, ".") {
			t.Errorf("%q has a '.'", c.topic)
		}
		if rabbit(c.topic) != c.topic {
			t.Errorf("%q changes under RabbitMQ's mapping", c.topic)
		}
		got, err := Parse(c.topic)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.topic, got, err, c.want)
		}
	}
	if f := JobStatusFilter("Dataset", "team.a"); f != "sedna/v1/job/Dataset/team~a/+/status" {
		t.Errorf("JobStatusFilter = %q", f)
	}
	if !Match(NodeStatusFilter(), NodeStatusTopic("edge.3")) || !Match(NodeFilter("edge.3"), NodeJob("edge.3", job, "x")) {
		t.Error("a dotted node's topics do not match its filters")
	}
	if Level("edge-3") != "edge-3" || Level("+") != "+" {
		t.Error("Level changed a name without dots")
	}
	if n, err := NameOf("node", "edge~3"); err != nil || n != "edge.3" {
		t.Errorf("NameOf(edge~3) = %q, %v", n, err)
	}
	if _, err := NameOf("node", "edge.3"); err == nil || !strings.Contains(err.Error(), "'~'") {
		t.Errorf("NameOf(edge.3) = %v; want a refusal naming '~'", err)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"edge-1", "a", "node_2.local", "X9"} {
		if err := ValidateName("node", ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".x", "a/b", "a+b", "a#", "$sys", "a b", "é"} {
		if err := ValidateName("node", bad); err == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"#", "a/b", true},
		{"#", "$hw/events/upload/x", false},
		{"+/user/#", "$hw/user/x", false},
		{"+/user/#", "dev/user/x", true},
		{"+/user/#", "dev/user", true},
		{"$hw/events/upload/#", "$hw/events/upload/a/b", true},
		{"$hw/events/upload/#", "$hw/events/upload", true},
		{"$hw/events/device/+/+/twin/+", "$hw/events/device/ns/d/twin/update", true},
		{"$hw/events/device/+/+/twin/+", "$hw/events/device/ns/d/twin/update/delta", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/c/d", false},
		{"a/+", "a/", true},
		{"a/b", "a/b/", false},
		{"a/b/", "a/b", false},
		{"sedna/v1/to/+/#", "sedna/v1/to/n/kubeedge/$hw/x", true},
		{"SYS/dis/upload_records", "SYS/dis/upload_records", true},
	}
	for _, c := range cases {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestValidateFilterAndTopic(t *testing.T) {
	for _, f := range append([]string{"#", "a/+/b", "+"}, KubeEdgeUplinkFilters...) {
		if err := ValidateFilter(f); err != nil {
			t.Errorf("ValidateFilter(%q): %v", f, err)
		}
	}
	for _, f := range []string{"", "a/#/b", "a#", "a/b+", "a\x00"} {
		if ValidateFilter(f) == nil {
			t.Errorf("ValidateFilter(%q) accepted", f)
		}
	}
	if ValidateTopic("a/+/b") == nil || ValidateTopic("") == nil || ValidateTopic("a/b") != nil {
		t.Error("ValidateTopic misjudges")
	}
}

func TestStreams(t *testing.T) {
	for i, s := range UplinkStreams {
		if s.Priority() != i || !s.Valid() {
			t.Errorf("stream %s: priority %d valid %v", s, s.Priority(), s.Valid())
		}
	}
	if _, err := ParseStream("x"); err == nil {
		t.Error("ParseStream accepted an unknown stream")
	}
}

// TestNodeStatusSupersedes: a node's status is decided by its latest
// session, whatever order the messages land in.
func TestNodeStatusSupersedes(t *testing.T) {
	on := func(session uint64) NodeStatus { return NodeStatus{State: NodeOnline, Epoch: 7, Session: session} }
	off := func(session uint64) NodeStatus { return NodeStatus{State: NodeOffline, Epoch: 7, Session: session} }
	cases := []struct {
		name     string
		old, new NodeStatus
		want     bool
	}{
		{"the old session's will after the new online", on(2), off(1), false},
		{"the new online after the old will", off(1), on(2), true},
		{"this session's will", on(2), off(2), true},
		{"an online repeated", on(2), on(2), true},
		{"an online of a session that ended", off(2), on(2), false},
		{"an older online", on(3), on(2), false},
		{"a wiped node (new epoch)", on(9), NodeStatus{State: NodeOffline, Epoch: 8, Session: 1}, true},
		{"a node without sessions", on(2), NodeStatus{State: NodeOffline, Epoch: 7}, true},
		{"after a node without sessions", NodeStatus{State: NodeOnline, Epoch: 7}, off(1), true},
	}
	for _, c := range cases {
		if got := c.new.Supersedes(c.old); got != c.want {
			t.Errorf("%s: Supersedes %v, want %v", c.name, got, c.want)
		}
	}
}

// TestJobStatusFilter matches the statuses of a kind, a namespace, or all,
// and nothing else of a job.
func TestJobStatusFilter(t *testing.T) {
	ref := JobRef{Kind: "Dataset", Namespace: "ns1", Name: "d"}
	for _, tc := range []struct {
		kind, ns, topic string
		want            bool
	}{
		{"", "", JobStatus(ref), true},
		{"Dataset", "", JobStatus(ref), true},
		{"Dataset", "ns1", JobStatus(ref), true},
		{"Model", "", JobStatus(ref), false},
		{"", "ns2", JobStatus(ref), false},
		{"", "", JobSpec(ref), false},
	} {
		if got := Match(JobStatusFilter(tc.kind, tc.ns), tc.topic); got != tc.want {
			t.Errorf("%s on %s: %v, want %v", JobStatusFilter(tc.kind, tc.ns), tc.topic, got, tc.want)
		}
	}
}
