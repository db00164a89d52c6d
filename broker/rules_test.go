package broker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sedna-go/sedna/topics"
)

func TestDefaultRulesMapKubeEdgeTopics(t *testing.T) {
	rs, err := NewRules("edge-1", DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	up := map[string]string{
		"$hw/events/upload/dev1":                    topics.NodeKubeEdgePrefix("edge-1") + "$hw/events/upload/dev1",
		"$hw/events/device/ns/d/state/update":       topics.NodeKubeEdgePrefix("edge-1") + "$hw/events/device/ns/d/state/update",
		"$hw/events/device/ns/d/twin/update":        topics.NodeKubeEdgePrefix("edge-1") + "$hw/events/device/ns/d/twin/update",
		"$hw/events/node/edge-1/membership/get":     topics.NodeKubeEdgePrefix("edge-1") + "$hw/events/node/edge-1/membership/get",
		"$ke/events/device/d/data/update":           topics.NodeKubeEdgePrefix("edge-1") + "$ke/events/device/d/data/update",
		"SYS/dis/upload_records":                    topics.NodeKubeEdgePrefix("edge-1") + "SYS/dis/upload_records",
		"dev/user/temp":                             topics.NodeKubeEdgePrefix("edge-1") + "dev/user/temp",
		topics.NodeEvents("edge-1", "error"):        topics.NodeEvents("edge-1", "error"),
		topics.NodePrefix("edge-1") + "job/K/n/x/r": topics.NodePrefix("edge-1") + "job/K/n/x/r",
	}
	for local, want := range up {
		_, got, ok := rs.Out(local)
		if !ok || got != want {
			t.Errorf("Out(%q) = %q, %v; want %q", local, got, ok, want)
		}
	}
	for _, local := range []string{"$hw/events/device/ns/d/twin/update/delta", "sensors/x", topics.NodeStatusTopic("edge-1"),
		topics.Uplink("edge-1", topics.StreamBulk), "$SYS/x", topics.NodeEvents("edge-2", "x")} {
		if _, got, ok := rs.Out(local); ok {
			t.Errorf("Out(%q) = %q: must not go up", local, got)
		}
	}
	down := map[string]string{
		topics.ToNodeKubeEdgePrefix("edge-1") + "$hw/events/device/ns/d/twin/update/delta":       "$hw/events/device/ns/d/twin/update/delta",
		topics.ToNodeKubeEdgePrefix("edge-1") + "$hw/events/node/edge-1/membership/updated":      "$hw/events/node/edge-1/membership/updated",
		topics.ToNodeJob("edge-1", topics.JobRef{Kind: "K", Namespace: "ns", Name: "j"}, "spec"): topics.JobSpec(topics.JobRef{Kind: "K", Namespace: "ns", Name: "j"}),
		topics.ToNodeAppPrefix("edge-1") + "cmd/reboot":                                          "cmd/reboot",
	}
	for remote, want := range down {
		_, got, ok := rs.In(remote)
		if !ok || got != want {
			t.Errorf("In(%q) = %q, %v; want %q", remote, got, ok, want)
		}
	}
	if _, got, ok := rs.In(topics.ToNodeAppPrefix("edge-1") + "$SYS/x"); ok {
		t.Errorf("'#' carried a $ topic down to %q", got)
	}
}

func TestRuleValidation(t *testing.T) {
	zero := 0
	two := 2
	bad := []Rule{
		{Filter: "a/#/b", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}")},
		{Filter: "x", Direction: Out, RemotePrefix: "elsewhere/"},
		{Filter: "x", Direction: Out, RemotePrefix: topics.NodeAppPrefix("other")},
		{Filter: "#", Direction: Out, RemotePrefix: topics.NodePrefix("{node}")},
		{Filter: "status", Direction: Out, RemotePrefix: topics.NodePrefix("{node}")},
		{Filter: "x", Direction: In, RemotePrefix: topics.NodeAppPrefix("{node}")},
		{Filter: "x", Direction: "sideways", RemotePrefix: topics.NodeAppPrefix("{node}")},
		{Filter: "x", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}"), QoS: &two},
		{Filter: "x", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}"), Stream: "down"},
		{Filter: "x", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}") + "+/"},
	}
	for i, r := range bad {
		if _, err := NewRules("n", []Rule{r}); err == nil {
			t.Errorf("bad rule %d accepted: %+v", i, r)
		}
	}
	r := Rule{Filter: "x/#", RemotePrefix: topics.NodeAppPrefix("{node}"), QoS: &zero}
	rs, err := NewRules("n", []Rule{r})
	if err != nil || rs[0].Durable() || rs[0].Direction != Out || rs[0].Stream != topics.StreamTelemetry {
		t.Fatalf("defaults: %+v %v", rs, err)
	}
}

func TestRulesFromYAML(t *testing.T) {
	in := `
- filter: sensors/#
  direction: out
  remotePrefix: sedna/v1/node/{node}/app/
  qos: 1
  stream: bulk
  ttl: 90s
`
	var rs []Rule
	if err := yaml.UnmarshalStrict([]byte(in), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || time.Duration(rs[0].TTL) != 90*time.Second || rs[0].Stream != topics.StreamBulk || !rs[0].Durable() {
		t.Fatalf("%+v", rs)
	}
	b, _ := json.Marshal(rs[0])
	if !strings.Contains(string(b), `"ttl":"1m30s"`) {
		t.Fatalf("marshal: %s", b)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`2.5`), &d); err != nil || time.Duration(d) != 2500*time.Millisecond {
		t.Fatalf("seconds: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Fatal("bad duration accepted")
	}
}
