package e2e

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/topics"
)

// Best-effort sends, for requests and replies worth nothing after a
// deadline: Bridge.SendNow reaches the cloud without the node's durable
// queue, Downlink.SendNow reaches the node's apps without the cloud's outbox
// or the node's inbox, and each says so at once when the other side is
// away instead of keeping the message.
func TestBestEffortSendsBypassTheQueues(t *testing.T) {
	dir := t.TempDir()
	cl := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer cl.Close()
	ag := startEdge(t, "edge-1", filepath.Join(dir, "edge"), cl.BrokerURL())
	defer ag.Close()
	waitLink(t, ag)

	up := make(chan string, 1)
	sub := client(t, cl.BrokerURL(), "reader", "app", true)
	upTopic := topics.NodeEvents("edge-1", "besteffort")
	if tok := sub.Subscribe(upTopic, 1, func(_ paho.Client, m paho.Message) { up <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	down := make(chan string, 1)
	app := client(t, "tcp://"+ag.BrokerAddr(), "local", "", true)
	if tok := app.Subscribe("replies/x", 1, func(_ paho.Client, m paho.Message) { down <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	downBefore := cl.Downlink().Queue().Stats()

	env, _ := topics.NewEnvelope("test.request", "test", map[string]string{"q": "request"})
	req, _ := env.Marshal()
	if err := ag.Bridge().SendNow(topics.StreamEvents, upTopic, req, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-up:
		got, err := topics.UnmarshalEnvelope([]byte(p), topics.Limits{})
		if err != nil || got.Kind != "test.request" {
			t.Fatalf("the cloud got %q: %v", p, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SendNow did not reach the cloud")
	}
	if st := ag.Bridge().Queue().Stats(); total(st) != 0 {
		t.Fatalf("the node's queue holds %d messages after a SendNow", total(st))
	}
	if err := cl.Downlink().SendNow("edge-1", topics.ToNodeAppPrefix("edge-1")+"replies/x", []byte("reply"), time.Minute); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-down:
		if p != "reply" {
			t.Fatalf("the node's app got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Downlink.SendNow did not reach the node's app")
	}
	if after := cl.Downlink().Queue().Stats(); total(after) != total(downBefore) {
		t.Fatalf("the cloud's outbox went from %d to %d messages", total(downBefore), total(after))
	}
	if err := cl.Downlink().SendNow("edge-9", topics.ToNodeAppPrefix("edge-9")+"replies/x", []byte("reply"), time.Minute); !errors.Is(err, cloudlink.ErrNodeOffline) {
		t.Fatalf("to a node never seen: %v", err)
	}

	ag.Close()
	if err := cl.Downlink().SendNow("edge-1", topics.ToNodeAppPrefix("edge-1")+"replies/x", []byte("late"), time.Minute); err != nil && !errors.Is(err, cloudlink.ErrNodeOffline) {
		t.Fatalf("to a node that left: %v", err)
	}
	if err := ag.Bridge().SendNow(topics.StreamEvents, upTopic, []byte("x"), time.Now().Add(time.Minute)); !errors.Is(err, bridge.ErrLinkDown) {
		t.Fatalf("from a stopped bridge: %v", err)
	}
}

func total(st []queue.StreamStats) int64 {
	var n int64
	for _, s := range st {
		n += s.Messages
	}
	return n
}
