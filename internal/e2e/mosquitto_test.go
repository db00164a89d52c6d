package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// mosquittoBin finds Debian's mosquitto; `make test` installs it.
func mosquittoBin(t testing.TB) string {
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	t.Fatal("mosquitto is not installed: run `make test`, which installs Debian's mosquitto and mosquitto-clients")
	return ""
}

// startMosquitto runs mosquitto on a free loopback port with an unbounded
// queue per persistent session, and returns its URL.
func startMosquitto(t testing.TB, dir string) string {
	addr := freeAddr(t)
	_, port, _ := splitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	content := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_type error\n", port)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mosquittoBin(t), "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	url := "tcp://" + addr
	// Wait until it accepts connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("probe").SetConnectTimeout(time.Second))
		tok := c.Connect()
		if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			return url
		}
		select {
		case <-done:
			t.Fatal("mosquitto exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not accepting on %s: %v", addr, tok.Error())
		}
		select {
		case <-done:
			t.Fatal("mosquitto exited at start")
		case <-time.After(20 * time.Millisecond): // a connect probe, not an event we could wait on
		}
	}
}

// Must-show 5, test 1 with mosquitto as the cloud broker: 10,000 messages
// reach a consumer once, in order; with the cloud manager relaying through
// mosquitto, a plain subscriber of the unwrapped topic gets them all too.
func TestMosquittoCloudExactlyOnce(t *testing.T) {
	const n = 10000
	dir := t.TempDir()
	url := startMosquitto(t, dir)
	m, err := cloud.Start(cloud.Config{DataDir: filepath.Join(dir, "cloud"), External: cloud.ExternalBroker{URL: url}, Metrics: "off"},
		cloud.Options{Paradigms: all.All(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	topic := topics.NodeAppPrefix("edge-1") + "sensors/t"
	_, cnt := startConsumer(t, url, "consumer-5", openStore(t, filepath.Join(dir, "consumer")), 5, topic)
	raw := newCounter()
	rc := client(t, url, "raw-5", "", true)
	rc.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) {
		if r, k, ok := counterOf(msg.Payload()); ok && r == 5 {
			raw.add(k)
		}
	}).Wait()
	ag := startEdge(t, "edge-1", filepath.Join(dir, "edge"), url)
	defer ag.Close()
	pub := client(t, "tcp://"+ag.BrokerAddr(), "pub", "", true)
	publishAll(t, pub, "sensors/t", 5, 0, n, 256)
	cnt.wait(t, n, 60*time.Second)
	cnt.check(t, n, true)
	raw.wait(t, n, 60*time.Second)
	raw.check(t, n, false)
}

// Must-show 5, test 2 with mosquitto as the cloud broker.
func TestMosquittoCloudEdgeKilledWithLinkDown(t *testing.T) {
	dir := t.TempDir()
	url := startMosquitto(t, dir)
	edgeKilledWithLinkDown(t, dir, url, url, "consumer-6", 6)
}
