package topics

import "testing"

func TestRoutingKeys(t *testing.T) {
	for _, c := range []struct{ topic, key string }{
		{Uplink("edge-1", StreamEvents), "sedna.v1.node.edge-1.up.events"},
		{Uplink("edge.3", StreamEvents), "sedna.v1.node.edge~3.up.events"},
		{"a.b/c", "a/b.c"},
	} {
		if got := RoutingKeyOf(c.topic); got != c.key {
			t.Errorf("RoutingKeyOf(%q) = %q; want %q", c.topic, got, c.key)
		}
		if got := TopicOfRoutingKey(c.key); got != c.topic {
			t.Errorf("TopicOfRoutingKey(%q) = %q; want %q", c.key, got, c.topic)
		}
	}
	if got := UplinkRoutingPattern(); got != "sedna.v1.node.*.up.*" {
		t.Errorf("UplinkRoutingPattern() = %q", got)
	}
}
