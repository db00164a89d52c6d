package topics

import "testing"

// Family puts every topic in one of three classes and names it by a filter
// that matches it, so that counting and logging by family stays bounded:
// a KubeEdge topic by the KubeEdge filter it matches (either form), others
// by their first levels.
func TestFamily(t *testing.T) {
	cases := []struct{ topic, class, filter string }{
		// Device-ID-only form (KubeEdge v1.12-v1.15, legacy mappers).
		{"$hw/events/device/dev1/state/get", FamilyKubeEdge, "$hw/events/device/+/state/get"},
		{"$hw/events/device/dev1/twin/update/delta", FamilyKubeEdge, "$hw/events/device/+/twin/update/delta"},
		// Namespaced form (v1.16+ device IDs).
		{"$hw/events/device/ns/dev1/state/get", FamilyKubeEdge, "$hw/events/device/+/+/state/get"},
		{"$hw/events/device/ns/dev1/twin/update", FamilyKubeEdge, "$hw/events/device/+/+/twin/+"},
		{"$hw/events/connected/dev1", FamilyKubeEdge, "$hw/events/connected/+"},
		{"$hw/events/device/a/b/c/twin/update", FamilyKubeEdge, "$hw/events/device/#"},
		{"$ke/x", FamilyKubeEdge, "$ke/x"},
		{"$other/a/b/c", FamilyOther, "$other/a/b/#"},
		{Root + "/job/K/ns/j/global", FamilySedna, Root + "/job/K/#"},
		{Root + "/x", FamilySedna, Root + "/x"},
		{"sensors/room1/t", FamilyOther, "sensors/room1/#"},
		{"sensors/room1", FamilyOther, "sensors/room1"},
		{"a", FamilyOther, "a"},
	}
	for _, c := range cases {
		class, filter := Family(c.topic)
		if class != c.class || filter != c.filter {
			t.Errorf("Family(%q) = %q, %q; want %q, %q", c.topic, class, filter, c.class, c.filter)
		}
		if !Match(filter, c.topic) {
			t.Errorf("Family(%q): %q does not match it", c.topic, filter)
		}
	}
}

// The two forms of a device topic do not overlap across directions: no
// uplink topic of one form is carried down by a filter of the other, and
// the reverse, save the one documented case of a namespaced device named
// "twin" (its "updated" topic matches the device-ID-only "+/twin/+").
func TestKubeEdgeFormsDoNotOverlap(t *testing.T) {
	for _, id := range []string{"dev1", "ns/dev1", "ns/state", "ns/twin", "state", "twin"} {
		for _, suffix := range []string{"twin/update", "twin/get", "twin/cloud_updated", "state/update", "state/get"} {
			topic := "$hw/events/device/" + id + "/" + suffix
			for _, f := range KubeEdgeDownlinkFilters {
				if Match(f, topic) {
					t.Errorf("uplink topic %q matches downlink filter %q", topic, f)
				}
			}
		}
		for _, suffix := range []string{"twin/update/delta", "twin/update/document", "twin/update/result", "twin/get/result", "updated", "state/update/result"} {
			topic := "$hw/events/device/" + id + "/" + suffix
			for _, f := range KubeEdgeUplinkFilters {
				if Match(f, topic) && topic != "$hw/events/device/ns/twin/updated" {
					t.Errorf("downlink topic %q matches uplink filter %q", topic, f)
				}
			}
		}
	}
	if !Match("$hw/events/device/+/twin/+", "$hw/events/device/ns/twin/updated") {
		t.Error("the documented overlap is gone: update the comment on KubeEdgeUplinkFilters")
	}
	for _, f := range append(append(append([]string{}, KubeEdgeUplinkFilters...), KubeEdgeDownlinkFilters...), KubeEdgeUncarriedFilters...) {
		if err := ValidateFilter(f); err != nil {
			t.Error(err)
		}
	}
}
