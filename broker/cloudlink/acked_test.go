package cloudlink_test

import (
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/internal/ackless"
)

// A ClientBus publish at QoS 1 completes on the broker's PUBACK only, also
// across paho's own reconnection. Broker A takes the publish and never
// answers, then goes away; broker B, at the same address, takes the repeat
// (DUP) and never answers it either: the token has not completed (paho
// completed its own as it sent the repeat). B goes away too; C answers
// everything: the repeat is acknowledged and the token completes without
// error. Publishes no broker has acknowledged when the bus is closed
// (while it reconnects, no broker left) fail.
func TestBusPublishWaitsForThePUBACK(t *testing.T) {
	addr, err := ackless.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	start := func(silent func(ackless.Publish) bool) *ackless.Broker {
		t.Helper()
		b, err := ackless.Start(addr, silent)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// arrived waits for want at b (a repeat if want says so; a first
	// send or a repeat otherwise: one published while the bus was
	// reconnecting goes out as a repeat).
	arrived := func(b *ackless.Broker, want ackless.Publish) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !slices.ContainsFunc(b.Seen(), func(p ackless.Publish) bool {
			return p.Topic == want.Topic && p.Payload == want.Payload && p.QoS == want.QoS && (p.Dup || !want.Dup)
		}) {
			select {
			case <-b.Arrived():
			case <-deadline:
				t.Fatalf("%+v never arrived: %+v", want, b.Seen())
			}
		}
	}
	never := func(ackless.Publish) bool { return true }
	a := start(never)
	bus, err := cloudlink.DialBus(cloudlink.ClientConfig{URL: "tcp://" + addr, ClientID: "acked-bus", CleanSession: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := bus.PublishAsync("t/a", []byte("m1"), false, 1)
	arrived(a, ackless.Publish{Topic: "t/a", Payload: "m1", QoS: 1})
	_ = a.Close()

	b := start(func(p ackless.Publish) bool { return p.Dup })
	arrived(b, ackless.Publish{Topic: "t/a", Payload: "m1", QoS: 1, Dup: true})
	select {
	case <-tok.Done():
		t.Fatalf("the publish completed (error %v) with no PUBACK from any broker", tok.Error())
	default:
	}
	_ = b.Close()

	c := start(nil)
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("the repeat acknowledged: %v", tok.Error())
	}
	if err := bus.Publish("t/b", []byte("m2"), false, 1); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()

	d := start(never)
	tok3 := bus.PublishAsync("t/c", []byte("m3"), false, 1)
	arrived(d, ackless.Publish{Topic: "t/c", Payload: "m3", QoS: 1})
	_ = d.Close() // no broker any more: the bus is reconnecting when it closes
	tok4 := bus.PublishAsync("t/d", []byte("m4"), false, 1)
	_ = bus.Close()
	for _, tok := range []paho.Token{tok3, tok4} {
		if !tok.WaitTimeout(30 * time.Second) {
			t.Fatal("a publish pending when the bus closed never completed")
		}
		if tok.Error() == nil {
			t.Fatal("a publish no broker acknowledged completed without an error when the bus closed")
		}
	}
}
