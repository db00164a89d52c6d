package broker

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/topics"
)

// fanIn publishes pubs x each QoS 1 messages of 256 bytes (a counter in
// the first 8) on topic, and returns once every publish is acknowledged.
func fanIn(t *testing.T, srv *Server, user, topic string, pubs, each int) {
	t.Helper()
	var wg sync.WaitGroup
	for p := 0; p < pubs; p++ {
		c := dial(t, srv.URL(), fmt.Sprintf("pub-%d", p), user)
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			toks := make(chan paho.Token, 200)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for tk := range toks {
					if !tk.WaitTimeout(120*time.Second) || tk.Error() != nil {
						t.Errorf("publish not acknowledged: %v", tk.Error())
					}
				}
			}()
			for i := 0; i < each; i++ {
				b := make([]byte, 256)
				binary.BigEndian.PutUint64(b, uint64(p)<<32|uint64(i))
				toks <- c.Publish(topic, 1, false, b)
			}
			close(toks)
			<-done
		}(p)
	}
	wg.Wait()
}

// collector counts the distinct messages a subscriber got.
type collector struct {
	mu   sync.Mutex
	seen map[uint64]int
	all  chan struct{}
	want int
}

func newCollector(want int) *collector {
	return &collector{seen: map[uint64]int{}, all: make(chan struct{}), want: want}
}

func (c *collector) add(b []byte) {
	k := binary.BigEndian.Uint64(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[k]++
	if c.seen[k] == 1 && len(c.seen) == c.want {
		close(c.all)
	}
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// waitAll waits until c has every message, or d passed, or (if idle is
// not 0) none arrived for idle (some were lost), and returns how many
// distinct ones it has.
func (c *collector) waitAll(d, idle time.Duration) int {
	deadline := time.After(d)
	last := -1
	var tick <-chan time.Time
	if idle > 0 {
		t := time.NewTicker(idle)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.all:
			return c.want
		case <-deadline:
			return c.distinct()
		case <-tick:
			n := c.distinct()
			if n == last {
				return n
			}
			last = n
		}
	}
}

// Must-show 6, as issue 14 reframes it: a slow subscriber with a
// persistent session loses nothing, whether or not it is disconnected for
// being slow. Here its limit is small, so it is disconnected, reconnects
// and gets the rest from its session. QoS 1 across a reconnect is at least
// once, so it may see a message twice; it must see every one.
func TestSlowPersistentSubscriberLosesNothing(t *testing.T) {
	pubs, each := 4, 10000
	if raceEnabled {
		each = 2500
	}
	m := metrics.New(prometheus.NewRegistry())
	srv := startServer(t, Config{Role: access.RoleEdge, Node: "node-a", Metrics: m,
		Subscribers: SubscriberLimits{MaxPending: 256, MaxPendingBytes: 64 << 10}})
	col := newCollector(pubs * each)
	sub := dial(t, srv.URL(), "slow-persistent", "", func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
			SetResumeSubs(true)
	})
	if tok := sub.Subscribe("fan/in", 1, func(_ paho.Client, msg paho.Message) {
		for start := time.Now(); time.Since(start) < 50*time.Microsecond; { // slow work (a spin: sleep is far coarser)
		}
		col.add(msg.Payload())
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	fanIn(t, srv, "", "fan/in", pubs, each)
	got := col.waitAll(120*time.Second, 0) // all must come: no idle shortcut (a reconnect waits a second)
	slow := testutil.ToFloat64(m.SlowDisconnects.WithLabelValues("persistent"))
	lost := testutil.ToFloat64(m.Lost.WithLabelValues("session-full"))
	info := srv.Mochi().Info // what mochi dropped without a hook: a full in-flight set, a full client queue
	t.Logf("%d of %d delivered; disconnected as slow %v times; session-full drops %v; mochi's InflightDropped %d, MessagesDropped %d",
		got, pubs*each, slow, lost, atomic.LoadInt64(&info.InflightDropped), atomic.LoadInt64(&info.MessagesDropped))
	if got != pubs*each {
		// Kept and not delivered yet (the client could not reconnect in
		// time), or lost?
		missing := map[uint64]bool{}
		col.mu.Lock()
		for p := 0; p < pubs; p++ {
			for i := 0; i < each; i++ {
				if k := uint64(p)<<32 | uint64(i); col.seen[k] == 0 {
					missing[k] = true
				}
			}
		}
		col.mu.Unlock()
		kept, connected := 0, false
		if cl, ok := srv.Mochi().Clients.Get("slow-persistent"); ok {
			connected = !cl.Closed()
			for _, pk := range cl.State.Inflight.GetAll(false) {
				if len(pk.Payload) >= 8 && missing[binary.BigEndian.Uint64(pk.Payload)] {
					kept++
				}
			}
		}
		t.Fatalf("%d of %d delivered: of the %d missing, %d are still kept in the session (its client connected: %v), %d are not (lost)",
			got, pubs*each, len(missing), kept, connected, len(missing)-kept)
	}
	if slow == 0 {
		t.Fatal("the subscriber was never disconnected: the test did not exercise a slow persistent session")
	}
}

// stalledSubscriber connects with a raw socket, subscribes to filter at
// QoS 1 with a clean session, and never reads again.
func stalledSubscriber(t *testing.T, url, user, id, filter string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", url[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pw := ""
	if user != "" {
		pw = testPassword
	}
	if _, err := c.Write(rawConnect(id, user, pw)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := c.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	sub := []byte{0x82, 0, 0, 1, byte(len(filter) >> 8), byte(len(filter))}
	sub = append(append(sub, filter...), 1)
	sub[1] = byte(len(sub) - 2)
	if _, err := c.Write(sub); err != nil {
		t.Fatal(err)
	}
	suback := make([]byte, 5)
	if _, err := c.Read(suback); err != nil || suback[0] != 0x90 || suback[4] != 1 {
		t.Fatalf("SUBACK %x: %v", suback, err)
	}
	// Never read again: what the broker sends fills the socket.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	return c
}

// rawConnect is an MQTT 3.1.1 CONNECT with a clean session.
func rawConnect(id, user, pass string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	flags := byte(0x02)
	body := append(str("MQTT"), 4)
	payload := str(id)
	if user != "" {
		flags |= 0x80 | 0x40
		payload = append(append(payload, str(user)...), str(pass)...)
	}
	body = append(body, flags, 0, 60)
	body = append(body, payload...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// A subscriber that never reads, with a clean session, is disconnected
// once what it has not read passes its limit; the messages it had not
// acknowledged are counted as lost and reported; publishers and the other
// subscriber go on as if it were not there.
func TestStalledCleanSubscriberIsDisconnectedAndItsLossCounted(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	var events []topics.ErrorEvent
	var evMu sync.Mutex
	srv := startServer(t, Config{Role: access.RoleCloud, Credentials: testCredentials(t), Metrics: m,
		Subscribers: SubscriberLimits{MaxPendingBytes: 256 << 10}})
	srv.SetReport(func(ev topics.ErrorEvent) {
		evMu.Lock()
		events = append(events, ev)
		evMu.Unlock()
	})
	stalledSubscriber(t, srv.URL(), "admin", "stalled", "sedna/v1/node/#")
	pubs, each := 2, 5000
	col := newCollector(pubs * each)
	good := dial(t, srv.URL(), "good", "app")
	if tok := good.Subscribe("sedna/v1/node/+/status", 1, func(_ paho.Client, msg paho.Message) { col.add(msg.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	var wg sync.WaitGroup
	for p := 0; p < pubs; p++ {
		node := []string{"node-a", "node-b"}[p]
		c := dial(t, srv.URL(), "bridge-"+node, node)
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				b := make([]byte, 256)
				binary.BigEndian.PutUint64(b, uint64(p)<<32|uint64(i))
				if tok := c.Publish(topics.NodeStatusTopic(node), 1, false, b); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					t.Errorf("publish %d not acknowledged: %v", i, tok.Error())
					return
				}
			}
		}(p)
	}
	wg.Wait()
	if got := col.waitAll(60*time.Second, 0); got != pubs*each {
		t.Fatalf("the reading subscriber got %d of %d", got, pubs*each)
	}
	if n := testutil.ToFloat64(m.SlowDisconnects.WithLabelValues("clean")); n != 1 {
		t.Fatalf("slow clean sessions disconnected: %v, want 1", n)
	}
	lost := testutil.ToFloat64(m.Lost.WithLabelValues("slow-clean-session"))
	if lost <= 0 {
		t.Fatalf("lost messages counted: %v", lost)
	}
	evMu.Lock()
	defer evMu.Unlock()
	if len(events) != 1 || events[0].Reason != "slow-subscriber" || events[0].Client != "stalled" {
		t.Fatalf("events %+v", events)
	}
	t.Logf("%v; %v messages counted as lost", events[0].Detail, lost)
}

// A session full while its client is away drops what comes for it (and
// counts it), so it cannot take the broker's memory; once the client is
// back it gets what the session kept. The messages are published once the
// broker has taken the client's leave (a message published before would
// go to the leaving connection, which may take it), and counted once a
// marker published after them has arrived (mochi acknowledges a message
// before it delivers it).
func TestAwaySessionIsBounded(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	left := &leaveHook{id: "away", gone: make(chan struct{})}
	srv := startServer(t, Config{Role: access.RoleEdge, Node: "node-a", Metrics: m,
		Subscribers: SubscriberLimits{MaxSessionMessages: 100}, Hooks: []mqtt.Hook{left}})
	away := dial(t, srv.URL(), "away", "", func(o *paho.ClientOptions) { o.SetCleanSession(false) })
	if tok := away.Subscribe("t", 1, func(paho.Client, paho.Message) {}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	away.Disconnect(0)
	select {
	case <-left.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker never saw the client leave")
	}
	pub := dial(t, srv.URL(), "pub", "")
	for i := 0; i < 150; i++ {
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, uint64(i))
		if tok := pub.Publish("t", 1, false, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	// mochi sends a PUBACK before it delivers the message: a marker
	// published after the 150 and received says they were all delivered.
	marked := make(chan struct{})
	var markOnce sync.Once
	watcher := dial(t, srv.URL(), "watcher", "")
	if tok := watcher.Subscribe("marker", 1, func(paho.Client, paho.Message) { markOnce.Do(func() { close(marked) }) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := pub.Publish("marker", 1, false, []byte("after the 150")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case <-marked:
	case <-time.After(10 * time.Second):
		t.Fatal("the marker never arrived")
	}
	if n := testutil.ToFloat64(m.Lost.WithLabelValues("session-full")); n != 50 {
		t.Fatalf("dropped for the full session: %v, want 50", n)
	}
	col := newCollector(100)
	var got atomic.Int64
	dial(t, srv.URL(), "away", "", func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetDefaultPublishHandler(func(_ paho.Client, msg paho.Message) {
			got.Add(1)
			col.add(msg.Payload())
		})
	})
	if n := col.waitAll(30*time.Second, 0); n != 100 {
		t.Fatalf("the session kept %d of 100", n)
	}
}

// leaveHook closes gone once the broker has taken the leave of client id
// (it runs after the broker's own hooks).
type leaveHook struct {
	mqtt.HookBase
	id   string
	gone chan struct{}
	once sync.Once
}

func (h *leaveHook) ID() string           { return "test-leave" }
func (h *leaveHook) Provides(b byte) bool { return b == mqtt.OnDisconnect }
func (h *leaveHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.ID == h.id {
		h.once.Do(func() { close(h.gone) })
	}
}

// The control run: with the limits off, mochi's full client queue drops
// QoS 1 messages, and nothing counts them; the counter of these tests
// sees that loss.
func TestSlowSubscriberControlLoses(t *testing.T) {
	pubs, each := 4, 25000
	if raceEnabled {
		each = 5000
	}
	work := 50 * time.Microsecond
	if raceEnabled {
		work = 500 * time.Microsecond // the publishers are slower too: the subscriber must still fall behind
	}
	srv := startServer(t, Config{Role: access.RoleEdge, Node: "node-a", Subscribers: SubscriberLimits{Disabled: true}})
	col := newCollector(pubs * each)
	sub := dial(t, srv.URL(), "slow-sub", "")
	if tok := sub.Subscribe("fan/in", 1, func(_ paho.Client, msg paho.Message) {
		for start := time.Now(); time.Since(start) < work; {
		}
		col.add(msg.Payload())
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	fanIn(t, srv, "", "fan/in", pubs, each)
	got := col.waitAll(60*time.Second, time.Second)
	t.Logf("control: %d of %d delivered", got, pubs*each)
	if got == pubs*each {
		t.Fatalf("without the limits nothing was lost: the test cannot tell")
	}
}
