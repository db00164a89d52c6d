package e2e

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// startConsumer consumes every uplink frame from url with a persistent
// session and counts the messages of run on topic.
func startConsumer(t testing.TB, url, id string, st store.Store, run uint32, topic string) (*cloudlink.Consumer, *counter) {
	return startConsumerOf(t, url, id, st, run, func(t string) bool { return t == topic })
}

// startConsumerOf is startConsumer counting the messages of every topic
// that matches.
func startConsumerOf(t testing.TB, url, id string, st store.Store, run uint32, matches func(topic string) bool) (*cloudlink.Consumer, *counter) {
	c := newCounter()
	cons, err := cloudlink.NewConsumer(cloudlink.ConsumerConfig{
		Client: cloudlink.ClientConfig{URL: url, ClientID: id, Username: "app", Password: password},
		Store:  st,
		Handler: func(d cloudlink.Delivery, _ *store.Batch) error {
			if !matches(d.Topic) {
				return nil
			}
			if r, n, ok := counterOf(d.Payload); ok && r == run {
				c.add(n)
			}
			return nil
		},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return cons, c
}

// Must-show 1: 10,000 QoS 1 messages published at an edge broker reach a
// cloud consumer exactly once, in order per stream.
// (The same on RabbitMQ: TestBackboneOnRabbitMQ.)
func TestUplinkExactlyOnceInOrder(t *testing.T) { uplinkExactlyOnceInOrder(t, embeddedTier()) }

func uplinkExactlyOnceInOrder(t *testing.T, tier cloudTier) {
	const n = 10000
	dir := t.TempDir()
	cl, url := tier.cloud(t, filepath.Join(dir, "cloud"))
	defer cl.Close()
	ag := startEdge(t, "edge-1", filepath.Join(dir, "edge"), url)
	defer ag.Close()
	topic := topics.NodeAppPrefix("edge-1") + "sensors/t"
	_, cnt := startConsumer(t, url, tier.id("consumer-1"), openStore(t, filepath.Join(dir, "consumer")), 1, topic)

	pub := client(t, "tcp://"+ag.BrokerAddr(), "pub", "", true)
	start := time.Now()
	publishAll(t, pub, "sensors/t", 1, 0, n, 256)
	cnt.wait(t, n, 60*time.Second)
	t.Logf("%d messages edge->cloud in %v", n, time.Since(start))
	cnt.check(t, n, true)
}

// startRawConsumer consumes every uplink frame and hands each new message
// to fn.
func startRawConsumer(t testing.TB, url, id string, st store.Store, fn func(deliveryView)) (*cloudlink.Consumer, error) {
	cons, err := cloudlink.NewConsumer(cloudlink.ConsumerConfig{
		Client: cloudlink.ClientConfig{URL: url, ClientID: id, Username: "app", Password: password},
		Store:  st,
		Handler: func(d cloudlink.Delivery, _ *store.Batch) error {
			fn(deliveryView{ID: d.ID, Topic: d.Topic, Payload: d.Payload})
			return nil
		},
		Logger: testLogger(t),
	})
	if err != nil {
		return nil, err
	}
	return cons, cons.Start()
}

// Must-show 1, shuffled: frames delivered out of order, each of them twice,
// still reach the consumer exactly once: the ingress's window does not
// take a late lower seq for a duplicate.
func TestUplinkShuffledDeliveries(t *testing.T) {
	const n = 2000
	dir := t.TempDir()
	cl := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer cl.Close()
	topic := topics.NodeAppPrefix("edge-9") + "sensors/t"
	_, cnt := startConsumer(t, cl.BrokerURL(), "consumer-s", openStore(t, filepath.Join(dir, "consumer")), 9, topic)
	node := client(t, cl.BrokerURL(), "bridge-9", "edge-9", true)
	order := rand.New(rand.NewPCG(1, 2)).Perm(2 * n)
	for _, k := range order {
		seq := uint64(k%n + 1)
		f := topics.Frame{Node: "edge-9", Stream: topics.StreamTelemetry, Epoch: 99,
			Messages: []topics.FrameMessage{{Seq: seq, Topic: topic, Payload: payload(9, seq-1), QoS: 1}}}
		raw, err := f.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if tok := node.Publish(topics.Uplink("edge-9", topics.StreamTelemetry), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	cnt.wait(t, n, 30*time.Second)
	cnt.check(t, n, false)
}
