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
