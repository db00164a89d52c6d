package topics

import (
	"fmt"
	"strings"
)

// Match reports whether topic matches the MQTT filter, with the rules of
// MQTT 3.1.1 section 4.7: '+' matches one level, '#' (last) matches any
// number of levels including the parent, and neither matches a first level
// that starts with '$' (so "#" does not match "$hw/events/upload/x").
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a".
			return fmore == tmore || (!tmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// ValidateFilter checks an MQTT subscription filter: not empty, '#' only
// as the whole last level, '+' only as a whole level, no NUL.
func ValidateFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("topics: empty filter")
	}
	if strings.ContainsRune(filter, 0) {
		return fmt.Errorf("topics: filter %q contains NUL", filter)
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("topics: filter %q: '#' must be the whole last level", filter)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("topics: filter %q: '+' must be a whole level", filter)
		}
	}
	return nil
}

// ValidateTopic checks a concrete topic a message is published to: not
// empty, no wildcards, no NUL, at most 65,535 bytes.
func ValidateTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("topics: empty topic")
	case len(topic) > 65535:
		return fmt.Errorf("topics: topic is %d bytes, over 65535", len(topic))
	case strings.ContainsAny(topic, "+#\x00"):
		return fmt.Errorf("topics: topic %q contains a wildcard or NUL", topic)
	}
	return nil
}

// KubeEdgeUplinkFilters are the KubeEdge EventBus topics that device apps
// and mappers publish on an edge node's broker; the bridge carries them to
// the cloud under NodeKubeEdgePrefix with their payloads unchanged.
var KubeEdgeUplinkFilters = []string{
	"$hw/events/upload/#",
	"$hw/events/device/+/+/state/update",
	"$hw/events/device/+/+/twin/+",
	"$hw/events/node/+/membership/get",
	"$ke/events/device/+/data/update",
	"SYS/dis/upload_records",
	"+/user/#",
}

// KubeEdgeDownlinkFilters are the KubeEdge EventBus topics the cloud may
// send to an edge node (via ToNodeKubeEdgePrefix); they appear on the edge
// broker under their original names. The "$" filters are listed one by one
// because "#" never matches a topic that starts with '$'.
var KubeEdgeDownlinkFilters = []string{
	"$hw/events/device/+/+/twin/update/delta",
	"$hw/events/device/+/+/twin/update/document",
	"$hw/events/device/+/+/twin/update/result",
	"$hw/events/device/+/+/twin/get/result",
	"$hw/events/device/+/+/updated",
	"$hw/events/node/+/membership/updated",
	"$hw/events/node/+/membership/get/result",
	"$ke/events/device/+/data/update",
	"+/user/#",
}
