package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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
	srv := startServer(t, Config{Role: RoleCloud, Credentials: testCredentials(t),
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
	srv := startServer(t, Config{Role: RoleEdge, Node: "node-a"})
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

func TestCredentialsFileChecks(t *testing.T) {
	if _, err := NewCredentials(User{Username: "x", PasswordHash: "plain", Role: UserNode}); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("plain password accepted: %v", err)
	}
	h, _ := HashPassword("p")
	if _, err := NewCredentials(User{Username: "x", PasswordHash: h, Role: "root"}); err == nil {
		t.Error("unknown role accepted")
	}
	if _, err := NewCredentials(User{Username: "x", PasswordHash: h, Role: UserNode}, User{Username: "x", PasswordHash: h, Role: UserApp}); err == nil {
		t.Error("duplicate user accepted")
	}
	for _, role := range []UserRole{UserNode, UserOperator, UserViewer, UserAdmin} {
		if _, err := NewCredentials(User{Username: "a/b", PasswordHash: h, Role: role}); err == nil {
			t.Errorf("%s user with a name that is not a topic level accepted", role)
		}
	}
	if _, err := NewCredentials(User{Username: "ops", PasswordHash: h, Role: UserOperator, Node: "edge-1"}); err == nil {
		t.Error("an operator with a node accepted")
	}
	c, err := NewCredentials(User{Username: "old", PasswordHash: h, Role: UserCloud})
	if err != nil || c.Users[0].Role != UserOperator {
		t.Errorf("the old role name cloud is read as operator: %v %+v", err, c)
	}
	if _, err := NewServer(Config{Role: RoleCloud}); err == nil {
		t.Error("cloud broker without credentials accepted")
	}
}

// TestAuthorizeTable is the authorization table: every principal on each
// side, every path by which a message enters a broker, against topics from
// every part of the tree (and some that are not valid topics at all). What
// each (side, principal, path) may use is listed; everything else must be
// refused.
func TestAuthorizeTable(t *testing.T) {
	job := topics.JobRef{Kind: "JointInferenceService", Namespace: "default", Name: "ji"}
	named := map[string]string{
		"a.status":       topics.NodeStatusTopic("node-a"),
		"a.up":           topics.Uplink("node-a", topics.StreamEvents),
		"a.downack":      topics.DownAckTopic("node-a"),
		"a.events":       topics.NodeEvents("node-a", "x"),
		"a.job":          topics.NodeJob("node-a", job, "workers/edge"),
		"a.app":          topics.NodeAppPrefix("node-a") + "t",
		"a.dataset":      topics.NodeDataset("node-a", "default", "d"),
		"b.events":       topics.NodeEvents("node-b", "x"),
		"b.status":       topics.NodeStatusTopic("node-b"),
		"to.a.app":       topics.ToNodeAppPrefix("node-a") + "t",
		"to.a.kubeedge":  topics.ToNodeKubeEdgePrefix("node-a") + "$hw/events/device/d/twin/update/delta",
		"to.a.job":       topics.ToNodeJob("node-a", job, "spec"),
		"down.a":         topics.Downlink("node-a"),
		"broadcast":      topics.Broadcast("x"),
		"job.spec":       topics.JobSpec(job),
		"job.status":     topics.JobStatus(job),
		"cloud.events":   topics.CloudEvents("error"),
		"api.ops":        topics.APIRequestTopic("ops"),
		"api.eve":        topics.APIRequestTopic("eve"),
		"reply.ops":      topics.APIReplyTopic("ops", "c1"),
		"reply.eve":      topics.APIReplyTopic("eve", "c1"),
		"unknown":        topics.Root + "/nowhere/x",
		"foreign":        "sensors/t",
		"kubeedge":       "$hw/events/upload/d",
		"sys":            "$SYS/broker/x",
		"bad.utf8":       "sensors/\xff\xfe",
		"bad.nul":        "sensors/a\x00b",
		"bad.wildcard":   "sensors/+",
		"bad.empty":      "",
		"filter.all":     "#",
		"filter.down.a":  topics.DownFilter("node-a"),
		"filter.down.b":  topics.DownFilter("node-b"),
		"filter.replies": topics.Root + "/cloud/api/+/c1",
	}
	all := []Path{PathPublish, PathRetain, PathWill, PathFrame, PathInline, PathSubscribe}
	// readable: what every subscriber of the kind may read, beside its own list.
	readable := []string{"a.status", "a.up", "a.downack", "a.events", "a.job", "a.app", "a.dataset", "b.events", "b.status",
		"to.a.app", "to.a.kubeedge", "to.a.job", "down.a", "broadcast", "job.spec", "job.status", "cloud.events",
		"api.ops", "api.eve", "unknown", "foreign", "kubeedge", "sys", "filter.all", "filter.down.a", "filter.down.b",
		"bad.wildcard"} // a topic with a wildcard is a filter one may subscribe to
	type key struct {
		side Role
		who  string
		path Path
	}
	principals := map[string]Principal{
		"system":   SystemPrincipal("test"),
		"node-a":   NodePrincipal("node-a"),
		"operator": {Kind: Operator, User: "ops"},
		"admin":    {Kind: Admin, User: "ops"},
		"viewer":   {Kind: Viewer, User: "ops"},
		"local":    LocalAppPrincipal,
		"cloud-dl": CloudDownlinkPrincipal,
		"nobody":   {},
	}
	valid := []string{"a.status", "a.up", "a.downack", "a.events", "a.job", "a.app", "a.dataset", "b.events", "b.status",
		"to.a.app", "to.a.kubeedge", "to.a.job", "down.a", "broadcast", "job.spec", "job.status", "cloud.events",
		"api.ops", "api.eve", "reply.ops", "reply.eve", "unknown", "foreign", "kubeedge"}
	allowed := map[key][]string{}
	for _, side := range []Role{RoleCloud, RoleEdge} {
		for _, p := range all {
			if p == PathSubscribe {
				allowed[key{side, "system", p}] = append(append([]string{}, readable...), "reply.ops", "reply.eve", "filter.replies")
			} else {
				allowed[key{side, "system", p}] = valid
			}
		}
	}
	// The cloud broker.
	allowed[key{RoleCloud, "node-a", PathPublish}] = []string{"a.status", "a.up", "a.downack"}
	allowed[key{RoleCloud, "node-a", PathRetain}] = []string{"a.status"}
	allowed[key{RoleCloud, "node-a", PathWill}] = []string{"a.status"}
	allowed[key{RoleCloud, "node-a", PathFrame}] = []string{"a.events", "a.job", "a.app", "a.dataset"}
	allowed[key{RoleCloud, "node-a", PathInline}] = []string{"a.events", "a.job", "a.app", "a.dataset"}
	allowed[key{RoleCloud, "node-a", PathSubscribe}] = []string{"down.a", "broadcast", "filter.down.a"}
	for _, who := range []string{"operator", "admin"} {
		allowed[key{RoleCloud, who, PathPublish}] = []string{"to.a.app", "to.a.kubeedge", "broadcast", "api.ops", "foreign"}
		allowed[key{RoleCloud, who, PathRetain}] = []string{"to.a.app", "to.a.kubeedge", "foreign"}
		allowed[key{RoleCloud, who, PathWill}] = []string{"foreign"}
		allowed[key{RoleCloud, who, PathSubscribe}] = append(append([]string{}, readable...), "reply.ops")
	}
	allowed[key{RoleCloud, "viewer", PathPublish}] = []string{"api.ops"}
	allowed[key{RoleCloud, "viewer", PathSubscribe}] = append(append([]string{}, readable...), "reply.ops")
	// An edge broker, of node-a.
	for _, p := range []Path{PathPublish, PathRetain, PathWill, PathInline} {
		allowed[key{RoleEdge, "local", p}] = []string{"a.events", "a.job", "a.app", "a.dataset", "foreign", "kubeedge"}
	}
	allowed[key{RoleEdge, "local", PathSubscribe}] = append(append([]string{}, readable...), "reply.ops", "reply.eve", "filter.replies")
	for _, p := range []Path{PathFrame, PathInline} {
		allowed[key{RoleEdge, "cloud-dl", p}] = []string{"broadcast", "job.spec", "job.status", "foreign", "kubeedge"}
	}

	universe := make([]string, 0, len(named))
	for n := range named {
		universe = append(universe, n)
	}
	checked := 0
	for _, side := range []Role{RoleCloud, RoleEdge} {
		for who, p := range principals {
			for _, path := range all {
				ok := map[string]bool{}
				for _, n := range allowed[key{side, who, path}] {
					if _, known := named[n]; !known {
						t.Fatalf("the table names an unknown topic %q", n)
					}
					ok[n] = true
				}
				for _, n := range universe {
					if path != PathSubscribe && strings.HasPrefix(n, "filter.") {
						continue // filters are not topics one writes to
					}
					err := Authorize(side, "node-a", p, path, named[n])
					checked++
					if got := err == nil; got != ok[n] {
						t.Errorf("%s broker: %s %s %s (%q): allowed %v, want %v (%v)", side, who, path, n, named[n], got, ok[n], err)
					}
					if err != nil && !errors.Is(err, ErrNotAuthorized) {
						t.Errorf("a refusal does not wrap ErrNotAuthorized: %v", err)
					}
				}
			}
		}
	}
	t.Logf("%d decisions checked", checked)
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
	srv, err := NewServer(Config{Role: RoleCloud, Credentials: testCredentials(t), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if srv.cfg.Listen != DefaultCloudListen {
		t.Errorf("a cloud broker without an address listens on %q", srv.cfg.Listen)
	}
}
