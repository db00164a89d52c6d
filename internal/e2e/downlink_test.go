package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/topics"
)

// Must-show 7: downlink to a node that is offline, then back: every
// message arrives once; a spec deleted while it was offline is deleted
// there too (and one created meanwhile appears). (The same on RabbitMQ:
// TestBackboneOnRabbitMQ.)
func TestDownlinkToOfflineNode(t *testing.T) { downlinkToOfflineNode(t, embeddedTier()) }

func downlinkToOfflineNode(t *testing.T, tier cloudTier) {
	const n = 1000
	dir := t.TempDir()
	cl, url := tier.cloud(t, filepath.Join(dir, "cloud"))
	defer cl.Close()
	edgeDir := filepath.Join(dir, "edge")
	ag := startEdge(t, "edge-1", edgeDir, url)
	waitLink(t, ag)

	// A local app with a persistent session on the edge broker: it keeps
	// receiving across the edge agent's restart.
	var mu sync.Mutex
	seen := map[int]int{}
	got := make(chan struct{}, 1)
	specs := make(chan string, 100) // "topic payload-kind" of spec messages
	handler := func(_ paho.Client, m paho.Message) {
		if p, _ := topics.Parse(m.Topic()); p.Class == topics.ClassJob {
			kind := "clear"
			if env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{}); err == nil {
				var sp topics.Spec
				_ = env.DecodeBody(&sp)
				kind = fmt.Sprintf("gen%d-deleted-%v", sp.Generation, sp.Deleted)
			}
			specs <- m.Topic() + " " + kind
			return
		}
		if k, err := strconv.Atoi(string(m.Payload())); err == nil {
			mu.Lock()
			seen[k]++
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}
	local := func() paho.Client {
		o := paho.NewClientOptions().AddBroker("tcp://" + ag.BrokerAddr()).SetClientID("local-app").
			SetCleanSession(false).SetOrderMatters(true).SetDefaultPublishHandler(handler)
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		return c
	}
	lc := local()
	lc.SubscribeMultiple(map[string]byte{"cmd/#": 1, topics.Root + "/job/#": 1}, handler).Wait()
	had := map[string]bool{}
	expectSpec := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-specs:
				if had[got] {
					continue // a QoS 1 redelivery to the persistent session
				}
				had[got] = true
				if got != want {
					t.Fatalf("spec event %q, want %q", got, want)
				}
				return
			case <-time.After(30 * time.Second):
				t.Fatalf("no spec event; want %q", want)
			}
		}
	}

	// A spec the node gets while online.
	job := topics.JobRef{Kind: "FederatedLearningJob", Namespace: "default", Name: "fl"}
	keep := topics.JobRef{Kind: "FederatedLearningJob", Namespace: "default", Name: "kept"}
	if err := cl.PutSpec("edge-1", job, topics.Revision{Generation: 1}, []byte("spec v1")); err != nil {
		t.Fatal(err)
	}
	expectSpec(topics.JobSpec(job) + " gen1-deleted-false")

	// The node goes offline.
	flushAcks(t, lc)
	lc.Disconnect(0)
	ag.Close()
	app := client(t, url, "cloud-app", "app", true)
	for i := 0; i < n; i++ {
		if tok := app.Publish(topics.ToNodeAppPrefix("edge-1")+"cmd/x", 1, false, []byte(strconv.Itoa(i))); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("cloud publish %d: %v", i, tok.Error())
		}
	}
	if err := cl.DeleteSpec("edge-1", job, topics.Revision{Generation: 2}); err != nil {
		t.Fatal(err)
	}
	if err := cl.PutSpec("edge-1", keep, topics.Revision{Generation: 1}, []byte("kept v1")); err != nil {
		t.Fatal(err)
	}

	// Back online: the agent restarts on the same store.
	ag = startEdge(t, "edge-1", edgeDir, url)
	defer func() { ag.Close() }() // whichever agent runs at the end
	lc = local()
	defer func() { lc.Disconnect(0) }()
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		k := len(seen)
		mu.Unlock()
		if k == n {
			break
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("%d of %d downlink messages arrived", k, n)
		}
	}
	expectSpec(topics.JobSpec(job) + " gen2-deleted-true")
	expectSpec(topics.JobSpec(job) + " clear")
	expectSpec(topics.JobSpec(keep) + " gen1-deleted-false")
	if rev, deleted, ok := ag.SpecRevision(job.String()); !ok || rev.Generation != 2 || !deleted {
		t.Fatalf("node holds spec %s at generation %d, deleted %v", job, rev.Generation, deleted)
	}
	// The deleted spec is not retained on the edge broker; the kept one is.
	probe := client(t, "tcp://"+ag.BrokerAddr(), "probe", "", true)
	retained := make(chan string, 10)
	probe.Subscribe(topics.Root+"/job/#", 1, func(_ paho.Client, m paho.Message) { retained <- m.Topic() }).Wait()
	probe.Publish("probe/end", 1, false, nil).Wait()
	select {
	case tp := <-retained:
		if tp != topics.JobSpec(keep) {
			t.Fatalf("retained on the edge broker: %s", tp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the kept spec is not retained")
	}
	select {
	case tp := <-retained:
		t.Fatalf("also retained: %s", tp)
	default:
	}
	// Restart once more: nothing is delivered twice. The app's PUBACKs
	// must be out first, or its broker rightly delivers again what the app
	// never acknowledged (QoS 1 between an app and its broker).
	flushAcks(t, lc)
	lc.Disconnect(0)
	ag.Close()
	ag = startEdge(t, "edge-1", edgeDir, url)
	waitLink(t, ag)
	lc = local()
	// One more message proves the link works; it must be the only new one.
	if tok := app.Publish(topics.ToNodeAppPrefix("edge-1")+"cmd/x", 1, false, []byte(strconv.Itoa(n))); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for {
		mu.Lock()
		last := seen[n]
		mu.Unlock()
		if last > 0 {
			break
		}
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			t.Fatal("the last message did not arrive")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i <= n; i++ {
		if seen[i] != 1 {
			t.Fatalf("message %d arrived %d times", i, seen[i])
		}
	}
}

// flushAcks makes sure an app's PUBACKs for what it received reached the
// broker: a QoS 1 publish queued after them is acknowledged after them.
func flushAcks(t testing.TB, c paho.Client) {
	t.Helper()
	if tok := c.Publish("probe/flush", 1, false, []byte{}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("flush: %v", tok.Error())
	}
}

// waitLink waits until the agent's bridge is connected.
func waitLink(t testing.TB, ag *edge.Agent) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		up, changed := ag.Bridge().Connected()
		if up {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("the bridge did not connect")
		}
	}
}
