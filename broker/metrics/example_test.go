package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sedna-go/sedna/broker/metrics"
)

// One Set per process: the parts count on it, and a queue's backlog is
// read at each scrape of /metrics; a node's queue names its node, and the
// cloud's outbox the node each stream is for.
func Example() {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Refused.WithLabelValues("queue-full").Inc()
	m.WatchQueue("uplink", func() []metrics.Backlog {
		return []metrics.Backlog{{Stream: "events", Node: "edge1", Messages: 3, Bytes: 120}}
	})
	m.WatchQueue("downlink", func() []metrics.Backlog {
		return []metrics.Backlog{{Node: "edge1", Messages: 2, Bytes: 80}}
	})

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "sedna_broker_refused_publishes_total") || strings.HasPrefix(line, "sedna_queue_backlog_messages") {
			fmt.Println(line)
		}
	}
	// Output:
	// sedna_broker_refused_publishes_total{reason="queue-full"} 1
	// sedna_queue_backlog_messages{node="edge1",queue="downlink",stream=""} 2
	// sedna_queue_backlog_messages{node="edge1",queue="uplink",stream="events"} 3
}
