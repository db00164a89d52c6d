package broker

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/sedna-go/sedna/topics"
)

// Must-show 3: a PUBACK is never sent before the message is in the store.
// The store holds the uplink queue's write until the test opens a gate;
// while it is held, no PUBACK may arrive; once it arrives, the message must
// be readable from the store.
func TestPubackOnlyAfterTheMessageIsStored(t *testing.T) {
	base := openTestStore(t, filepath.Join(t.TempDir(), "s"))
	defer base.Close()
	gs := &gatedStore{Store: base, prefix: "bridge/up/m/", pending: make(chan struct{}, 1), gate: make(chan struct{})}
	srv, err := NewServer(Config{Role: RoleEdge, Node: "node-a", Listen: "127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rules := append(DefaultRules(), Rule{Filter: "sensors/#", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}")})
	br, err := NewBridge(BridgeConfig{Node: "node-a", CloudURL: "tcp://127.0.0.1:1", Store: gs, Server: srv, Rules: rules, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer br.Close()
	var opened bool
	// On failure, let held writes through so everything can stop.
	defer func() {
		if !opened {
			close(gs.gate)
		}
	}()

	c := dial(t, srv.URL(), "pub", "")
	payload := []byte("must be on disk before its PUBACK")
	for round := 0; round < 3; round++ {
		tok := c.Publish("sensors/t", 1, false, payload)
		select {
		case <-gs.pending:
		case <-time.After(10 * time.Second):
			t.Fatal("the queue never tried to write the message")
		}
		// The write is held. A PUBACK now would be a PUBACK before storing.
		select {
		case <-tok.Done():
			t.Fatalf("round %d: PUBACK arrived while the message was not yet written (err %v)", round, tok.Error())
		case <-time.After(200 * time.Millisecond):
		}
		gs.gate <- struct{}{}
		if round == 2 {
			close(gs.gate)
			opened = true
		}
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("round %d: no PUBACK after the write: %v", round, tok.Error())
		}
		found := 0
		err := base.Scan([]byte("bridge/up/m/"), nil, func(_, v []byte) error {
			if bytes.Contains(v, payload) {
				found++
			}
			return nil
		})
		if err != nil || found != round+1 {
			t.Fatalf("round %d: %d stored copies after the PUBACK (err %v)", round, found, err)
		}
	}
}

// Messages the bridge publishes itself (downlink republished locally) are
// never captured again, even when an uplink rule matches their topic.
func TestInjectedMessagesAreNotCaptured(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	srv, err := NewServer(Config{Role: RoleEdge, Node: "node-a", Listen: "127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	both := Rule{Filter: "loop/#", Direction: Both, RemotePrefix: topics.NodeAppPrefix("{node}")}
	down := Rule{Filter: "loop/#", Direction: In, RemotePrefix: topics.ToNodeAppPrefix("{node}")}
	if _, err := NewBridge(BridgeConfig{Node: "node-a", CloudURL: "tcp://127.0.0.1:1", Store: s, Server: srv,
		Rules: []Rule{both, down}, Logger: quietLogger()}); err == nil {
		t.Fatal("a both-way rule whose remote prefix is the node's uplink subtree must be refused for the downlink")
	}
	br, err := NewBridge(BridgeConfig{Node: "node-a", CloudURL: "tcp://127.0.0.1:1", Store: s, Server: srv,
		Rules: []Rule{{Filter: "loop/#", Direction: Out, RemotePrefix: topics.NodeAppPrefix("{node}")}, down}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer br.Close()
	// A downlink message, as the inbox delivers it, on a topic the uplink
	// rule also matches.
	br.deliver(&Record{Topic: topics.ToNodeAppPrefix("node-a") + "loop/x", Payload: []byte("down"), QoS: 1})
	// A local app's publish on the same topic is captured.
	c := dial(t, srv.URL(), "app", "")
	if tok := c.Publish("loop/x", 1, false, []byte("up")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	got, _, err := br.Queue().Read(string(topics.StreamTelemetry), 0, 10, 1<<20)
	if err != nil || len(got) != 1 || string(got[0].Payload) != "up" {
		t.Fatalf("queue holds %d records (%v): the injected message was captured or the local one was not", len(got), err)
	}
}

func TestCaptureDeadLettersBadEnvelopes(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	srv, err := NewServer(Config{Role: RoleEdge, Node: "node-a", Listen: "127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	br, err := NewBridge(BridgeConfig{Node: "node-a", CloudURL: "tcp://127.0.0.1:1", Store: s, Server: srv,
		Limits: topics.Limits{MaxBody: 1024}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer br.Close()
	c := dial(t, srv.URL(), "app", "")
	good, _ := topics.NewEnvelope(topics.KindTest, "test", topics.TestBody{Run: "x", Counter: 1})
	goodRaw, _ := good.Marshal()
	v9 := *good
	v9.Version = topics.Version{Major: 9}
	v9Raw, _ := v9.Marshal()
	big := *good
	big.Body = make([]byte, 900)
	bigRaw, _ := big.Marshal()
	topic := topics.NodeEvents("node-a", "test")
	for _, p := range [][]byte{[]byte("not msgpack"), v9Raw, append(bigRaw, make([]byte, 200)...), goodRaw} {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish not acked: %v", tok.Error())
		}
	}
	dl, err := br.DeadLetters().List(0)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, d := range dl {
		reasons = append(reasons, d.Reason)
	}
	if len(dl) != 3 || reasons[0] != "malformed" || reasons[1] != "unknown-version" || reasons[2] != "too-large" {
		t.Fatalf("dead letters: %v", reasons)
	}
	// The good one is queued behind the error events the bad ones raised.
	got, _, _ := br.Queue().Read(string(topics.StreamEvents), 0, 100, 1<<20)
	var good1, errs int
	for _, r := range got {
		switch r.Topic {
		case topic:
			good1++
		case topics.NodeEvents("node-a", "error"):
			errs++
		}
	}
	if good1 != 1 || errs != 3 {
		t.Fatalf("queued: %d good, %d error events", good1, errs)
	}
}
