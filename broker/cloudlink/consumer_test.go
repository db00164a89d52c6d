package cloudlink

import (
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/internal/brokertest"
	"github.com/sedna-go/sedna/broker/internal/servertest"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// A consumer of a broker with no ingress (as RabbitMQ or mosquitto in the
// cloud: the frames arrive as a node sent them) checks what the ingress
// would: a frame that does not decode, and one that names another node
// than its uplink topic, are refused whole; a message for another node's
// subtree and an envelope that does not decode are refused; each is
// dead-lettered with its reason and never handed over, while the frame's
// good messages are, envelopes stamped with their ID and raw payloads as
// they were.
func TestConsumerChecksWhatTheIngressChecks(t *testing.T) {
	srv := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t)})
	st := brokertest.OpenStore(t, filepath.Join(t.TempDir(), "consumer"))
	t.Cleanup(func() { _ = st.Close() })
	dead, err := queue.OpenDeadLetters(store.Sub(st, "dl/"), 0, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Delivery, 16)
	cons, err := NewConsumer(ConsumerConfig{Client: ClientConfig{URL: srv.URL(), ClientID: "checking", Username: "app", Password: brokertest.Password},
		Store: st, Dead: dead, Component: "test/consumer", Logger: slog.New(slog.DiscardHandler),
		Handler: func(d Delivery, _ *store.Batch) error { got <- d; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })

	node := brokertest.Dial(t, srv.URL(), "rogue", "node-a")
	envelope := func(n uint64) []byte {
		env, err := topics.NewEnvelope(topics.KindTest, "test", topics.TestBody{Counter: n})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	frame := func(of string, msgs ...topics.FrameMessage) []byte {
		f := topics.Frame{Node: of, Stream: topics.StreamEvents, Epoch: 5, Messages: msgs}
		raw, err := f.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	own, other := topics.NodeEvents("node-a", "reading"), topics.NodeEvents("node-b", "reading")
	app := topics.NodeApp("node-a", "raw")
	for _, payload := range [][]byte{
		[]byte("\x85garbage"),
		frame("node-b", topics.FrameMessage{Seq: 1, Topic: other, Payload: envelope(1), QoS: 1}),
		frame("node-a",
			topics.FrameMessage{Seq: 1, Topic: own, Payload: envelope(2), QoS: 1},
			topics.FrameMessage{Seq: 2, Topic: other, Payload: envelope(3), QoS: 1},
			topics.FrameMessage{Seq: 3, Topic: own, Payload: []byte{0xc1}, QoS: 1},
			topics.FrameMessage{Seq: 4, Topic: app, Payload: []byte("as it was"), QoS: 1}),
	} {
		if tok := node.Publish(topics.Uplink("node-a", topics.StreamEvents), 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	var delivered []Delivery
	for len(delivered) < 2 {
		select {
		case d := <-got:
			delivered = append(delivered, d)
		case <-time.After(20 * time.Second):
			t.Fatalf("delivered %d of 2", len(delivered))
		}
	}
	env, err := topics.UnmarshalEnvelope(delivered[0].Payload, topics.Limits{})
	if err != nil || delivered[0].Topic != own || env.ID != delivered[0].ID || env.ID.Node != "node-a" || env.ID.Seq != 1 {
		t.Errorf("first delivery %s %+v: %v; want the envelope stamped with its ID", delivered[0].Topic, env, err)
	}
	if d := delivered[1]; d.Topic != app || string(d.Payload) != "as it was" || d.ID.Seq != 4 {
		t.Errorf("second delivery %s %q %+v", d.Topic, d.Payload, d.ID)
	}
	// The frame's acknowledgement follows its dead letters: a frame after
	// it is delivered once they are all kept.
	if tok := node.Publish(topics.Uplink("node-a", topics.StreamEvents), 1, false,
		frame("node-a", topics.FrameMessage{Seq: 5, Topic: app, Payload: []byte("last"), QoS: 1})); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case d := <-got:
		if string(d.Payload) != "last" {
			t.Fatalf("delivered %q, want the last frame's message", d.Payload)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the frame after the refused ones was not delivered")
	}
	dls, err := dead.List(0)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, dl := range dls {
		if dl.Component != "test/consumer" || len(dl.Payload) == 0 {
			t.Errorf("dead letter %+v", dl)
		}
		reasons = append(reasons, dl.Reason+" "+dl.Topic)
	}
	slices.Sort(reasons)
	want := []string{
		"malformed " + own,
		"malformed " + topics.Uplink("node-a", topics.StreamEvents),
		"not-allowed " + other,
		"not-allowed " + topics.Uplink("node-a", topics.StreamEvents),
	}
	slices.Sort(want)
	if !slices.Equal(reasons, want) {
		t.Fatalf("dead letters %q, want %q", reasons, want)
	}
}

// BenchmarkConsumerCheck is what the consumer's check of each message
// costs (checkRelayed): a raw payload (the authorization of its topic), an
// envelope the ingress stamped already (decoded, not encoded again: the
// embedded broker), and one the consumer stamps (decoded and encoded: an
// external broker).
//
//	go test -run '^$' -bench BenchmarkConsumerCheck ./broker/cloudlink/
func BenchmarkConsumerCheck(b *testing.B) {
	id := topics.ID{Node: "edge-1", Stream: topics.StreamEvents, Epoch: 3, Seq: 42}
	env, err := topics.NewEnvelope(topics.KindTest, "bench", topics.TestBody{Counter: 1, Pad: make([]byte, 200)})
	if err != nil {
		b.Fatal(err)
	}
	unstamped, err := env.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	env.ID = id
	stamped, err := env.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, topic string
		payload     []byte
	}{
		{"raw", topics.NodeApp("edge-1", "sensors/t"), make([]byte, 256)},
		{"envelope-stamped", topics.NodeEvents("edge-1", "reading"), stamped},
		{"envelope-unstamped", topics.NodeEvents("edge-1", "reading"), unstamped},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := topics.FrameMessage{Seq: id.Seq, Topic: c.topic, Payload: c.payload, QoS: 1}
				if reason, detail := checkRelayed("edge-1", &m, id, topics.Limits{}); reason != "" {
					b.Fatal(reason, detail)
				}
			}
		})
	}
}
