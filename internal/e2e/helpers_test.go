package e2e

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

const password = "secret"

var (
	hashOnce sync.Once
	hash     string
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SEDNA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// credentials: nodes edge-0..edge-31 and edge1..edge3, an operator "app",
// "admin" and "viewer", all with the same password (cheap bcrypt cost, for
// tests).
func credentials(t testing.TB) *access.Credentials {
	hashOnce.Do(func() {
		h, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		hash = string(h)
	})
	var users []access.User
	for i := 0; i < 32; i++ {
		users = append(users, access.User{Username: fmt.Sprintf("edge-%d", i), PasswordHash: hash, Role: access.UserNode})
	}
	for i := 1; i <= 3; i++ { // the node names of examples/sedna
		users = append(users, access.User{Username: fmt.Sprintf("edge%d", i), PasswordHash: hash, Role: access.UserNode})
	}
	users = append(users, access.User{Username: "app", PasswordHash: hash, Role: access.UserOperator},
		access.User{Username: "admin", PasswordHash: hash, Role: access.UserAdmin},
		access.User{Username: "viewer", PasswordHash: hash, Role: access.UserViewer})
	c, err := access.NewCredentials(users...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeCredentials writes the same users to a file, for processes.
func writeCredentials(t testing.TB, dir string) string {
	c := credentials(t)
	var b []byte
	b = append(b, "users:\n"...)
	for _, u := range c.Users {
		b = append(b, fmt.Sprintf("  - username: %s\n    passwordHash: %q\n    role: %s\n", u.Username, u.PasswordHash, u.Role)...)
	}
	p := filepath.Join(dir, "credentials.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startCloud(t testing.TB, dir string, listen string) *cloud.Manager {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	// The cloud may read the test's files (a federated job's validation
	// set), which are beside its data directory.
	m, err := cloud.Start(cloud.Config{DataDir: dir, Broker: cloud.BrokerConfig{Listen: listen}, Metrics: "off",
		Data: cloud.DataConfig{Dirs: []string{filepath.Dir(dir)}}},
		cloud.Options{Paradigms: all.All(), Logger: testLogger(t), Credentials: credentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sensorsRule carries sensors/# up under the node's app prefix.
var sensorsRule = bridge.Rule{Filter: "sensors/#", Direction: bridge.Out, RemotePrefix: topics.NodeAppPrefix("{node}"), Stream: topics.StreamTelemetry}

func startEdge(t testing.TB, node, dir, cloudURL string, extra ...bridge.Rule) *edge.Agent {
	t.Helper()
	return startEdgeWith(t, node, dir, cloudURL, edge.Options{}, extra...)
}

// startLinked starts a cloud manager in dir/cloud and an edge agent per
// node in dir/{node}, and waits for each agent's link to be up; when the
// test ends the agents are closed, then the cloud.
func startLinked(t testing.TB, dir string, nodes ...string) (*cloud.Manager, []*edge.Agent) {
	t.Helper()
	m := startCloud(t, filepath.Join(dir, "cloud"), "")
	t.Cleanup(func() { m.Close() })
	var agents []*edge.Agent
	for _, n := range nodes {
		a := startEdge(t, n, filepath.Join(dir, n), m.BrokerURL())
		t.Cleanup(func() { a.Close() })
		waitLink(t, a)
		agents = append(agents, a)
	}
	return m, agents
}

// startEdgeWith is startEdge with options (built-in workers of the test's).
func startEdgeWith(t testing.TB, node, dir, cloudURL string, opts edge.Options, extra ...bridge.Rule) *edge.Agent {
	t.Helper()
	opts.Logger, opts.KeepMemoryLimit = testLogger(t), true
	if opts.Paradigms == nil {
		opts.Paradigms = all.All()
	}
	a, err := edge.Start(edge.Config{Node: node, DataDir: dir, Broker: edge.BrokerConfig{Listen: "127.0.0.1:0"},
		Cloud:      edge.CloudLink{URL: cloudURL, Username: node, Password: password},
		ExtraRules: append([]bridge.Rule{sensorsRule}, extra...), Metrics: "off"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func openStore(t testing.TB, dir string) *store.Badger {
	s, err := store.OpenBadger(store.Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// brokerURLs reads a broker URL list (one URL, or several separated by
// commas).
func brokerURLs(t testing.TB, list string) []string {
	t.Helper()
	urls, err := broker.SplitURLs(list)
	if err != nil {
		t.Fatal(err)
	}
	return urls
}

// client connects to url (or the first broker of a list that answers).
func client(t testing.TB, url, id, user string, clean bool) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().SetClientID(id)
	for _, u := range brokerURLs(t, url) {
		o.AddBroker(u)
	}
	o.SetUsername(user).SetPassword(password).
		SetCleanSession(clean).SetAutoReconnect(false).SetOrderMatters(true).SetWriteTimeout(10 * time.Second)
	if user == "" {
		o.SetPassword("")
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s as %q: %v", url, user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

// payload makes a 256-byte message carrying a run id and a counter.
func payload(run uint32, n uint64) []byte {
	b := make([]byte, 256)
	binary.BigEndian.PutUint32(b, run)
	binary.BigEndian.PutUint64(b[4:], n)
	return b
}

func counterOf(b []byte) (uint32, uint64, bool) {
	if len(b) < 12 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b), binary.BigEndian.Uint64(b[4:]), true
}

// publishAll publishes n messages QoS 1 with up to window in flight and
// returns once every one is PUBACKed.
func publishAll(t testing.TB, c paho.Client, topic string, run uint32, from, n uint64, window int) {
	t.Helper()
	toks := make(chan paho.Token, window)
	errs := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tok := range toks {
			if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
				select {
				case errs <- fmt.Errorf("publish not acked: %v", tok.Error()):
				default:
				}
			}
		}
	}()
	for i := from; i < from+n; i++ {
		toks <- c.Publish(topic, 1, false, payload(run, i))
	}
	close(toks)
	<-done
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// counter counts deliveries by counter value, per run.
type counter struct {
	mu      sync.Mutex
	seen    map[uint64]int
	order   []uint64
	changed chan struct{}
}

func newCounter() *counter {
	return &counter{seen: map[uint64]int{}, changed: make(chan struct{}, 1)}
}

func (c *counter) add(n uint64) {
	c.mu.Lock()
	c.seen[n]++
	c.order = append(c.order, n)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// wait waits until n distinct values were seen or the deadline passes.
func (c *counter) wait(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got := len(c.seen)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("saw %d distinct messages of %d after %v", got, n, d)
		}
	}
}

// check asserts values 0..n-1 were each seen exactly once, in order.
func (c *counter) check(t testing.TB, n uint64, ordered bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	lost, dup := 0, 0
	for i := uint64(0); i < n; i++ {
		switch c.seen[i] {
		case 0:
			lost++
		case 1:
		default:
			dup += c.seen[i] - 1
		}
	}
	if lost != 0 || dup != 0 || len(c.seen) != int(n) {
		t.Fatalf("of %d messages: %d lost, %d duplicated, %d distinct seen", n, lost, dup, len(c.seen))
	}
	if ordered {
		for i := 1; i < len(c.order); i++ {
			if c.order[i] < c.order[i-1] {
				t.Fatalf("out of order at %d: %d after %d", i, c.order[i], c.order[i-1])
			}
		}
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }

// waitJoined waits until the cloud broker at url holds each node's online
// status. The control plane's own subscription is told of it within the
// same publish, before any later request of the test reaches it, so a job
// applied after this sees the nodes joined. If it gives up, it says every
// status it did get, per node.
func waitJoined(t testing.TB, url string, nodes ...string) {
	t.Helper()
	online := make(chan string, 16)
	var mu sync.Mutex
	heard := map[string][]string{} // each node's statuses, in order
	c := client(t, url, "join-watcher", "app", true)
	for _, n := range nodes {
		if tok := c.Subscribe(topics.NodeStatusTopic(n), 1, func(_ paho.Client, m paho.Message) {
			env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{})
			var st topics.NodeStatus
			if err == nil {
				err = env.DecodeBody(&st)
			}
			mu.Lock()
			heard[n] = append(heard[n], fmt.Sprintf("%s session %d retained %v reason %q error %v", st.State, st.Session, m.Retained(), st.Reason, err))
			mu.Unlock()
			if err == nil && st.State == topics.NodeOnline {
				online <- st.Node
			}
		}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribing to %s's status: %v", n, tok.Error())
		}
	}
	seen := map[string]bool{}
	// A deadline against a hang, not a speed: five nodes joining at once
	// under -race beside two other suites took more than 30 s (their
	// first attempts timed out while the cloud checked passwords, and
	// each next attempt got twice the time).
	deadline := time.After(90 * time.Second)
	for len(seen) < len(nodes) {
		select {
		case n := <-online:
			seen[n] = true
		case <-deadline:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("nodes online: %v of %v; statuses heard: %v", seen, nodes, heard)
		}
	}
}

// cloudAndNode starts a cloud manager and one edge node, edge1, linked to
// it, and an API client; all stop with the test.
func cloudAndNode(t testing.TB) (dir string, m *cloud.Manager, a *edge.Agent, c *cloud.Client) {
	t.Helper()
	dir = t.TempDir()
	m = startCloud(t, filepath.Join(dir, "cloud"), "")
	t.Cleanup(m.Close)
	a = startEdge(t, "edge1", filepath.Join(dir, "edge1"), m.BrokerURL())
	t.Cleanup(a.Close)
	waitLink(t, a)
	return dir, m, a, apiClient(t, m.BrokerURL())
}
