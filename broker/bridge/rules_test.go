package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
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
	var d broker.Duration
	if err := json.Unmarshal([]byte(`2.5`), &d); err != nil || time.Duration(d) != 2500*time.Millisecond {
		t.Fatalf("seconds: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Fatal("bad duration accepted")
	}
}

// Every topic KubeEdge's EventBus uses from v1.12 to the latest, in the
// device-ID-only form ("$hw/events/device/{name}/...": every device up to
// v1.15, v1alpha2 devices and legacy mappers after; EventBus subscribes to
// it up to v1.22) and the namespaced form ("$hw/events/device/{ns}/{name}/
// ...": device IDs are "{ns}/{name}" since v1.16, kubeedge#5329; the
// latest EventBus subscribes to "+/+"), is carried the way KubeEdge sends
// it, and only that way; and Authorize lets each side send it.
func TestDefaultRulesCarryEveryKubeEdgeTopic(t *testing.T) {
	const node = "edge-1"
	rs, err := NewRules(node, DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	const up, down, both, none = 1, 2, 3, 0
	cases := []struct {
		name  string // KubeEdge release and role
		topic string
		dir   int
	}{
		// Uplink: device apps and mappers publish, EventBus subscribes.
		{"all releases: EventBus $hw/events/upload/#", "$hw/events/upload/dev1", up},
		{"v1.12-v1.15 device-ID-only twin/update (EventBus +/twin/+ to v1.22; legacy mapper TopicTwinUpdate)", "$hw/events/device/dev1/twin/update", up},
		{"v1.16+ namespaced twin/update (latest EventBus +/+/twin/+)", "$hw/events/device/default/dev1/twin/update", up},
		{"v1.12-v1.15 device-ID-only twin/get", "$hw/events/device/dev1/twin/get", up},
		{"v1.16+ namespaced twin/get", "$hw/events/device/default/dev1/twin/get", up},
		{"v1.12-v1.15 device-ID-only twin/cloud_updated", "$hw/events/device/dev1/twin/cloud_updated", up},
		{"v1.16+ namespaced twin/cloud_updated", "$hw/events/device/default/dev1/twin/cloud_updated", up},
		{"v1.12-v1.15 device-ID-only state/update (legacy mapper TopicStateUpdate)", "$hw/events/device/dev1/state/update", up},
		{"v1.16+ namespaced state/update (latest EventBus +/+/state/update)", "$hw/events/device/default/dev1/state/update", up},
		{"all releases: membership/get", "$hw/events/node/edge-1/membership/get", up},
		{"all releases: SYS/dis/upload_records", "SYS/dis/upload_records", up},
		// Downlink: edgecore publishes, device apps subscribe.
		{"v1.12-v1.15 device-ID-only twin/update/delta (legacy mapper TopicTwinUpdateDelta)", "$hw/events/device/dev1/twin/update/delta", down},
		{"v1.16+ namespaced twin/update/delta", "$hw/events/device/default/dev1/twin/update/delta", down},
		{"v1.12-v1.15 device-ID-only twin/update/document", "$hw/events/device/dev1/twin/update/document", down},
		{"v1.16+ namespaced twin/update/document", "$hw/events/device/default/dev1/twin/update/document", down},
		{"v1.12-v1.15 device-ID-only twin/update/result", "$hw/events/device/dev1/twin/update/result", down},
		{"v1.16+ namespaced twin/update/result", "$hw/events/device/default/dev1/twin/update/result", down},
		{"v1.12-v1.15 device-ID-only twin/get/result", "$hw/events/device/dev1/twin/get/result", down},
		{"v1.16+ namespaced twin/get/result", "$hw/events/device/default/dev1/twin/get/result", down},
		{"v1.12-v1.15 device-ID-only updated", "$hw/events/device/dev1/updated", down},
		{"v1.16+ namespaced updated", "$hw/events/device/default/dev1/updated", down},
		{"v1.12-v1.15 device-ID-only state/update/result (kubeedge#3428)", "$hw/events/device/dev1/state/update/result", down},
		{"v1.16+ namespaced state/update/result", "$hw/events/device/default/dev1/state/update/result", down},
		{"all releases: membership/updated (legacy mapper)", "$hw/events/node/edge-1/membership/updated", down},
		{"all releases: membership/get/result", "$hw/events/node/edge-1/membership/get/result", down},
		{"all releases: authInfo/get/result (cloud get_result for auth_info)", "$hw/events/node/edge-1/authInfo/get/result", down},
		// Both ways: EventBus subscribes to +/user/# and a cloud Rule
		// publishes any topic; the data topic is a mapper's (v1.4+
		// DeviceData.DataTopic) for local consumers.
		{"all releases: +/user/# (router rules)", "app/user/temp", both},
		{"v1.4+ mapper data $ke/events/device/+/data/update", "$ke/events/device/dev1/data/update", both},
		// Defined by KubeEdge, neither subscribed nor published by EventBus.
		{"state/get: in DeviceTwin's action map, no EventBus subscription", "$hw/events/device/dev1/state/get", none},
		{"namespaced state/get", "$hw/events/device/default/dev1/state/get", none},
		{"dormant life-cycle connected", "$hw/events/connected/dev1", none},
		{"dormant life-cycle disconnected", "$hw/events/disconnected/dev1", none},
	}
	ops := access.Principal{Kind: access.Operator, User: "ops"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			remoteUp := topics.NodeKubeEdgePrefix(node) + c.topic
			remoteDown := topics.ToNodeKubeEdgePrefix(node) + c.topic
			_, got, ok := rs.Out(c.topic)
			if want := c.dir&up != 0; ok != want || (ok && got != remoteUp) {
				t.Errorf("Out(%q) = %q, %v; want %v (%q)", c.topic, got, ok, want, remoteUp)
			}
			_, got, ok = rs.In(remoteDown)
			if want := c.dir&down != 0; ok != want || (ok && got != c.topic) {
				t.Errorf("In(%q) = %q, %v; want %v (%q)", remoteDown, got, ok, want, c.topic)
			}
			// Local apps publish and read every KubeEdge topic, as with
			// EventBus's broker.
			for _, path := range []access.Path{access.PathPublish, access.PathSubscribe} {
				if err := access.Authorize(access.RoleEdge, node, access.LocalAppPrincipal, path, c.topic); err != nil {
					t.Errorf("a local app: %v", err)
				}
			}
			if c.dir&up != 0 {
				// The cloud's ingress republishes it from the node's frame.
				if err := access.Authorize(access.RoleCloud, "", access.NodePrincipal(node), access.PathFrame, remoteUp); err != nil {
					t.Errorf("the node's frame: %v", err)
				}
			}
			if c.dir&down != 0 {
				if err := access.Authorize(access.RoleCloud, "", ops, access.PathPublish, remoteDown); err != nil {
					t.Errorf("a cloud operator: %v", err)
				}
				if err := access.Authorize(access.RoleEdge, node, access.CloudDownlinkPrincipal, access.PathInline, c.topic); err != nil {
					t.Errorf("the downlink on the node: %v", err)
				}
			}
		})
	}
}
