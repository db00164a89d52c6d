// Package ackless is an MQTT broker for tests that takes chosen publishes
// and never acknowledges them: a broker that went away, or a connection
// that was lost, between a client's PUBLISH and the PUBACK.
//
// A [Broker] is a mochi server on one TCP address that lets every client
// in and records every publish it sees (a repeat marked DUP as such). The
// publishes its silent function picks get no PUBACK; the others are
// handled as usual. [Start] on the address of a closed Broker brings up
// another at the same place, as a broker restarted would be.
//
// Ownership: a Broker owns its mochi server (its listener, its clients'
// connections and goroutines); [Broker.Close] stops them.
package ackless

import (
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a running test broker.
type Broker struct {
	srv  *mqtt.Server
	ln   net.Listener
	hook *hook
	addr string
}

// FreeAddr returns a loopback address with a port free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start serves on addr; silent picks the publishes that get no PUBACK
// (nil: none).
func Start(addr string, silent func(Publish) bool) (*Broker, error) {
	h := &hook{silent: silent, seen: make(chan struct{}, 1)}
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(h, nil); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := s.AddListener(listeners.NewNet("ackless", ln)); err != nil {
		_ = ln.Close()
		return nil, err
	}
	if err := s.Serve(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return &Broker{srv: s, ln: ln, hook: h, addr: addr}, nil
}

// Addr is the broker's address (host:port).
func (b *Broker) Addr() string { return b.addr }

// URL is the broker's address as a client's URL.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Seen returns the publishes the broker has seen, in order.
func (b *Broker) Seen() []Publish {
	b.hook.mu.Lock()
	defer b.hook.mu.Unlock()
	return slices.Clone(b.hook.all)
}

// Arrived is signalled (without blocking: one pending signal at most) each
// time a publish arrives.
func (b *Broker) Arrived() <-chan struct{} { return b.hook.seen }

// Close stops the broker and drops its clients' connections. The
// listener closes first: mochi drops the clients before it closes its
// listener, and a client that reconnected in between waited for a CONNACK
// that never came (paho: 30 s).
func (b *Broker) Close() error {
	_ = b.ln.Close()
	return b.srv.Close()
}

// Publish is a publish the broker saw.
type Publish struct {
	Topic   string
	Payload string
	QoS     byte
	Dup     bool // a repeat, by the client's flag
}

type hook struct {
	mqtt.HookBase
	silent func(Publish) bool
	mu     sync.Mutex
	all    []Publish
	seen   chan struct{}
}

func (h *hook) ID() string { return "ackless" }

func (h *hook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *hook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p := Publish{Topic: pk.TopicName, Payload: string(pk.Payload), QoS: pk.FixedHeader.Qos, Dup: pk.FixedHeader.Dup}
	h.mu.Lock()
	h.all = append(h.all, p)
	h.mu.Unlock()
	select {
	case h.seen <- struct{}{}:
	default:
	}
	if h.silent != nil && h.silent(p) {
		return pk, packets.ErrRejectPacket // mochi sends no PUBACK
	}
	return pk, nil
}
