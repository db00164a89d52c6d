package topics

import (
	"fmt"
	"strings"
	"unicode/utf8"
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

// ValidateFilter checks an MQTT subscription filter: not empty, at most
// 65,535 bytes of well-formed UTF-8, '#' only as the whole last level, '+'
// only as a whole level, no NUL.
func ValidateFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("topics: empty filter")
	}
	if err := validUTF8("filter", filter); err != nil {
		return err
	}
	// Level by level, without allocating: brokers check every delivery.
	for rest := filter; ; {
		l, more, last := rest, "", true
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			l, more, last = rest[:i], rest[i+1:], false
		}
		if strings.Contains(l, "#") && (l != "#" || !last) {
			return fmt.Errorf("topics: filter %q: '#' must be the whole last level", filter)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("topics: filter %q: '+' must be a whole level", filter)
		}
		if last {
			return nil
		}
		rest = more
	}
}

// MaxTopicLen is MQTT's bound on a topic name or filter, in bytes.
const MaxTopicLen = 65535

// ValidateTopic checks a concrete topic a message is published to, as MQTT
// requires of every broker and client: not empty, at most 65,535 bytes of
// well-formed UTF-8, no NUL, no wildcard. A topic that breaks one of these
// makes a conforming client drop its connection when it receives it (and
// reconnect, and receive it again), so none may ever be published, whoever
// asks and by whatever path.
func ValidateTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("topics: empty topic")
	}
	if err := validUTF8("topic", topic); err != nil {
		return err
	}
	if i := strings.IndexAny(topic, "+#"); i >= 0 {
		return fmt.Errorf("topics: topic %q has the wildcard %q at byte %d", topic, topic[i], i)
	}
	return nil
}

// validUTF8 checks the length, the encoding and the absence of NUL.
func validUTF8(what, s string) error {
	if len(s) > MaxTopicLen {
		return fmt.Errorf("topics: %s of %d bytes, over MQTT's %d", what, len(s), MaxTopicLen)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				return fmt.Errorf("topics: %s has a NUL at byte %d", what, i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("topics: %s is not valid UTF-8 at byte %d", what, i)
		}
		i += n
	}
	return nil
}

// KubeEdge's EventBus names a device in one of two forms, and the default
// rules carry both (docs/TOPICS.md, "KubeEdge's EventBus topics"):
//
//   - device-ID-only, "$hw/events/device/{name}/twin/update": every device
//     up to KubeEdge v1.15, v1alpha2 devices and legacy mappers after that;
//     EventBus subscribes to "$hw/events/device/+/twin/+" up to at least
//     v1.22;
//   - namespaced, "$hw/events/device/{namespace}/{name}/twin/update": since
//     v1.16 a device's ID is "{namespace}/{name}" (kubeedge#5329), one more
//     level, and the latest EventBus subscribes to
//     "$hw/events/device/+/+/twin/+".
//
// The forms differ by one level, so no topic of one matches a filter of the
// other, save one: for a namespaced device named "twin",
// "$hw/events/device/{namespace}/twin/updated" (edgecore's, carried down)
// also matches the device-ID-only uplink filter "$hw/events/device/+/twin/+".
// That is harmless: device apps do not publish it, and the bridge never
// captures what it republishes from the downlink.

// KubeEdgeUplinkFilters are the KubeEdge EventBus topics that device apps
// and mappers publish on an edge node's broker, the ones KubeEdge's EventBus
// subscribes to in v1.12 to the latest; the bridge carries them to the
// cloud under NodeKubeEdgePrefix with their payloads unchanged.
var KubeEdgeUplinkFilters = []string{
	"$hw/events/upload/#",
	// twin/update, twin/get, twin/cloud_updated; state/update.
	"$hw/events/device/+/twin/+", // device-ID-only: devices up to v1.15; EventBus up to at least v1.22
	"$hw/events/device/+/state/update",
	"$hw/events/device/+/+/twin/+", // namespaced: device IDs since v1.16; latest EventBus
	"$hw/events/device/+/+/state/update",
	"$hw/events/node/+/membership/get",
	// Not subscribed by edgecore: a mapper's data for local consumers,
	// carried so that cloud apps see it too (the project's choice).
	"$ke/events/device/+/data/update",
	"SYS/dis/upload_records",
	"+/user/#",
}

// KubeEdgeDownlinkFilters are the KubeEdge EventBus topics the cloud may
// send to an edge node (via ToNodeKubeEdgePrefix), the ones edgecore
// publishes for device apps in v1.12 to the latest; they appear on the edge
// broker under their original names. The "$" filters are listed one by one
// because "#" never matches a topic that starts with '$'.
//
// "$ke/events/device/+/data/update" and "+/user/#" are carried both ways:
// "+/user/#" because KubeEdge does (EventBus subscribes to it, and a cloud
// Rule whose target is the EventBus publishes any topic on the node), the
// data topic so that a cloud app may feed the node's local consumers. Both
// directions are safe: the bridge never captures what it republishes from
// the downlink, and the two directions use different cloud topics.
var KubeEdgeDownlinkFilters = []string{
	// Device-ID-only form (v1.12-v1.15, v1alpha2 devices, legacy mappers).
	"$hw/events/device/+/twin/update/delta",
	"$hw/events/device/+/twin/update/document",
	"$hw/events/device/+/twin/update/result",
	"$hw/events/device/+/twin/get/result",
	"$hw/events/device/+/updated",
	"$hw/events/device/+/state/update/result",
	// Namespaced form (device IDs "{namespace}/{name}" since v1.16).
	"$hw/events/device/+/+/twin/update/delta",
	"$hw/events/device/+/+/twin/update/document",
	"$hw/events/device/+/+/twin/update/result",
	"$hw/events/device/+/+/twin/get/result",
	"$hw/events/device/+/+/updated",
	"$hw/events/device/+/+/state/update/result",
	"$hw/events/node/+/membership/updated",
	"$hw/events/node/+/membership/get/result",
	"$hw/events/node/+/authInfo/get/result",
	"$ke/events/device/+/data/update",
	"+/user/#",
}

// KubeEdgeUncarriedFilters are topics KubeEdge defines but its EventBus
// neither subscribes to nor publishes in v1.12 to the latest (state/get is
// in DeviceTwin's action map but matches no subscription; the
// connected/disconnected life-cycle topics are dormant). No default rule
// carries them; they are listed so that a message on one is named by
// Family.
var KubeEdgeUncarriedFilters = []string{
	"$hw/events/device/+/state/get",
	"$hw/events/device/+/+/state/get",
	"$hw/events/connected/+",
	"$hw/events/disconnected/+",
}

// The classes Family puts a topic in.
const (
	FamilyKubeEdge = "kubeedge" // KubeEdge's "$hw/" and "$ke/" topics and every KubeEdge filter
	FamilySedna    = "sedna"    // the project's tree, under Root
	FamilyOther    = "other"    // everything else
)

// Family names the family of topic, to count and log messages by topic
// with a bounded number of series and lines: class is FamilyKubeEdge,
// FamilySedna or FamilyOther; filter matches topic and stands for its
// family: the KubeEdge filter it matches, or else its first levels (three
// for "$" topics, four under Root, two for others) followed by "/#" (the
// topic itself when it has no more levels).
func Family(topic string) (class, filter string) {
	for _, fs := range [...][]string{KubeEdgeUplinkFilters, KubeEdgeDownlinkFilters, KubeEdgeUncarriedFilters} {
		for _, f := range fs {
			if Match(f, topic) {
				return FamilyKubeEdge, f
			}
		}
	}
	switch {
	case strings.HasPrefix(topic, "$hw/") || strings.HasPrefix(topic, "$ke/"):
		return FamilyKubeEdge, firstLevels(topic, 3)
	case strings.HasPrefix(topic, "$"):
		return FamilyOther, firstLevels(topic, 3)
	case strings.HasPrefix(topic, Root+"/"):
		return FamilySedna, firstLevels(topic, 4)
	}
	return FamilyOther, firstLevels(topic, 2)
}

// firstLevels is the first n levels of topic and "/#", or topic if it has
// at most n levels.
func firstLevels(topic string, n int) string {
	i := 0
	for ; n > 0; n-- {
		j := strings.IndexByte(topic[i:], '/')
		if j < 0 {
			return topic
		}
		i += j + 1
	}
	return topic[:i] + "#"
}
