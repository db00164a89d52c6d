package broker

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
)

// takeoverStall holds the first in-flight message mochi clears from an old
// client of client ID id, that is, a takeover of its session between the
// copy of its messages and the new connection becoming its client, until
// release is closed; and tells when a connection of id is established.
type takeoverStall struct {
	mqtt.HookBase
	id          string
	once        sync.Once
	stalled     chan struct{}
	release     chan struct{}
	freed       sync.Once
	established chan *mqtt.Client
	gone        chan *mqtt.Client
	mu          sync.Mutex
	taking      []*mqtt.Client // connections of id that reached OnSessionEstablish, in order
}

func newTakeoverStall(id string) *takeoverStall {
	return &takeoverStall{id: id, stalled: make(chan struct{}), release: make(chan struct{}),
		established: make(chan *mqtt.Client, 16), gone: make(chan *mqtt.Client, 16)}
}

func (h *takeoverStall) ID() string { return "test-takeover-stall" }

// free lets the stalled takeover go on.
func (h *takeoverStall) free() { h.freed.Do(func() { close(h.release) }) }

func (h *takeoverStall) Provides(b byte) bool {
	return b == mqtt.OnQosDropped || b == mqtt.OnSessionEstablish || b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

func (h *takeoverStall) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID == h.id {
		h.mu.Lock()
		h.taking = append(h.taking, cl)
		h.mu.Unlock()
	}
}

func (h *takeoverStall) takeovers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.taking)
}

func (h *takeoverStall) OnQosDropped(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID != h.id {
		return
	}
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.stalled)
		<-h.release
	}
}

func (h *takeoverStall) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID == h.id {
		h.established <- cl
	}
}

func (h *takeoverStall) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.ID == h.id {
		h.gone <- cl
	}
}

// rawConn is a hand-driven MQTT 3.1.1 client connection.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialPersistent opens a connection and sends a CONNECT of id with a
// persistent session (clean session false); it does not wait for the
// CONNACK.
func dialPersistent(t *testing.T, url, id string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", url[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 60, byte(len(id) >> 8), byte(len(id))}, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// next reads the next packet: its first byte and the rest after the
// length.
func (rc *rawConn) next(deadline time.Time) (byte, []byte, error) {
	_ = rc.c.SetReadDeadline(deadline)
	b0, err := rc.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		b, err := rc.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return 0, nil, err
	}
	return b0, body, nil
}

func (rc *rawConn) expect(typ byte) []byte {
	rc.t.Helper()
	b0, body, err := rc.next(time.Now().Add(10 * time.Second))
	if err != nil || b0>>4 != typ {
		rc.t.Fatalf("want packet type %d, got %#x %x: %v", typ, b0, body, err)
	}
	return body
}

func (rc *rawConn) subscribe(filter string) {
	rc.t.Helper()
	sub := []byte{0x82, 0, 0, 1, byte(len(filter) >> 8), byte(len(filter))}
	sub = append(append(sub, filter...), 1)
	sub[1] = byte(len(sub) - 2)
	if _, err := rc.c.Write(sub); err != nil {
		rc.t.Fatal(err)
	}
	if body := rc.expect(9); body[len(body)-1] != 1 {
		rc.t.Fatalf("SUBACK %x", body)
	}
}

// received reads PUBLISH packets (acknowledging each) until every one of
// want has come, or the connection is quiet until deadline; it returns
// the payloads seen.
func (rc *rawConn) received(want []string, deadline time.Time) map[string]int {
	seen := map[string]int{}
	missing := func() int {
		n := 0
		for _, w := range want {
			if seen[w] == 0 {
				n++
			}
		}
		return n
	}
	for missing() > 0 {
		b0, body, err := rc.next(deadline)
		if err != nil {
			return seen
		}
		if b0>>4 != 3 {
			continue
		}
		qos := (b0 >> 1) & 3
		tl := int(binary.BigEndian.Uint16(body))
		rest := body[2+tl:]
		if qos > 0 {
			pid := rest[:2]
			rest = rest[2:]
			_, _ = rc.c.Write([]byte{0x40, 2, pid[0], pid[1]})
		}
		seen[string(rest)]++
	}
	return seen
}

// takeoverRig is a broker with a session of client ID id, away with
// three messages kept for it.
type takeoverRig struct {
	t      *testing.T
	srv    *Server
	m      *metrics.Set
	stall  *takeoverStall
	events chan string // the SubscriberHook's observations of id
	want   []string
}

func newTakeoverRig(t *testing.T, id string) *takeoverRig {
	r := &takeoverRig{t: t, stall: newTakeoverStall(id), events: make(chan string, 16),
		m: metrics.New(prometheus.NewRegistry())}
	srv, err := NewServer(Config{Role: access.RoleEdge, Node: "node-a", Listen: "127.0.0.1:0", Logger: quietLogger(),
		Metrics: r.m, Hooks: []mqtt.Hook{r.stall}})
	if err != nil {
		t.Fatal(err)
	}
	srv.subs.observe = func(client, event string) {
		if client == id {
			r.events <- event
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	t.Cleanup(r.stall.free) // before Close, which waits for the stalled takeover
	r.srv = srv
	first := dialPersistent(t, srv.URL(), id)
	first.expect(2)
	r.within(r.stall.established, "the first connection established")
	first.subscribe("t")
	first.c.Close()
	r.within(r.stall.gone, "the first connection gone")
	for _, p := range []string{"kept-1", "kept-2", "kept-3"} {
		r.publish(p)
	}
	return r
}

func (r *takeoverRig) publish(p string) {
	r.t.Helper()
	if err := r.srv.Publish(access.SystemPrincipal("test"), "t", []byte(p), false, 1); err != nil {
		r.t.Fatal(err)
	}
	r.want = append(r.want, p)
}

func (r *takeoverRig) within(ch <-chan *mqtt.Client, what string) *mqtt.Client {
	r.t.Helper()
	select {
	case cl := <-ch:
		return cl
	case <-time.After(10 * time.Second):
		r.t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

// event waits for the SubscriberHook to observe what of the rig's client.
func (r *takeoverRig) event(what string) {
	r.t.Helper()
	select {
	case ev := <-r.events:
		if ev != what {
			r.t.Fatalf("observed %q, want %q", ev, what)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatalf("timed out waiting for a connection that %s", what)
	}
}

// stalledTakeover connects and waits until its takeover of the session
// stalls, halfway between the copy of the old client's messages and the
// new connection becoming the session's client.
func (r *takeoverRig) stalledTakeover() *rawConn {
	r.t.Helper()
	c := dialPersistent(r.t, r.srv.URL(), r.stall.id)
	select {
	case <-r.stall.stalled:
	case <-time.After(10 * time.Second):
		r.t.Fatal("the takeover never cleared the old client")
	}
	return c
}

// gets checks that c receives every message published for the session.
func (r *takeoverRig) gets(c *rawConn) {
	r.t.Helper()
	c.expect(2)
	seen := c.received(r.want, time.Now().Add(10*time.Second))
	var missing []string
	for _, w := range r.want {
		if seen[w] == 0 {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		cur, _ := r.srv.Mochi().Clients.Get(r.stall.id)
		r.t.Fatalf("the client's live connection missed %v (got %v); the session's client holds %d in flight",
			missing, seen, cur.State.Inflight.Len())
	}
}

// Two connections of one client ID log in at once (the client gave up
// waiting for the first one's CONNACK and connected again): the second,
// the client's live connection, must end up with the whole session, the
// messages kept for it and the ones published after. mochi alone lets
// both take over the old client at once, and the one whose takeover ends
// last becomes the session's client: here the first, so the live second
// connection misses the message the first had cleared from the old client
// before the second copied it, and every message published after.
func TestConcurrentTakeoversOfOneSessionLoseNothing(t *testing.T) {
	r := newTakeoverRig(t, "twice")
	a := r.stalledTakeover()
	b := dialPersistent(t, r.srv.URL(), r.stall.id)
	established := 0
	select {
	case ev := <-r.events: // B waits (the fix)
		if ev != "waits" {
			t.Fatalf("observed %q", ev)
		}
	case <-r.stall.established: // B took over alongside A (mochi alone)
		established++
	case <-time.After(10 * time.Second):
		t.Fatal("B neither waited nor logged in")
	}
	r.stall.free()
	for ; established < 2; established++ {
		r.within(r.stall.established, "A and B established")
	}
	_ = a // the connection the client gave up on, but left open: never read
	r.publish("after")
	r.gets(b)
	if n := r.stall.takeovers(); n != 3 {
		t.Fatalf("%d takeovers, want 3 (the first connection, A, B)", n)
	}
}

// A connection whose client gave up on it while another connection of its
// client ID took over the session is dropped: it does not take the session
// over for nobody (a takeover of a big session takes a while, and the one
// the client now waits for would wait for it), and the live one gets it.
func TestAbandonedConnectionDoesNotTakeOverTheSession(t *testing.T) {
	r := newTakeoverRig(t, "abandoning")
	r.stalledTakeover()
	b := dialPersistent(t, r.srv.URL(), r.stall.id)
	r.event("waits")
	b.c.Close() // the client gives up on B, and connects again
	c := dialPersistent(t, r.srv.URL(), r.stall.id)
	r.event("waits")
	r.stall.free()
	r.within(r.stall.established, "A established")
	r.event("abandoned")
	r.within(r.stall.established, "C established")
	r.publish("after")
	r.gets(c)
	if n := r.stall.takeovers(); n != 3 {
		t.Fatalf("%d takeovers, want 3 (the first connection, A, C)", n)
	}
	if n := testutil.ToFloat64(r.m.ConnectRefused.WithLabelValues("abandoned")); n != 1 {
		t.Fatalf("abandoned connections counted: %v, want 1", n)
	}
}
