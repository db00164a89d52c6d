package simulator

import (
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// silentHook takes the publishes that silent picks and never acknowledges
// them; it records every publish it sees.
type silentHook struct {
	mqtt.HookBase
	silent func(pk packets.Packet) bool
	mu     sync.Mutex
	seen   []string // payloads, DUP ones marked "dup:"
	got    chan struct{}
}

func (h *silentHook) ID() string { return "silent" }

func (h *silentHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *silentHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *silentHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *silentHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.mu.Lock()
	p := string(pk.Payload)
	if pk.FixedHeader.Dup {
		p = "dup:" + p
	}
	h.seen = append(h.seen, p)
	h.mu.Unlock()
	select {
	case h.got <- struct{}{}:
	default:
	}
	if h.silent(pk) {
		return pk, packets.ErrRejectPacket // mochi sends no PUBACK
	}
	return pk, nil
}

func (h *silentHook) payloads() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// startSilent starts a mochi broker on addr with h.
func startSilent(t *testing.T, addr string, h *silentHook) *mqtt.Server {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	return s
}

// A device counts a message acked only on its broker's PUBACK, across a
// reconnection. Its broker takes a publish and never acknowledges it, then
// goes away; another broker comes up at the same address and would not
// acknowledge a repeat (DUP) of it either. The first publish's token ends
// with an error (paho's own reconnection sent it again and completed the
// token without error, before any PUBACK); the device connects again, a
// publish after that is acknowledged, and the first is not sent again.
func TestDeviceCountsOnlyAcknowledgedPublishes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	first := &silentHook{silent: func(packets.Packet) bool { return true }, got: make(chan struct{}, 1)}
	a := startSilent(t, addr, first)
	connected, lost := make(chan struct{}, 4), make(chan struct{}, 4)
	c := newDevClient(addr, "dev-1", true, func(paho.Client) { connected <- struct{}{} }, func(paho.Client, error) { lost <- struct{}{} })
	defer c.Disconnect(100)
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s", what)
		}
	}
	wait(connected, "connection")
	tok := c.Publish("sensors/t", 1, false, "m1")
	wait(first.got, "publish at the first broker")
	_ = a.Close()
	wait(lost, "lost connection")

	second := &silentHook{silent: func(pk packets.Packet) bool { return pk.FixedHeader.Dup }, got: make(chan struct{}, 1)}
	b := startSilent(t, addr, second)
	defer b.Close()
	c.ready() // as the device's loop does: it connects again
	wait(connected, "connection to the second broker")
	if !tok.WaitTimeout(20 * time.Second) {
		t.Fatal("the unacknowledged publish's token never ended")
	}
	if tok.Error() == nil {
		t.Fatal("a publish no broker acknowledged ended without an error: counted acknowledged")
	}
	if !c.ready() {
		t.Fatal("not ready once connected again")
	}
	tok2 := c.Publish("sensors/t", 1, false, "m2")
	if !tok2.WaitTimeout(20*time.Second) || tok2.Error() != nil {
		t.Fatalf("a publish after the reconnection: %v", tok2.Error())
	}
	if got := second.payloads(); !slices.Equal(got, []string{"m2"}) {
		t.Fatalf("the second broker got %q, want only m2", got)
	}
}
