package bridge

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/internal/brokertest"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/topics"
)

// Must-show 3: a PUBACK is never sent before the message is in the store.
// The store holds the uplink queue's write until the test opens a gate;
// while it is held, no PUBACK may arrive; once it arrives, the message must
// be readable from the store.
func TestPubackOnlyAfterTheMessageIsStored(t *testing.T) {
	base := brokertest.OpenStore(t, filepath.Join(t.TempDir(), "s"))
	t.Cleanup(func() { _ = base.Close() })
	gs := &gatedStore{Store: base, prefix: "bridge/up/m/", pending: make(chan struct{}, 1), gate: make(chan struct{})}
	rules := append(DefaultRules(), Rule{Filter: "sensors/#", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}")})
	srv, _ := edgeBridge(t, broker.Config{}, Config{Store: gs, Rules: rules})
	var opened bool
	// On failure, let held writes through so everything can stop.
	defer func() {
		if !opened {
			close(gs.gate)
		}
	}()

	c := brokertest.Dial(t, srv.URL(), "pub", "")
	payload := []byte("must be on disk before its PUBACK")
	for round := 0; round < 3; round++ {
		tok := c.Publish("sensors/t", 1, false, payload)
		select {
		case <-gs.pending:
		case <-time.After(10 * time.Second):
			t.Fatal("the queue never tried to write the message")
		}
		// The write is held. A PUBACK now would be a PUBACK before storing.
		select {
		case <-tok.Done():
			t.Fatalf("round %d: PUBACK arrived while the message was not yet written (err %v)", round, tok.Error())
		case <-time.After(200 * time.Millisecond):
		}
		gs.gate <- struct{}{}
		if round == 2 {
			close(gs.gate)
			opened = true
		}
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("round %d: no PUBACK after the write: %v", round, tok.Error())
		}
		found := 0
		err := base.Scan([]byte("bridge/up/m/"), nil, func(_, v []byte) error {
			if bytes.Contains(v, payload) {
				found++
			}
			return nil
		})
		if err != nil || found != round+1 {
			t.Fatalf("round %d: %d stored copies after the PUBACK (err %v)", round, found, err)
		}
	}
}

// Messages the bridge publishes itself (downlink republished locally) are
// never captured again, even when an uplink rule matches their topic.
func TestInjectedMessagesAreNotCaptured(t *testing.T) {
	s := brokertest.OpenStore(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	down := Rule{Filter: "loop/#", Direction: In, RemotePrefix: topics.ToNodeAppPrefix("{node}")}
	srv, br := edgeBridge(t, broker.Config{}, Config{Store: s,
		Rules: []Rule{{Filter: "loop/#", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}")}, down}})
	both := Rule{Filter: "loop/#", Direction: Both, RemotePrefix: topics.NodeAppPrefix("{node}")}
	if _, err := New(Config{Node: "node-a", CloudURL: "tcp://127.0.0.1:1", Store: s, Server: srv,
		Rules: []Rule{both, down}, Logger: brokertest.QuietLogger()}); err == nil {
		t.Fatal("a both-way rule whose remote prefix is the node's uplink subtree must be refused for the downlink")
	}
	// A downlink message, as the inbox delivers it, on a topic the uplink
	// rule also matches.
	br.deliver(&queue.Record{Topic: topics.ToNodeAppPrefix("node-a") + "loop/x", Payload: []byte("down"), QoS: 1})
	// A local app's publish on the same topic is captured.
	c := brokertest.Dial(t, srv.URL(), "app", "")
	if tok := c.Publish("loop/x", 1, false, []byte("up")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	got, _, err := br.Queue().Read(string(topics.StreamTelemetry), 0, 10, 1<<20)
	if err != nil || len(got) != 1 || string(got[0].Payload) != "up" {
		t.Fatalf("queue holds %d records (%v): the injected message was captured or the local one was not", len(got), err)
	}
}

func TestCaptureDeadLettersBadEnvelopes(t *testing.T) {
	s := brokertest.OpenStore(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	srv, br := edgeBridge(t, broker.Config{}, Config{Store: s, Limits: topics.Limits{MaxBody: 1024}})
	c := brokertest.Dial(t, srv.URL(), "app", "")
	good, _ := topics.NewEnvelope(topics.KindTest, "test", topics.TestBody{Run: "x", Counter: 1})
	goodRaw, _ := good.Marshal()
	v9 := *good
	v9.Version = topics.Version{Major: 9}
	v9Raw, _ := v9.Marshal()
	big := *good
	big.Body = make([]byte, 900)
	bigRaw, _ := big.Marshal()
	topic := topics.NodeEvents("node-a", "test")
	for _, p := range [][]byte{[]byte("not msgpack"), v9Raw, append(bigRaw, make([]byte, 200)...), goodRaw} {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish not acked: %v", tok.Error())
		}
	}
	dl, err := br.DeadLetters().List(0)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, d := range dl {
		reasons = append(reasons, d.Reason)
	}
	if len(dl) != 3 || reasons[0] != "malformed" || reasons[1] != "unknown-version" || reasons[2] != "too-large" {
		t.Fatalf("dead letters: %v", reasons)
	}
	// The good one is queued behind the error events the bad ones raised.
	got, _, _ := br.Queue().Read(string(topics.StreamEvents), 0, 100, 1<<20)
	var good1, errs int
	for _, r := range got {
		switch r.Topic {
		case topic:
			good1++
		case topics.NodeEvents("node-a", "error"):
			errs++
		}
	}
	if good1 != 1 || errs != 3 {
		t.Fatalf("queued: %d good, %d error events", good1, errs)
	}
}

// Issue 15: a message published on a node's broker that no bridge rule
// carries and no subscriber takes is counted by topic family and source
// (before its PUBACK) and logged at debug level once per family; one that
// a rule carries, a subscriber takes (even one away with a persistent
// session) or that is retained is not. A will counts as the app's.
func TestUnroutedPublishesAreCountedAndLoggedOnce(t *testing.T) {
	s := brokertest.OpenStore(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	m := metrics.New(prometheus.NewRegistry())
	logs := &recordingHandler{lines: make(chan slog.Record, 100)}
	srv, _ := edgeBridge(t, broker.Config{Metrics: m}, Config{Store: s, Metrics: m, Logger: slog.New(logs)})

	sub := brokertest.Dial(t, srv.URL(), "sub", "")
	if tok := sub.Subscribe("sensors/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	away := brokertest.Dial(t, srv.URL(), "away", "", func(o *paho.ClientOptions) { o.SetCleanSession(false) })
	if tok := away.Subscribe("away/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	away.Disconnect(50)

	c := brokertest.Dial(t, srv.URL(), "app", "")
	publish := func(topic string, qos byte, retain bool) {
		t.Helper()
		if tok := c.Publish(topic, qos, retain, []byte(`{"event_id":"","timestamp":0}`)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	publish("$hw/events/device/dev1/state/get", 1, false) // KubeEdge defines it; EventBus never reads it
	publish("$hw/events/device/dev1/state/get", 1, false)
	publish("$hw/events/device/dev1/twin/update", 1, false) // carried (device-ID-only form)
	publish("sensors/t", 1, false)                          // subscribed
	publish("away/x", 1, false)                             // a persistent session away takes it
	publish("nobody/retained", 1, true)                     // kept for later subscribers
	publish("nobody/qos0", 0, false)
	publish("nobody/listens/here", 1, false) // after the QoS 0 one, on the same connection
	// The downlink, with no device app subscribed.
	if err := srv.Publish(access.CloudDownlinkPrincipal, "$hw/events/device/default/dev1/twin/update/delta", []byte("{}"), false, 1); err != nil {
		t.Fatal(err)
	}

	count := func(family, source string) float64 {
		return testutil.ToFloat64(m.Unrouted.WithLabelValues(family, source))
	}
	if n := count(topics.FamilyKubeEdge, "app"); n != 2 {
		t.Errorf("kubeedge from apps: %v unrouted, want 2 (the two state/get)", n)
	}
	if n := count(topics.FamilyOther, "app"); n != 2 {
		t.Errorf("other from apps: %v unrouted, want 2 (nobody/qos0, nobody/listens/here)", n)
	}
	if n := count(topics.FamilyKubeEdge, "process"); n != 1 {
		t.Errorf("kubeedge from the downlink: %v unrouted, want 1", n)
	}

	// A will nobody takes: the app's connection drops without DISCONNECT.
	var conn net.Conn
	var mu sync.Mutex
	brokertest.Dial(t, srv.URL(), "willing", "", func(o *paho.ClientOptions) {
		o.SetWill("nobody/will", "gone", 0, false)
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			nc, err := net.Dial("tcp", u.Host)
			mu.Lock()
			conn = nc
			mu.Unlock()
			return nc, err
		})
	})
	mu.Lock()
	_ = conn.Close()
	mu.Unlock()

	want := map[string]bool{"$hw/events/device/+/state/get": true, "nobody/qos0": true, "nobody/listens/#": true,
		"$hw/events/device/+/+/twin/update/delta": true, "nobody/will": true}
	seen := map[string]int{}
	for len(seen) < len(want) {
		select {
		case r := <-logs.lines:
			if r.Level != slog.LevelDebug {
				t.Errorf("logged at %v: %s", r.Level, r.Message)
			}
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "family" {
					seen[a.Value.String()]++
				}
				return true
			})
		case <-time.After(10 * time.Second):
			t.Fatalf("logged families %v, want %v", seen, want)
		}
	}
	for f, n := range seen {
		if !want[f] || n != 1 {
			t.Errorf("family %q logged %d times", f, n)
		}
	}
	if n := count(topics.FamilyOther, "app"); n != 3 {
		t.Errorf("other from apps: %v unrouted after the will, want 3", n)
	}
}

// recordingHandler passes every record with a "family" (the unrouted
// messages' lines) to lines.
type recordingHandler struct{ lines chan slog.Record }

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = found || a.Key == "family"
		return !found
	})
	if found {
		h.lines <- r.Clone()
	}
	return nil
}

// edgeBridge starts node-a's edge broker (srv's settings) and its bridge
// (cfg's, with the node, an unreachable cloud, the server and a quiet
// logger filled in); when the test ends the bridge is closed, then the
// broker.
func edgeBridge(t *testing.T, srv broker.Config, cfg Config) (*broker.Server, *Bridge) {
	t.Helper()
	srv.Role, srv.Node, srv.Listen = access.RoleEdge, "node-a", "127.0.0.1:0"
	if srv.Logger == nil {
		srv.Logger = brokertest.QuietLogger()
	}
	s, err := broker.NewServer(srv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node, cfg.CloudURL, cfg.Server = "node-a", "tcp://127.0.0.1:1", s
	if cfg.Logger == nil {
		cfg.Logger = brokertest.QuietLogger()
	}
	br, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = br.Close()
		_ = s.Close()
	})
	return s, br
}
