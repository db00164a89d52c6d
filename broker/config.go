package broker

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sedna-go/sedna/broker/queue"
)

// The values of configuration files that more than one part of the
// broker reads: the YAML of a node (edge.Config) and of the cloud
// (cloud.Config) embeds them.

// QueueLimits bound a durable queue as a config file says them (the
// node's uplink, the cloud's per-node outbox).
type QueueLimits struct {
	// MaxBytes bounds what waits; default 256 MiB on a node, 1 GiB for
	// the cloud's outbox.
	MaxBytes int64 `json:"maxBytes,omitempty"`
	// MaxAge drops what waited longer; default none.
	MaxAge Duration `json:"maxAge,omitempty"`
	// Policy when full: "refuse" (default) or "drop-oldest".
	Policy queue.FullPolicy `json:"policy,omitempty"`
}

// Duration is a time.Duration written as "30s" in YAML and JSON.
type Duration time.Duration

// UnmarshalJSON reads "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want \"30s\" or seconds, got %s", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// SplitURLs reads a broker URL list: one URL, or several separated by
// commas (the nodes of one broker cluster), each tcp://, ssl://, ws:// or
// wss:// (paho's other spellings of them too).
func SplitURLs(s string) ([]string, error) {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		scheme, _, ok := strings.Cut(u, "://")
		switch {
		case u == "":
			return nil, fmt.Errorf("cloud URL %q: an empty URL in the list", s)
		case !ok || (scheme != "tcp" && scheme != "ssl" && scheme != "ws" && scheme != "wss" && scheme != "mqtt" && scheme != "mqtts" && scheme != "tls"):
			return nil, fmt.Errorf("cloud URL %q: want tcp://, ssl://, ws:// or wss://", u)
		}
		urls = append(urls, u)
	}
	return urls, nil
}
