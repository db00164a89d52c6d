package simulator

import (
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/internal/ackless"
)

// A device counts a message acked only on its broker's PUBACK, across a
// reconnection. Its broker takes a publish and never acknowledges it, then
// goes away; another broker comes up at the same address and would not
// acknowledge a repeat (DUP) of it either. The first publish's token ends
// with an error (paho's own reconnection sent it again and completed the
// token without error, before any PUBACK); the device connects again, a
// publish after that is acknowledged, and the first is not sent again.
func TestDeviceCountsOnlyAcknowledgedPublishes(t *testing.T) {
	addr, err := ackless.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	a, err := ackless.Start(addr, func(ackless.Publish) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
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
	wait(a.Arrived(), "publish at the first broker")
	_ = a.Close()
	wait(lost, "lost connection")

	b, err := ackless.Start(addr, func(p ackless.Publish) bool { return p.Dup })
	if err != nil {
		t.Fatal(err)
	}
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
	if got := b.Seen(); !slices.Equal(got, []ackless.Publish{{Topic: "sensors/t", Payload: "m2", QoS: 1}}) {
		t.Fatalf("the second broker got %+v, want only m2", got)
	}
}
