package e2e

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/topics"
)

// Must-show 4: `sedna cloud` is SIGKILLed and restarted mid-stream. The
// consumer, with a persistent session, gets every message exactly once; a
// plain subscriber of the unwrapped topic, also with a persistent session,
// loses none (it may see a message twice across the crash: docs/TOPICS.md).
// (The same on RabbitMQ: TestBackboneOnRabbitMQ.)
func TestCloudKilledMidStream(t *testing.T) { cloudKilledMidStream(t, embeddedTier()) }

func cloudKilledMidStream(t *testing.T, tier cloudTier) {
	const n = 10000
	dir := t.TempDir()
	cloudArgs, url := tier.proc(t, filepath.Join(dir, "cloud"))
	cp := startProc(t, cloudArgs...)
	tier.explainOnFailure(t)

	topic := topics.NodeAppPrefix("edge-1") + "sensors/t"
	_, cnt := startConsumer(t, url, tier.id("consumer-4"), openStore(t, filepath.Join(dir, "consumer")), 4, topic)
	raw := newCounter()
	rawOpts := paho.NewClientOptions().SetClientID(tier.id("raw-4")).SetUsername("app").SetPassword(password).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetOrderMatters(true).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
				if r, k, ok := counterOf(m.Payload()); ok && r == 4 {
					raw.add(k)
				}
			})
		})
	for _, u := range brokerURLs(t, url) {
		rawOpts.AddBroker(u)
	}
	rc := paho.NewClient(rawOpts)
	if tok := rc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer rc.Disconnect(50)

	ag := startEdge(t, "edge-1", filepath.Join(dir, "edge"), url)
	defer ag.Close()
	pub := client(t, "tcp://"+ag.BrokerAddr(), "pub", "", true)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		publishAll(t, pub, "sensors/t", 4, 0, n, 64)
	}()
	// Kill the cloud once a third has arrived, restart it at once.
	cnt.wait(t, n/3, 60*time.Second)
	cp.kill()
	cp = startProc(t, cloudArgs...)
	wg.Wait()
	cnt.wait(t, n, 120*time.Second)
	cnt.check(t, n, false)
	raw.wait(t, n, 60*time.Second)
	raw.mu.Lock()
	dups := 0
	for _, c := range raw.seen {
		dups += c - 1
	}
	raw.mu.Unlock()
	t.Logf("plain persistent subscriber: all %d arrived, %d of them twice across the crash", n, dups)
	cp.stop(t)
}
