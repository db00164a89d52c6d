package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/topics"
)

// RabbitMQ starts consuming a persistent session's queue at its CONNECT,
// before the client subscribes again: a consumer or a bus started again
// with more messages waiting than RabbitMQ's prefetch (10) left them
// unacknowledged for want of a handler and got nothing more on that
// connection (a cloud manager restarted after a kill -9 relayed nothing
// again: CI, 3,345 of 10,000 at a plain subscriber after a minute). On the
// RabbitMQ cluster, a Consumer and a persistent ClientBus each started
// again with 100 messages waiting take every one of them once.
func TestSessionsStartedAgainOnRabbitMQ(t *testing.T) {
	const n = 100
	cl := rabbitCluster(t)
	url := cl.URLs()
	dir := t.TempDir()

	t.Run("Consumer", func(t *testing.T) {
		id := fmt.Sprintf("held-consumer-%d", sessions.Add(1))
		st := openStore(t, filepath.Join(dir, "consumer"))
		first, _ := startConsumer(t, url, id, st, 71, topics.NodeApp("edge-1", "held"))
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		node := client(t, url, fmt.Sprintf("held-node-%d", sessions.Add(1)), "edge-1", true)
		defer node.Disconnect(50)
		epoch := uint64(time.Now().UnixNano())
		for i := uint64(1); i <= n; i++ {
			f := topics.Frame{Node: "edge-1", Stream: topics.StreamEvents, Epoch: epoch,
				Messages: []topics.FrameMessage{{Seq: i, Topic: topics.NodeApp("edge-1", "held"), Payload: payload(71, i-1), QoS: 1}}}
			raw, err := f.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if tok := node.Publish(topics.Uplink("edge-1", topics.StreamEvents), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
		_, cnt := startConsumer(t, url, id, st, 71, topics.NodeApp("edge-1", "held"))
		cnt.wait(t, n, 30*time.Second)
		cnt.check(t, n, false)
	})

	t.Run("ClientBus", func(t *testing.T) {
		id := fmt.Sprintf("held-bus-%d", sessions.Add(1))
		topic, old := fmt.Sprintf("held/%s/x/a", id), fmt.Sprintf("held/%s/old", id)
		dial := func(clean bool) *cloudlink.ClientBus {
			t.Helper()
			bus, err := cloudlink.DialBus(cloudlink.ClientConfig{URL: url, ClientID: id, Username: "cloud", Password: password,
				CleanSession: clean, FailFast: true})
			if err != nil {
				t.Fatal(err)
			}
			return bus
		}
		bus := dial(false)
		for _, f := range []string{topic, old} {
			if err := bus.Subscribe(f, func(string, []byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if err := bus.Close(); err != nil {
			t.Fatal(err)
		}
		pub := client(t, url, id+"-pub", "cloud", true)
		defer pub.Disconnect(50)
		publish := func(topic string, from, to int) {
			t.Helper()
			for i := from; i < to; i++ {
				if tok := pub.Publish(topic, 1, false, strconv.Itoa(i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("publish: %v", tok.Error())
				}
			}
		}
		for i := range n {
			publish(old, i, i+1)
			publish(topic, i, i+1)
		}
		bus = dial(false)
		defer func() {
			_ = bus.Close()
			dial(true).Close() // a clean session of the same ID: the queue goes
		}()
		// Subscribed once RabbitMQ has sent what its prefetch lets it: the
		// messages that arrived before any handler.
		queue := "mqtt-subscription-" + id + "qos1"
		for deadline := time.Now().Add(30 * time.Second); ; {
			out, err := cl.Ctl(1, "list_queues", "name", "messages_unacknowledged")
			if err != nil {
				t.Fatal(err)
			}
			if unacked := queueField(out, queue); unacked >= 10 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("RabbitMQ sent the session dialled again nothing in 30 s:\n%s", out)
			}
		}
		// Two overlapping filters of this process; old, which the session
		// kept, is subscribed to no more.
		got := map[string]chan string{topic: make(chan string, 4*n), fmt.Sprintf("held/%s/x/+", id): make(chan string, 4*n)}
		for f, ch := range got {
			if err := bus.Subscribe(f, func(_ string, p []byte) error { ch <- string(p); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		bus.Release()
		// Twenty more after them: they arrive only if the messages of old
		// were acknowledged (else RabbitMQ's prefetch stays full).
		publish(topic, n, n+20)
		for f, ch := range got {
			seen := map[string]int{}
			deadline := time.After(30 * time.Second)
			for len(seen) < n+20 {
				select {
				case p := <-ch:
					seen[p]++
				case <-deadline:
					t.Fatalf("the handler of %s had %d of the %d messages its session held and the 20 after", f, len(seen), n)
				}
			}
			for p, c := range seen {
				if c != 1 {
					t.Errorf("message %s handed to the handler of %s %d times", p, f, c)
				}
			}
		}
	})
}

// queueField returns the number after queue's name in rabbitmqctl
// list_queues' output (-1 if the queue is not listed).
func queueField(out, queue string) int {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == queue {
			if n, err := strconv.Atoi(f[1]); err == nil {
				return n
			}
		}
	}
	return -1
}
