package topics

import "testing"

// Delivered puts what the cloud sends a node where the default rules do,
// and refuses what is not for that node.
func TestDelivered(t *testing.T) {
	ref := JobRef{Kind: "FederatedLearningJob", Namespace: "default", Name: "fl"}
	for _, tc := range []struct {
		node, topic, want string
		ok                bool
	}{
		{"e1", ToNodeJob("e1", ref, "global"), JobTopic(ref, "global"), true},
		{"e1", ToNodeKubeEdge("e1", KubeEdgeTwinUpdate("default/d", "/delta")), "$hw/events/device/default/d/twin/update/delta", true},
		{"e1", ToNodeApp("e1", "lights/on"), "lights/on", true},
		{"e1", ToNodeJob("e2", ref, "global"), "", false},
		{"e1", ToNodePrefix("e1") + "other/x", "", false},
		{"e1", "plain/topic", "", false},
	} {
		got, ok := Delivered(tc.node, tc.topic)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Delivered(%s, %s) = %q, %v; want %q, %v", tc.node, tc.topic, got, ok, tc.want, tc.ok)
		}
	}
}
