package e2e

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// Two nodes whose clocks are two hours off the cloud's, one ahead and one
// behind, send and receive messages with a 30 s time to live. Judged by
// the other side's clock each of them would be long expired (or live two
// hours too long); frames carry their sender's clock, so each side judges
// a message's lifetime on its own clock and every message arrives.
func TestSkewedNodeClocksKeepTimesToLive(t *testing.T) {
	const n = 50
	dir := t.TempDir()
	cl := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer cl.Close()
	ttlRule := bridge.Rule{Filter: "timed/#", Direction: bridge.Out, RemotePrefix: topics.NodeAppPrefix("{node}"),
		Stream: topics.StreamTelemetry, TTL: broker.Duration(30 * time.Second)}

	skews := map[string]time.Duration{"edge-1": 2 * time.Hour, "edge-2": -2 * time.Hour}
	var mu sync.Mutex
	up := map[string]int{}   // messages of each node at the cloud
	down := map[string]int{} // downlink messages at each node's app
	done := make(chan struct{}, 4*n)
	note := func(m map[string]int, node string) {
		mu.Lock()
		m[node]++
		mu.Unlock()
		done <- struct{}{}
	}
	sub := client(t, cl.BrokerURL(), "counter", "app", true)
	if tok := sub.Subscribe(topics.NodeAppPrefix("+")+"timed/#", 1, func(_ paho.Client, m paho.Message) {
		p, _ := topics.Parse(m.Topic())
		note(up, p.Node)
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	for node, skew := range skews {
		skew := skew
		ag, err := edge.Start(edge.Config{Node: node, DataDir: filepath.Join(dir, node), Broker: edge.BrokerConfig{Listen: "127.0.0.1:0"},
			Cloud:      edge.CloudLink{URL: cl.BrokerURL(), Username: node, Password: password},
			ExtraRules: []bridge.Rule{ttlRule}, Metrics: "off"},
			edge.Options{Paradigms: all.All(), Logger: testLogger(t), KeepMemoryLimit: true, Clock: func() time.Time { return time.Now().Add(skew) }})
		if err != nil {
			t.Fatal(err)
		}
		defer ag.Close()
		waitLink(t, ag)
		app := client(t, "tcp://"+ag.BrokerAddr(), "app-"+node, "", true)
		node := node
		if tok := app.Subscribe("inbox/#", 1, func(paho.Client, paho.Message) { note(down, node) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		for i := 0; i < n; i++ {
			if tok := app.Publish(fmt.Sprintf("timed/%d", i), 1, false, []byte("x")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			if _, err := cl.Downlink().Send(node, topics.ToNodeAppPrefix(node)+fmt.Sprintf("inbox/%d", i), []byte("y"), false, 1, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.After(30 * time.Second)
	for range 4 * n {
		select {
		case <-done:
		case <-deadline:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("after 30 s: at the cloud %v, at the nodes %v; want %d each", up, down, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for node := range skews {
		if up[node] != n || down[node] != n {
			t.Errorf("%s (clock %v): %d of %d up, %d of %d down", node, skews[node], up[node], n, down[node], n)
		}
	}
	t.Logf("clocks ±2h off: up %v, down %v", up, down)
}
