package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/topics"
)

func edgeArgs(node, dir, cloudURL string) []string {
	level := "warn"
	if os.Getenv("SEDNA_TEST_LOG") != "" {
		level = "debug"
	}
	return []string{"edge", "--node", node, "--data", dir, "--listen", "127.0.0.1:0", "--cloud", cloudURL,
		"--password", password, "--metrics", "off", "--log-level", level}
}

// The edge process needs the sensors rule too: give it a config file.
func edgeConfig(t testing.TB, dir string) string {
	p := filepath.Join(dir, "edge.yaml")
	cfg := "extraRules:\n  - filter: 'sensors/#'\n    direction: out\n    remotePrefix: '" + topics.NodeAppPrefix("{node}") + "'\n    stream: telemetry\n"
	if err := writeFile(p, cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

// Must-show 2: the cloud link is down while 10,000 messages are published
// at the edge and all PUBACKed; the `sedna edge` process is SIGKILLed and
// restarted, the link comes back: all 10,000 arrive once.
// (The same on RabbitMQ: TestBackboneOnRabbitMQ.)
func TestEdgeKilledWithLinkDownLosesNothing(t *testing.T) {
	dir := t.TempDir()
	cl := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer cl.Close()
	edgeKilledWithLinkDown(t, dir, cl.BrokerURL(), cl.BrokerURL(), "consumer-2", 2)
}

// edgeKilledWithLinkDown runs must-show 2 against the cloud broker at url:
// link down, 10,000 messages PUBACKed at a `sedna edge` process, SIGKILL,
// restart, link up; a consumer (session consumer) of url must get each
// once, in order. The edge reaches the cloud through a proxy to via (url,
// or one broker of its list).
func edgeKilledWithLinkDown(t *testing.T, dir, url, via, consumer string, run uint32) {
	const n = 10000
	link := proxyTo(t, via)
	topic := topics.NodeAppPrefix("edge-1") + "sensors/t"
	_, cnt := startConsumer(t, url, consumer, openStore(t, filepath.Join(dir, "consumer")), run, topic)
	link.SetDown(true)
	args := append(edgeArgs("edge-1", filepath.Join(dir, "edge"), "tcp://"+link.Addr()), "--config", edgeConfig(t, dir))
	p := startProc(t, args...)
	pub := client(t, "tcp://"+p.addr, "pub", "", true)
	publishAll(t, pub, "sensors/t", run, 0, n, 256)
	pub.Disconnect(0)
	p.kill()

	p = startProc(t, args...)
	link.SetDown(false)
	cnt.wait(t, n, 90*time.Second)
	cnt.check(t, n, true)
	p.stop(t)
}

// proxyTo puts a fault-injecting proxy in front of the broker at url.
func proxyTo(t testing.TB, url string) *netfault.Proxy {
	t.Helper()
	link, err := netfault.New(strings.TrimPrefix(url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = link.Close() })
	return link
}

// Must-show 2, variant: the process is SIGKILLed while a client publishes;
// every message that got its PUBACK arrives, once. (The same on RabbitMQ:
// TestBackboneOnRabbitMQ.)
func TestEdgeKilledWhilePublishingKeepsEveryAckedMessage(t *testing.T) {
	edgeKilledWhilePublishing(t, embeddedTier())
}

func edgeKilledWhilePublishing(t *testing.T, tier cloudTier) {
	dir := t.TempDir()
	cl, url := tier.cloud(t, filepath.Join(dir, "cloud"))
	defer cl.Close()
	topic := topics.NodeAppPrefix("edge-1") + "sensors/t"
	_, cnt := startConsumer(t, url, tier.id("consumer-3"), openStore(t, filepath.Join(dir, "consumer")), 3, topic)
	args := append(edgeArgs("edge-1", filepath.Join(dir, "edge"), url), "--config", edgeConfig(t, dir))
	p := startProc(t, args...)

	pub := client(t, "tcp://"+p.addr, "pub", "", true)
	var mu sync.Mutex
	acked := map[uint64]bool{}
	var wg sync.WaitGroup
	const killAt = 3000
	killed := make(chan struct{})
	var once sync.Once
	sem := make(chan struct{}, 128)
	// Kill once a few thousand are acknowledged, while more are in flight.
	for i := uint64(0); ; i++ {
		select {
		case <-killed:
		default:
			sem <- struct{}{}
			tok := pub.Publish("sensors/t", 1, false, payload(3, i))
			wg.Add(1)
			go func(i uint64, tok paho.Token) {
				defer wg.Done()
				defer func() { <-sem }()
				if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
					mu.Lock()
					acked[i] = true
					n := len(acked)
					mu.Unlock()
					if n >= killAt {
						once.Do(func() { p.kill(); close(killed) })
					}
				}
			}(i, tok)
			continue
		}
		break
	}
	wg.Wait()
	mu.Lock()
	nAcked := len(acked)
	mu.Unlock()
	if nAcked < killAt {
		t.Fatalf("only %d acknowledged before the kill", nAcked)
	}
	p = startProc(t, args...)
	deadline := time.Now().Add(90 * time.Second)
	for {
		cnt.mu.Lock()
		missing := 0
		for i := range acked {
			if cnt.seen[i] == 0 {
				missing++
			}
		}
		dups := 0
		for _, c := range cnt.seen {
			if c > 1 {
				dups += c - 1
			}
		}
		cnt.mu.Unlock()
		if dups > 0 {
			t.Fatalf("%d duplicates", dups)
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			var miss []uint64
			cnt.mu.Lock()
			for i := range acked {
				if cnt.seen[i] == 0 {
					miss = append(miss, i)
				}
			}
			cnt.mu.Unlock()
			slices.Sort(miss)
			t.Fatalf("%d of %d acknowledged messages never arrived: %v", missing, nAcked, miss)
		}
		select {
		case <-cnt.changed:
		case <-time.After(time.Until(deadline)):
		}
	}
	cnt.mu.Lock()
	arrived := len(cnt.seen)
	cnt.mu.Unlock()
	t.Logf("%d acknowledged before SIGKILL, all arrived once (%d arrived in all)", nAcked, arrived)
	p.stop(t)
}
