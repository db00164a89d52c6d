package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/topics"
)

func testEnvelope(t testing.TB, n uint64) []byte {
	e, err := topics.NewEnvelope(topics.KindTest, "test", topics.TestBody{Run: "poison", Counter: n})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func errorEvents(t testing.TB, c paho.Client, filter string) chan topics.ErrorEvent {
	ch := make(chan topics.ErrorEvent, 100)
	c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{})
		if err != nil || env.Kind != topics.KindError {
			return
		}
		var ev topics.ErrorEvent
		if env.DecodeBody(&ev) == nil {
			ch <- ev
		}
	}).Wait()
	return ch
}

func expectReasons(t testing.TB, ch chan topics.ErrorEvent, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case ev := <-ch:
			if ev.Reason != w || ev.Detail == "" {
				t.Fatalf("error event %+v, want reason %q with a detail", ev, w)
			}
			t.Logf("reported: %s: %s", ev.Reason, ev.Detail)
		case <-time.After(30 * time.Second):
			t.Fatalf("no error event; want %q", w)
		}
	}
}

// Must-show 10: malformed msgpack, an unknown schema version and an
// oversized payload on a project topic are acknowledged, dead-lettered and
// reported with a clear reason, at the edge (from a local app) and in the
// cloud (from a node that sends bad frames itself); brokers and bridge keep
// running and the stream keeps flowing. (The same on RabbitMQ:
// TestBackboneOnRabbitMQ.)
func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	poisonMessagesAreDeadLettered(t, embeddedTier())
}

func poisonMessagesAreDeadLettered(t *testing.T, tier cloudTier) {
	dir := t.TempDir()
	cl, url := tier.cloud(t, filepath.Join(dir, "cloud"))
	defer cl.Close()
	ag := startEdge(t, "edge-1", filepath.Join(dir, "edge"), url)
	defer ag.Close()
	topic := topics.NodeEvents("edge-1", "reading")

	delivered := make(chan uint64, 100)
	cons, err := newTestConsumer(t, url, tier.id("consumer-10"), filepath.Join(dir, "consumer"), func(d deliveryView) {
		if d.Topic != topic && d.Topic != topics.NodeEvents("edge-7", "reading") {
			return
		}
		env, err := topics.UnmarshalEnvelope(d.Payload, topics.Limits{})
		if err != nil {
			t.Errorf("a bad envelope reached the consumer: %v", err)
			return
		}
		if env.ID.IsZero() || env.ID.Node != d.ID.Node {
			t.Errorf("envelope not stamped with its ID: %+v", env.ID)
		}
		var b topics.TestBody
		_ = env.DecodeBody(&b)
		delivered <- b.Counter
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	watcher := client(t, url, "watcher", "app", true)
	edgeErrors := errorEvents(t, watcher, topics.NodeEvents("edge-1", "error"))
	cloudErrors := errorEvents(t, watcher, topics.CloudEvents("error"))

	// At the edge, from a local app.
	app := client(t, "tcp://"+ag.BrokerAddr(), "local-app", "", true)
	v9 := topics.Envelope{Version: topics.Version{Major: 9}, Kind: topics.KindTest}
	v9Raw, _ := v9.Marshal()
	big := topics.Envelope{Kind: topics.KindTest, Body: make([]byte, topics.DefaultLimits.MaxBody+1)}
	bigRaw, _ := big.Marshal()
	send := []struct {
		payload []byte
		good    uint64
	}{
		{testEnvelope(t, 1), 1}, {[]byte{0xc1, 0x00, 0xff}, 0}, {testEnvelope(t, 2), 2},
		{v9Raw, 0}, {testEnvelope(t, 3), 3}, {bigRaw, 0}, {testEnvelope(t, 4), 4},
	}
	for _, s := range send {
		if tok := app.Publish(topic, 1, false, s.payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish not acknowledged: %v", tok.Error())
		}
	}
	expectReasons(t, edgeErrors, "malformed", "unknown-version", "too-large")
	for want := uint64(1); want <= 4; want++ {
		select {
		case got := <-delivered:
			if got != want {
				t.Fatalf("delivered %d, want %d", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("good message %d did not flow", want)
		}
	}
	edl, err := ag.Bridge().DeadLetters().List(0)
	if err != nil || len(edl) != 3 || len(edl[2].Payload) != len(bigRaw) {
		t.Fatalf("edge holds %d dead letters (%v), want 3 with every payload", len(edl), err)
	}

	// In the cloud, from a node publishing bad frames itself.
	rogue := client(t, url, "rogue", "edge-7", true)
	up := topics.Uplink("edge-7", topics.StreamEvents)
	frame := func(v topics.Version, payload []byte, seq uint64, dest string) []byte {
		f := topics.Frame{Version: v, Node: "edge-7", Stream: topics.StreamEvents, Epoch: 77,
			Messages: []topics.FrameMessage{{Seq: seq, Topic: dest, Payload: payload, QoS: 1, Time: time.Now()}}}
		b, err := f.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dest := topics.NodeEvents("edge-7", "reading")
	for _, p := range [][]byte{
		[]byte("\x85garbage"),
		frame(topics.Version{Major: 9}, testEnvelope(t, 5), 1, dest),
		frame(topics.FrameVersion, make([]byte, topics.DefaultLimits.MaxBody+1), 2, dest),
		frame(topics.FrameVersion, testEnvelope(t, 6), 3, topics.NodeEvents("edge-1", "reading")),
		frame(topics.FrameVersion, testEnvelope(t, 7), 4, dest),
	} {
		if tok := rogue.Publish(up, 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("frame not acknowledged: %v", tok.Error())
		}
	}
	if !rogue.IsConnectionOpen() {
		t.Fatal("the node was disconnected for bad frames")
	}
	expectReasons(t, cloudErrors, "malformed", "unknown-version", "too-large", "not-allowed")
	select {
	case got := <-delivered:
		if got != 7 {
			t.Fatalf("delivered %d, want 7", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the good frame after the bad ones did not flow")
	}
	dl, err := cl.DeadLetters().List(0)
	if err != nil || len(dl) != 4 {
		t.Fatalf("cloud holds %d dead letters (%v), want 4", len(dl), err)
	}
	for _, d := range dl {
		if d.Component != tier.ingress || len(d.Payload) == 0 || !strings.Contains(d.Topic, "edge-") {
			t.Errorf("dead letter %+v lacks what it was", d.Component)
		}
	}
	// And the edge's own stream still flows.
	if tok := app.Publish(topic, 1, false, testEnvelope(t, 8)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case got := <-delivered:
		if got != 8 {
			t.Fatalf("delivered %d, want 8", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the edge stream stopped flowing")
	}
}

type deliveryView struct {
	ID      topics.ID
	Topic   string
	Payload []byte
}

type closer interface{ Close() error }

func newTestConsumer(t testing.TB, url, id, dir string, fn func(deliveryView)) (closer, error) {
	return startRawConsumer(t, url, id, openStore(t, dir), fn)
}
