package broker

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/topics"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func subResult(t *testing.T, c paho.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, func(paho.Client, paho.Message) {})
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("subscribe %s: no SUBACK", filter)
	}
	res := tok.(*paho.SubscribeToken).Result()
	if len(res) != 1 {
		t.Fatalf("subscribe %s: results %v", filter, res)
	}
	for _, code := range res { // paho keys shared subscriptions by the bare filter
		return code
	}
	return 0
}

// publishOK reports whether a QoS 1 publish was acknowledged: an MQTT
// 3.1.1 client that may not publish is disconnected instead.
func publishOK(c paho.Client, topic string) bool {
	tok := c.Publish(topic, 1, false, []byte("x"))
	return tok.WaitTimeout(3*time.Second) && tok.Error() == nil && c.IsConnectionOpen()
}

// Must-show 9: node A can publish and subscribe under its own subtree and
// downlink, and cannot under node B's; unauthenticated clients are refused
// on the cloud listener; every refusal is logged.
func TestCloudACL(t *testing.T) {
	var logs syncBuffer
	srv := startServer(t, Config{Role: access.RoleCloud, Credentials: testCredentials(t),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	url := srv.URL()

	// Positive controls.
	a := dial(t, url, "a", "node-a")
	if got := subResult(t, a, topics.DownPrefix("node-a")+"#"); got != 1 {
		t.Fatalf("node-a may subscribe to its downlink: SUBACK %#x", got)
	}
	if got := subResult(t, a, topics.BroadcastFilter()); got != 1 {
		t.Fatalf("node-a may subscribe to broadcasts: SUBACK %#x", got)
	}
	watcher := dial(t, url, "w", "admin")
	got := make(chan string, 10)
	watcher.Subscribe(topics.Root+"/node/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }).Wait()
	own := topics.NodeStatusTopic("node-a")
	if !publishOK(a, own) {
		t.Fatal("node-a may publish its own status")
	}
	select {
	case tp := <-got:
		if tp != own {
			t.Fatalf("watcher got %s", tp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("own publish not delivered")
	}

	// Node A under node B's subtree, or reading everything.
	for _, f := range []string{topics.DownPrefix("node-b") + "#", topics.Downlink("node-b"), "#", topics.Root + "/#",
		topics.NodeFilter("node-b"), "$share/g/" + topics.DownPrefix("node-b") + "#", topics.Root + "/down/+/frames"} {
		if r := subResult(t, a, f); r != 0x80 {
			t.Errorf("node-a subscribed to %s: SUBACK %#x", f, r)
		}
	}
	// Node A under node B's subtree, outside its own, or beside its frames.
	for _, topic := range []string{topics.NodeEvents("node-b", "x"), topics.Downlink("node-a"), topics.JobSpec(topics.JobRef{Kind: "K", Namespace: "ns", Name: "n"}),
		"plain/topic", topics.NodeEvents("node-a", "x"), topics.APIRequestTopic("node-a")} {
		c := dial(t, url, "a-pub", "node-a")
		if publishOK(c, topic) {
			t.Errorf("node-a published to %s", topic)
		}
	}
	// A cloud app cannot impersonate a node or write a downlink frame.
	for _, topic := range []string{topics.NodeEvents("node-a", "x"), topics.Downlink("node-a"), topics.CloudEvents("error")} {
		c := dial(t, url, "app-pub", "app")
		if publishOK(c, topic) {
			t.Errorf("a cloud app published to %s", topic)
		}
	}
	if c := dial(t, url, "app-ok", "app"); !publishOK(c, topics.ToNodePrefix("node-a")+"app/x") {
		t.Error("a cloud app may publish to a node's inbound topics")
	}

	// Unauthenticated and wrong passwords.
	if _, err := tryDial(url, "anon", ""); err == nil {
		t.Error("anonymous client accepted on the cloud listener")
	}
	if _, err := tryDial(url, "bad", "node-a", func(o *paho.ClientOptions) { o.SetPassword("wrong") }); err == nil {
		t.Error("wrong password accepted")
	}
	if _, err := tryDial(url, "ghost", "nobody"); err == nil {
		t.Error("unknown user accepted")
	}
	l := logs.String()
	for _, want := range []string{"authorization denied", "path=subscribe", "path=publish", "refused unauthenticated client", "refused client with bad credentials", "username=nobody"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestEdgeLocalAppACL(t *testing.T) {
	srv := startServer(t, Config{Role: access.RoleEdge, Node: "node-a"})
	for _, c := range []struct {
		topic string
		ok    bool
	}{
		{"$hw/events/upload/dev1", true},
		{"$hw/events/device/ns/dev/twin/update", true},
		{"sensors/t", true},
		{topics.NodeEvents("node-a", "x"), true},
		{topics.NodeStatusTopic("node-a"), false},
		{topics.Uplink("node-a", topics.StreamBulk), false},
		{topics.DownAckTopic("node-a"), false},
		{topics.NodeEvents("node-b", "x"), false},
		{topics.JobSpec(topics.JobRef{Kind: "K", Namespace: "ns", Name: "n"}), false},
		{topics.Downlink("node-a"), false},
		{"$SYS/broker/x", false},
	} {
		cl := dial(t, srv.URL(), "local", "")
		if got := publishOK(cl, c.topic); got != c.ok {
			t.Errorf("local app publish to %s: allowed %v, want %v", c.topic, got, c.ok)
		}
	}
	if got := subResult(t, dial(t, srv.URL(), "r", ""), "#"); got != 1 {
		t.Errorf("local apps may read everything: SUBACK %#x", got)
	}
}

// The cloud broker refuses to start without credentials (it refuses
// anonymous clients).
func TestCloudBrokerNeedsCredentials(t *testing.T) {
	if _, err := NewServer(Config{Role: access.RoleCloud}); err == nil {
		t.Error("cloud broker without credentials accepted")
	}
}

// Finding 5 of issue 14: the cloud listened on every interface by default.
// Both brokers listen on loopback unless given an address.
func TestDefaultListenIsLoopback(t *testing.T) {
	for _, addr := range []string{DefaultCloudListen, DefaultEdgeListen} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("default listen address %s is not on loopback", addr)
		}
	}
	srv, err := NewServer(Config{Role: access.RoleCloud, Credentials: testCredentials(t), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if srv.cfg.Listen != DefaultCloudListen {
		t.Errorf("a cloud broker without an address listens on %q", srv.cfg.Listen)
	}
}
