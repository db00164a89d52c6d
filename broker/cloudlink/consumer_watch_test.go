package cloudlink

import (
	"errors"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/internal/brokertest"
	"github.com/sedna-go/sedna/broker/internal/servertest"
)

// qosWatch is a hook that tells the test which QoS 1 messages the broker
// sends one client, and which of them the client acknowledges.
type qosWatch struct {
	mqtt.HookBase
	client string

	mu    sync.Mutex
	sent  map[uint16]string // packet ID -> topic, of messages not acknowledged
	acked chan string       // the topic of each message acknowledged
}

func newQoSWatch(client string) *qosWatch {
	return &qosWatch{client: client, sent: map[uint16]string{}, acked: make(chan string, 1024)}
}

func (h *qosWatch) ID() string { return "test-qos-watch" }

func (h *qosWatch) Provides(b byte) bool { return b == mqtt.OnQosPublish || b == mqtt.OnQosComplete }

func (h *qosWatch) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if cl.ID != h.client || pk.FixedHeader.Type != packets.Publish {
		return
	}
	h.mu.Lock()
	h.sent[pk.PacketID] = pk.TopicName
	h.mu.Unlock()
}

func (h *qosWatch) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID != h.client {
		return
	}
	h.mu.Lock()
	topic, ok := h.sent[pk.PacketID]
	delete(h.sent, pk.PacketID)
	h.mu.Unlock()
	if ok {
		h.acked <- topic
	}
}

// holdingBus dials a ClientBus of a persistent session (whose
// subscriptions are QoS 1: a clean session's are QoS 0, with nothing in
// flight) whose handler of "busy" holds the first message until release
// is closed (the test closes it): paho runs handlers one at a time, so
// nothing the broker sends after it is acknowledged meanwhile.
func holdingBus(t *testing.T, srv *broker.Server, id string) (bus *ClientBus, held <-chan struct{}, release chan struct{}) {
	t.Helper()
	bus, err := DialBus(ClientConfig{URL: srv.URL(), ClientID: id, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	h := make(chan struct{}, 64)
	release = make(chan struct{})
	if err := bus.Subscribe("busy", func(string, []byte) error {
		h <- struct{}{}
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return bus, h, release
}

// mochi refuses a SUBSCRIBE with return code 0x91 (packet identifier in
// use) when its packet ID equals that of a QoS 1 message the broker has
// sent the client and not had acknowledged yet: it looks the client's
// packet ID up among its own, though MQTT numbers the two directions
// independently. paho numbers its packets from 1 as mochi does, so the
// two meet as soon as messages are in flight: the status subscription of
// a watch made while the job's events were arriving was refused. paho's
// token carries no error for a refused filter, and ClientBus.Subscribe
// returned nil: the subscription was taken as made, and its handler was
// never called (issue 15: a watch that received nothing at all, for
// minutes, while the job had completed).
func TestClientBusSubscribeRefusedForPacketIDInUseIsMadeAgain(t *testing.T) {
	srv := servertest.StartServer(t, broker.Config{Role: access.RoleEdge, Node: "node-a"})
	bus, held, release := holdingBus(t, srv, "watcher") // paho's packet 1: the SUBSCRIBE of "busy"
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	// The broker sends three messages, its packet IDs 1, 2 and 3; the
	// first is held, so none is acknowledged.
	for range 3 {
		if err := srv.Publish(access.SystemPrincipal("test"), "busy", []byte("x"), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	<-held
	// paho's packet 2: the SUBSCRIBE of "quiet", its ID in use by the
	// broker's second message.
	got := make(chan []byte, 1)
	if err := bus.Subscribe("quiet", func(_ string, p []byte) error {
		got <- p
		return nil
	}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	cl, ok := srv.Mochi().Clients.Get("watcher")
	if !ok {
		t.Fatal("the client is not connected")
	}
	if _, ok := cl.State.Subscriptions.Get("quiet"); !ok {
		t.Fatal(`Subscribe("quiet") returned nil, but the broker has no such subscription: it refused the SUBSCRIBE (packet ID in use by a message not yet acknowledged) and the refusal was not read`)
	}
	close(release)
	released = true
	if err := srv.Publish(access.SystemPrincipal("test"), "quiet", []byte("hello"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p) != "hello" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(`nothing arrived on "quiet" in 10 s`)
	}
}

// A subscription the broker refuses for good is an error of Subscribe,
// and leaves nothing behind.
func TestClientBusSubscribeRefusedIsAnError(t *testing.T) {
	srv := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t)})
	bus, err := DialBus(ClientConfig{URL: srv.URL(), ClientID: "nosy", Username: "node-a", Password: brokertest.Password,
		CleanSession: true, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	err = bus.Subscribe("sedna/v1/job/#", func(string, []byte) error { return nil })
	if err == nil {
		t.Fatal("a node subscribed to every job's topics: the broker's refusal was not read")
	}
	t.Logf("refused: %v", err)
	if subs := bus.Subscriptions(); len(subs) != 0 {
		t.Fatalf("a refused subscription is kept, to be made again at every reconnection: %v", subs)
	}
}

// Unsubscribe ends the subscription at the broker, and a message the
// broker sent before it processed the UNSUBSCRIBE, which paho then holds
// for no handler (it drops the route when it sends UNSUBSCRIBE), is
// acknowledged: otherwise it stays in the broker's in-flight set of the
// client, counted against its slow-subscriber limit (MaxPending), for the
// life of the connection.
func TestClientBusUnsubscribeAcknowledgesWhatWasInFlight(t *testing.T) {
	hook := newQoSWatch("watcher")
	srv := servertest.StartServer(t, broker.Config{Role: access.RoleEdge, Node: "node-a", Hooks: []mqtt.Hook{hook}})
	bus, held, release := holdingBus(t, srv, "watcher")
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	calls := make(chan string, 16)
	if err := bus.Subscribe("gone", func(topic string, _ []byte) error {
		calls <- topic
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Publish(access.SystemPrincipal("test"), "busy", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	<-held
	// Sent while the client is busy: paho reads it, and holds it until the
	// handler of "busy" returns.
	if err := srv.Publish(access.SystemPrincipal("test"), "gone", []byte("late"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := bus.Unsubscribe("gone"); err != nil {
		t.Fatal(err)
	}
	cl, ok := srv.Mochi().Clients.Get("watcher")
	if !ok {
		t.Fatal("the client is not connected")
	}
	if _, ok := cl.State.Subscriptions.Get("gone"); ok {
		t.Fatal("the broker still has the subscription")
	}
	if subs := bus.Subscriptions(); len(subs) != 1 || subs[0] != "busy" {
		t.Fatalf("subscriptions %v, want [busy]", subs)
	}
	close(release)
	released = true
	deadline := time.After(10 * time.Second)
	for pending := map[string]bool{"busy": true, "gone": true}; len(pending) > 0; {
		select {
		case topic := <-hook.acked:
			delete(pending, topic)
		case <-deadline:
			t.Fatalf("not acknowledged: %v (a message for no handler stays in the broker's in-flight set)", pending)
		}
	}
	select {
	case topic := <-calls:
		t.Fatalf("the handler of %q was called after Unsubscribe returned", topic)
	default:
	}
}

// Two parts of a process subscribed to the same filter on one ClientBus
// (the downlink and the control plane both read node statuses) both get
// every message; a Watch's stop removes its own handler only, and the
// last one's unsubscribes at the broker. (The bus kept one handler per
// filter: the second Subscribe replaced the first, and the cloud's
// downlink never heard that a node was online on an external broker.)
func TestClientBusSharedFilterReachesEveryHandler(t *testing.T) {
	srv := servertest.StartServer(t, broker.Config{Role: access.RoleEdge, Node: "node-a"})
	bus, err := DialBus(ClientConfig{URL: srv.URL(), ClientID: "shared", CleanSession: true, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	a, b := make(chan string, 8), make(chan string, 8)
	if err := bus.Subscribe("status/+", func(topic string, _ []byte) error { a <- topic; return nil }); err != nil {
		t.Fatal(err)
	}
	stopB, err := bus.Watch("status/+", func(topic string, _ []byte) error { b <- topic; return nil })
	if err != nil {
		t.Fatal(err)
	}
	publish := func(topic string) {
		t.Helper()
		if err := srv.Publish(access.SystemPrincipal("test"), topic, []byte("x"), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(ch chan string, want string) {
		t.Helper()
		select {
		case got := <-ch:
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q did not arrive", want)
		}
	}
	publish("status/n1")
	recv(a, "status/n1")
	recv(b, "status/n1")
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if got := bus.Subscriptions(); len(got) != 1 || got[0] != "status/+" {
		t.Fatalf("subscriptions after one of two handlers stopped: %v", got)
	}
	publish("status/n2")
	recv(a, "status/n2")
	// b got nothing more: n2 went to a alone (a message the broker sends
	// after n2 arrives after it, so one on "marker", which only a Watch
	// of it reads, shows that n2 has been handled by then).
	marker := make(chan string, 1)
	stopM, err := bus.Watch("marker", func(topic string, _ []byte) error { marker <- topic; return nil })
	if err != nil {
		t.Fatal(err)
	}
	publish("marker")
	recv(marker, "marker")
	select {
	case got := <-b:
		t.Fatalf("a stopped watch got %q", got)
	default:
	}
	if err := stopM(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Unsubscribe("status/+"); err != nil {
		t.Fatal(err)
	}
	cl, ok := srv.Mochi().Clients.Get("shared")
	if !ok {
		t.Fatal("the client is not connected")
	}
	if _, ok := cl.State.Subscriptions.Get("status/+"); ok {
		t.Fatal("the broker still has status/+ after its last handler went")
	}
}

// kickOnSubscribe is a hook that drops a client's connection when it
// first asks for filter, as a broker does when another connection takes
// the client's session over (a standby replica of the cloud manager
// taking over while its predecessor still connects).
type kickOnSubscribe struct {
	mqtt.HookBase
	filter string
	once   sync.Once
	kicked chan struct{}
}

func (h *kickOnSubscribe) ID() string { return "test-kick-on-subscribe" }

func (h *kickOnSubscribe) Provides(b byte) bool { return b == mqtt.OnSubscribe }

func (h *kickOnSubscribe) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	for _, f := range pk.Filters {
		if f.Filter == h.filter {
			h.once.Do(func() {
				close(h.kicked)
				cl.Stop(errors.New("session taken over"))
			})
		}
	}
	return pk
}

// A subscription whose connection is lost while the broker is asked is
// not an error: it is made on the next connection, and what is published
// on it then arrives. A replica of the cloud manager that took over while
// its predecessor still held the session failed to start ("connection
// lost before Subscribe completed").
func TestClientBusSubscribeLostWithItsConnectionIsMadeOnTheNext(t *testing.T) {
	hook := &kickOnSubscribe{filter: "late", kicked: make(chan struct{})}
	srv := servertest.StartServer(t, broker.Config{Role: access.RoleEdge, Node: "node-a", Hooks: []mqtt.Hook{hook}})
	bus, err := DialBus(ClientConfig{URL: srv.URL(), ClientID: "successor", FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	got := make(chan []byte, 16)
	if err := bus.Subscribe("late", func(_ string, p []byte) error {
		got <- p
		return nil
	}); err != nil {
		t.Fatalf("a subscription lost with its connection: %v", err)
	}
	select {
	case <-hook.kicked:
	default:
		t.Fatal("the broker never dropped the connection: the test tested nothing")
	}
	if subs := bus.Subscriptions(); len(subs) != 1 || subs[0] != "late" {
		t.Fatalf("subscriptions %v; want [late]", subs)
	}
	// Published until it arrives: until the next connection subscribed,
	// nothing reads it (the session of a clean start has no "late").
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		if err := srv.Publish(access.SystemPrincipal("test"), "late", []byte("hello"), false, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if string(p) != "hello" {
				t.Fatalf("got %q", p)
			}
			return
		case <-tick.C:
		case <-deadline:
			t.Fatal(`nothing arrived on "late" in 20 s: the subscription was not made on the next connection`)
		}
	}
}
