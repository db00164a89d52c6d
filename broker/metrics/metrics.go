// Package metrics owns the Prometheus series of the broker family: the
// MQTT server (clients, refusals, authorization, slow subscribers), the
// durable queues and dead letters (backlog, drops) and both halves of the
// bridge (frames sent, acknowledged, expired, duplicates, the link). One
// Set per process is made and passed to every part, so each series is
// registered once whichever parts a process runs. The names, help texts
// and labels are docs/ARCHITECTURE.md's "Metrics"; they do not change.
//
// It holds no hook and imports nothing of the project: the broker's hook
// that counts clients is the broker's, and a queue gives its backlog as a
// function (WatchQueue).
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Set is the Prometheus series of a broker and its bridge. Make one per
// process with New and pass it to every part.
type Set struct {
	Sent            *prometheus.CounterVec // messages sent over a bridge link, by stream
	SentBytes       *prometheus.CounterVec // payload bytes sent, by stream
	Frames          *prometheus.CounterVec // frames sent, by stream
	Acked           *prometheus.CounterVec // messages the far side acknowledged, by stream
	Resent          *prometheus.CounterVec // messages sent again after a reconnect, by stream
	Expired         *prometheus.CounterVec // messages dropped unsent because their TTL passed, by stream
	Dropped         *prometheus.CounterVec // messages dropped by a full queue's policy, by queue and reason
	Refused         *prometheus.CounterVec // publishes refused (queue full, disk full), by reason
	Duplicates      *prometheus.CounterVec // duplicates dropped, by where
	DeadLetters     *prometheus.CounterVec // messages dead-lettered, by component and reason
	ACLDenied       *prometheus.CounterVec // messages and subscriptions denied by Authorize, by path
	ConnectRefused  *prometheus.CounterVec // connections refused, by reason
	SlowDisconnects *prometheus.CounterVec // slow subscribers disconnected, by session (clean, persistent)
	Lost            *prometheus.CounterVec // messages a subscriber lost, by reason
	LinkUp          *prometheus.GaugeVec   // 1 while a bridge link is connected, by link
	Reconnects      *prometheus.CounterVec // bridge connections made, by link
	Clients         prometheus.Gauge       // connected MQTT clients
	Received        prometheus.Counter     // publishes received by the broker
	Unrouted        *prometheus.CounterVec // messages on an edge broker no bridge rule carries and no subscriber takes, by family and source

	mu     sync.Mutex
	queues map[string]func() []Backlog
}

// New makes the series and registers them with reg (for example a
// fresh prometheus.NewRegistry(), served on /metrics).
func New(reg prometheus.Registerer) *Set {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sedna", Name: name, Help: help}, labels)
	}
	m := &Set{
		Sent:            cv("bridge_sent_messages_total", "Messages sent over a bridge link.", "stream"),
		SentBytes:       cv("bridge_sent_bytes_total", "Payload bytes sent over a bridge link.", "stream"),
		Frames:          cv("bridge_frames_total", "Frames sent over a bridge link.", "stream"),
		Acked:           cv("bridge_acked_messages_total", "Messages acknowledged by the far side.", "stream"),
		Resent:          cv("bridge_resent_messages_total", "Messages sent again after a reconnect.", "stream"),
		Expired:         cv("bridge_expired_messages_total", "Messages dropped unsent because their TTL passed.", "stream"),
		Dropped:         cv("queue_dropped_messages_total", "Messages dropped by a full queue's policy.", "queue", "reason"),
		Refused:         cv("broker_refused_publishes_total", "Publishes refused before their PUBACK.", "reason"),
		Duplicates:      cv("dedup_duplicates_total", "Duplicate messages dropped.", "where"),
		DeadLetters:     cv("dead_letters_total", "Messages moved to the dead-letter store.", "component", "reason"),
		ACLDenied:       cv("acl_denied_total", "Messages and subscriptions denied by the authorization point, by path.", "path"),
		ConnectRefused:  cv("broker_refused_connections_total", "Connections refused: bad credentials, a will or client ID not allowed, too many, too slow, too large before login.", "reason"),
		SlowDisconnects: cv("broker_slow_subscribers_total", "Subscribers disconnected for reading too slowly, by session.", "session"),
		Lost:            cv("broker_lost_messages_total", "Messages a subscriber lost: its clean session ended as slow, its session was full while it was away, its queue was full (QoS 0).", "reason"),
		LinkUp:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sedna", Name: "bridge_link_up", Help: "1 while a bridge link is connected."}, []string{"link"}),
		Reconnects:      cv("bridge_connects_total", "Bridge connections made.", "link"),
		Clients:         prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sedna", Name: "broker_clients", Help: "Connected MQTT clients."}),
		Received:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sedna", Name: "broker_received_publishes_total", Help: "Publishes received by the broker."}),
		Unrouted:        cv("broker_unrouted_messages_total", "Messages published on an edge broker that no bridge rule carries and no subscriber receives (retained ones excepted), by topic family (kubeedge, sedna, other) and source (app, process).", "family", "source"),
		queues:          map[string]func() []Backlog{},
	}
	if reg != nil {
		reg.MustRegister(m.Sent, m.SentBytes, m.Frames, m.Acked, m.Resent, m.Expired, m.Dropped, m.Refused,
			m.Duplicates, m.DeadLetters, m.ACLDenied, m.ConnectRefused, m.SlowDisconnects, m.Lost,
			m.LinkUp, m.Reconnects, m.Clients, m.Received, m.Unrouted, queueCollector{m})
	}
	return m
}

// decodeReasons are why a message that does not decode is dead-lettered
// (topics.ReasonOf).
var decodeReasons = []string{"malformed", "unknown-version", "too-large", "too-deep", "other"}

// Zero makes the series a side ("edge" or "cloud") can count exist at
// zero from the start: duplicates dropped, dead letters by component and
// reason, refusals, authorization denials, slow subscribers and lost
// messages, the bridge's connects (edge).
func (m *Set) Zero(side string) {
	if m == nil {
		return
	}
	dead := map[string][]string{}
	switch side {
	case "edge":
		m.Duplicates.WithLabelValues("edge-inbox")
		m.Reconnects.WithLabelValues("cloud")
		m.LinkUp.WithLabelValues("cloud")
		dead["edge/broker"] = []string{"too-large"}
		dead["edge/capture"] = append([]string{"bad-topic"}, decodeReasons...)
		dead["edge/inbox"] = append([]string{"no-rule", "bad-topic"}, decodeReasons...)
		dead["edge/uplink"] = []string{"refused"}
	case "cloud":
		m.Duplicates.WithLabelValues("cloud-ingress")
		dead["cloud/broker"] = []string{"too-large"}
		dead["cloud/ingress"] = append([]string{"not-allowed", "mismatch", "bad-topic"}, decodeReasons...)
		dead["cloud/downlink"] = []string{"too-large"}
		dead["cloud/control"] = decodeReasons
	}
	for comp, reasons := range dead {
		for _, r := range reasons {
			m.DeadLetters.WithLabelValues(comp, r)
		}
	}
	for vec, values := range map[*prometheus.CounterVec][]string{
		m.Refused:         {"queue-full", "store-error", "too-large", "downlink"},
		m.ConnectRefused:  {"bad-credentials", "client-id", "will", "too-many", "too-many-unauthenticated", "connect-timeout", "abandoned", "plaintext-on-tls"},
		m.ACLDenied:       {"publish", "retain", "will", "frame", "inline", "subscribe"},
		m.SlowDisconnects: {"clean", "persistent"},
		m.Lost:            {"slow-clean-session", "session-full", "queue-full"},
	} {
		for _, v := range values {
			vec.WithLabelValues(v)
		}
	}
}

// Backlog is what one stream of a durable queue holds, as the
// sedna_queue_* series show it.
type Backlog struct {
	Stream   string    // the stream's name
	Node     string    // the node the stream is of (a cloud outbox's), "" when none
	Messages int64     // messages waiting
	Bytes    int64     // their bytes
	Oldest   time.Time // of the oldest waiting message, zero if none
}

// WatchQueue adds the backlog of a durable queue to the series under
// name: backlog is called at each scrape. m may be nil.
func (m *Set) WatchQueue(name string, backlog func() []Backlog) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.queues[name] = backlog
	m.mu.Unlock()
}

var (
	queueLabels = []string{"queue", "stream", "node"}
	descBacklog = prometheus.NewDesc("sedna_queue_backlog_messages", "Messages waiting in a durable queue.", queueLabels, nil)
	descBytes   = prometheus.NewDesc("sedna_queue_backlog_bytes", "Bytes waiting in a durable queue.", queueLabels, nil)
	descOldest  = prometheus.NewDesc("sedna_queue_oldest_age_seconds", "Age of the oldest message waiting in a durable queue.", queueLabels, nil)
)

// queueCollector reads queue statistics at scrape time.
type queueCollector struct{ m *Set }

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBacklog
	ch <- descBytes
	ch <- descOldest
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	qs := make(map[string]func() []Backlog, len(c.m.queues))
	for k, v := range c.m.queues {
		qs[k] = v
	}
	c.m.mu.Unlock()
	now := time.Now()
	for name, backlog := range qs {
		for _, st := range backlog() {
			ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(st.Messages), name, st.Stream, st.Node)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes), name, st.Stream, st.Node)
			age := 0.0
			if !st.Oldest.IsZero() {
				age = now.Sub(st.Oldest).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, name, st.Stream, st.Node)
		}
	}
}
