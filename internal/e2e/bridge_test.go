package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

func rule(filter string, stream topics.Stream, ttl time.Duration) bridge.Rule {
	return bridge.Rule{Filter: filter, Direction: bridge.Out, RemotePrefix: topics.NodeAppPrefix("{node}"), Stream: stream, TTL: broker.Duration(ttl)}
}

// edgeWith starts an edge agent with a custom configuration.
func edgeWith(t testing.TB, cfg edge.Config) *edge.Agent {
	t.Helper()
	if cfg.Broker.Listen == "" {
		cfg.Broker.Listen = "127.0.0.1:0"
	}
	if cfg.Metrics == "" {
		cfg.Metrics = "off"
	}
	cfg.Cloud.Username, cfg.Cloud.Password = cfg.Node, password
	a, err := edge.Start(cfg, edge.Options{Paradigms: all.All(), Logger: testLogger(t), KeepMemoryLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type arrival struct {
	mu    sync.Mutex
	order []string
	ch    chan struct{}
}

func (a *arrival) add(s string) {
	a.mu.Lock()
	a.order = append(a.order, s)
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
}

func (a *arrival) waitFor(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		a.mu.Lock()
		if len(a.order) >= n {
			out := append([]string{}, a.order...)
			a.mu.Unlock()
			return out
		}
		got := len(a.order)
		a.mu.Unlock()
		select {
		case <-a.ch:
		case <-deadline:
			t.Fatalf("%d of %d arrived", got, n)
		}
	}
}

func consumeTopics(t testing.TB, url, id, dir string) *arrival {
	a := &arrival{ch: make(chan struct{}, 1)}
	cons, err := startRawConsumer(t, url, id, openStore(t, dir), func(d deliveryView) {
		if strings.Contains(d.Topic, "/app/") {
			a.add(d.Topic[strings.Index(d.Topic, "/app/")+5:] + " " + string(d.Payload[:min(len(d.Payload), 12)]))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return a
}

// Streams have priorities: with a backlog of bulk data (model chunks,
// say) queued while the link was down, events published after it still go
// first when the link comes back. A message whose TTL passed while it
// waited is dropped, not sent late, and counted.
func TestStreamPriorityAndTTL(t *testing.T) {
	dir := t.TempDir()
	cl := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer cl.Close()
	link := proxyTo(t, cl.BrokerURL())
	got := consumeTopics(t, cl.BrokerURL(), "consumer-p", filepath.Join(dir, "consumer"))
	link.SetDown(true)
	ag := edgeWith(t, edge.Config{Node: "edge-1", DataDir: filepath.Join(dir, "edge"), Metrics: "127.0.0.1:0",
		Cloud: edge.CloudLink{URL: "tcp://" + link.Addr()},
		ExtraRules: []bridge.Rule{rule("camera/#", topics.StreamBulk, 0), rule("alerts/#", topics.StreamEvents, 0),
			rule("stale/#", topics.StreamEvents, time.Millisecond)}})
	defer ag.Close()
	pub := client(t, "tcp://"+ag.BrokerAddr(), "pub", "", true)
	const bulk, events = 60, 20
	chunk := make([]byte, 200<<10)
	for i := 0; i < bulk; i++ {
		copy(chunk, fmt.Sprintf("chunk-%03d", i))
		if tok := pub.Publish("camera/frame", 1, false, chunk); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	for i := 0; i < 5; i++ {
		pub.Publish("stale/reading", 1, false, []byte("stale")).Wait()
	}
	for i := 0; i < events; i++ {
		pub.Publish("alerts/fire", 1, false, []byte(fmt.Sprintf("alert-%03d", i))).Wait()
	}
	link.SetDown(false)
	order := got.waitFor(t, bulk+events)
	lastEvent, bulkBefore := -1, 0
	for i, s := range order {
		if strings.HasPrefix(s, "alerts/") {
			lastEvent = i
		}
		if strings.HasPrefix(s, "stale/") {
			t.Fatalf("a message whose TTL passed was delivered: %s", s)
		}
	}
	for _, s := range order[:lastEvent+1] {
		if strings.HasPrefix(s, "camera/") {
			bulkBefore++
		}
	}
	t.Logf("all %d events arrived after %d of %d bulk chunks", events, bulkBefore, bulk)
	if bulkBefore > 16 {
		t.Fatalf("events waited behind %d bulk chunks: %v", bulkBefore, order[:lastEvent+1])
	}
	// The expired messages are counted on the edge's /metrics.
	resp, err := http.Get("http://" + ag.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`sedna_bridge_expired_messages_total{stream="events"} 5`, `sedna_queue_backlog_messages{node="edge-1",queue="uplink",stream="bulk"}`,
		`sedna_bridge_link_up{link="cloud"} 1`, `sedna_bridge_sent_messages_total{stream="bulk"} 60`, "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A message the cloud refuses (here: over the cloud broker's packet size
// limit, so it drops the connection) is dead-lettered at the edge after a
// few tries, and the stream goes on.
func TestRefusedMessageIsDeadLettered(t *testing.T) {
	dir := t.TempDir()
	cl, err := cloud.Start(cloud.Config{DataDir: filepath.Join(dir, "cloud"), Metrics: "off",
		Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0", MaxPacketSize: 64 << 10}},
		cloud.Options{Paradigms: all.All(), Logger: testLogger(t), Credentials: credentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := consumeTopics(t, cl.BrokerURL(), "consumer-r", filepath.Join(dir, "consumer"))
	link := proxyTo(t, cl.BrokerURL())
	link.SetDown(true)
	ag := edgeWith(t, edge.Config{Node: "edge-1", DataDir: filepath.Join(dir, "edge"),
		Cloud:      edge.CloudLink{URL: "tcp://" + link.Addr(), ReconnectMax: broker.Duration(200 * time.Millisecond)},
		ExtraRules: []bridge.Rule{rule("camera/#", topics.StreamBulk, 0)}})
	defer ag.Close()
	pub := client(t, "tcp://"+ag.BrokerAddr(), "pub", "", true)
	// Both wait in the queue first, so the first frame carries both: the
	// bridge must narrow the suspect down to the one message.
	pub.Publish("camera/big", 1, false, make([]byte, 100<<10)).Wait()
	pub.Publish("camera/small", 1, false, []byte("small-after")).Wait()
	link.SetDown(false)
	order := got.waitFor(t, 1)
	if order[0] != "camera/small small-after" {
		t.Fatalf("first arrival %q", order[0])
	}
	dl, err := ag.Bridge().DeadLetters().List(0)
	if err != nil || len(dl) != 1 || dl[0].Reason != "refused" || dl[0].Topic != topics.NodeAppPrefix("edge-1")+"camera/big" || len(dl[0].Payload) != 100<<10 {
		t.Fatalf("dead letters: %+v %v", dl, err)
	}
	t.Logf("dead-lettered: %s", dl[0].Detail)
}

// A full queue with the refuse policy gives no PUBACK (and disconnects an
// MQTT 3.1.1 publisher, which keeps its message); what was taken arrives.
func TestFullQueueRefusesWithoutLoss(t *testing.T) {
	dir := t.TempDir()
	cl := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer cl.Close()
	link := proxyTo(t, cl.BrokerURL())
	got := consumeTopics(t, cl.BrokerURL(), "consumer-f", filepath.Join(dir, "consumer"))
	link.SetDown(true)
	ag := edgeWith(t, edge.Config{Node: "edge-1", DataDir: filepath.Join(dir, "edge"), Cloud: edge.CloudLink{URL: "tcp://" + link.Addr()},
		Queue: edge.QueueConfig{MaxBytes: 64 << 10}, ExtraRules: []bridge.Rule{rule("sensors/#", topics.StreamTelemetry, 0)}})
	defer ag.Close()
	pub := client(t, "tcp://"+ag.BrokerAddr(), "pub", "", true)
	acked := 0
	for i := 0; i < 200; i++ {
		tok := pub.Publish("sensors/t", 1, false, []byte(fmt.Sprintf("m-%04d", i)+strings.Repeat("x", 1000)))
		if !tok.WaitTimeout(3*time.Second) || tok.Error() != nil || !pub.IsConnectionOpen() {
			break
		}
		acked++
	}
	if acked == 0 || acked == 200 {
		t.Fatalf("%d of 200 acknowledged: the queue limit did not apply", acked)
	}
	link.SetDown(false)
	order := got.waitFor(t, acked)
	for i := 0; i < acked; i++ {
		if want := fmt.Sprintf("sensors/t m-%04d", i); !strings.HasPrefix(order[i], want) {
			t.Fatalf("arrival %d is %q, want %q", i, order[i], want)
		}
	}
	t.Logf("%d acknowledged before the queue was full; all arrived", acked)
}

// A board without a real-time clock queued messages stamped in 1970, with a
// TTL and under a maximum age; its clock is set before its link comes up.
// The messages still reach the cloud.
func TestMessagesStampedIn1970AreNotExpired(t *testing.T) {
	dir := t.TempDir()
	m := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer m.Close()
	a, err := edge.Start(edge.Config{Node: "edge-1", DataDir: filepath.Join(dir, "edge"), Broker: edge.BrokerConfig{Listen: "127.0.0.1:0"},
		Cloud: edge.CloudLink{URL: m.BrokerURL(), Username: "edge-1", Password: password},
		Queue: edge.QueueConfig{MaxAge: broker.Duration(time.Hour)}, Metrics: "off"},
		edge.Options{Paradigms: all.All(), Logger: testLogger(t), KeepMemoryLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	topic := topics.NodeAppPrefix("edge-1") + "boot/1970"
	got := consumeTopics(t, m.BrokerURL(), "boot-consumer", filepath.Join(dir, "consumer"))
	boot := time.Unix(60, 0)
	recs := []queue.Record{
		{Topic: topic, Payload: []byte("a"), QoS: 1, Time: boot},
		{Topic: topic, Payload: []byte("b"), QoS: 1, Time: boot, Expires: boot.Add(time.Minute)},
	}
	if _, err := a.Bridge().Queue().Append(string(topics.StreamTelemetry), recs, nil); err != nil {
		t.Fatal(err)
	}
	if arrived := got.waitFor(t, 2); len(arrived) != 2 {
		t.Fatalf("arrived %v", arrived)
	}
}
