package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/topics"
)

func mosquittoClient(t testing.TB, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run `make test`, which installs Debian's mosquitto-clients", name)
	}
	return p
}

// Must-show 8: KubeEdge apps and mappers work unchanged. mosquitto_pub
// publishes KubeEdge JSON on $hw/events/upload/... at the edge and it
// arrives in the cloud byte for byte; a cloud downlink to a twin delta
// topic reaches mosquitto_sub on the edge broker; a plain MQTT rule
// carries arbitrary bytes.
func TestKubeEdgeTopicsWithMosquittoClients(t *testing.T) {
	pub, sub := mosquittoClient(t, "mosquitto_pub"), mosquittoClient(t, "mosquitto_sub")
	dir := t.TempDir()
	cl := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer cl.Close()
	ag := startEdge(t, "edge-1", filepath.Join(dir, "edge"), cl.BrokerURL())
	defer ag.Close()
	waitLink(t, ag)
	host, port, _ := splitHostPort(ag.BrokerAddr())

	got := make(chan paho.Message, 10)
	watcher := client(t, cl.BrokerURL(), "watcher", "app", true)
	watcher.SubscribeMultiple(map[string]byte{topics.NodeKubeEdgePrefix("edge-1") + "#": 1, topics.NodeAppPrefix("edge-1") + "#": 1},
		func(_ paho.Client, m paho.Message) { got <- m }).Wait()
	expect := func(topic string, payload []byte) {
		t.Helper()
		select {
		case m := <-got:
			if m.Topic() != topic || !bytes.Equal(m.Payload(), payload) {
				t.Fatalf("cloud got %q %q, want %q %q", m.Topic(), m.Payload(), topic, payload)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("nothing arrived on %s", topic)
		}
	}

	// Uplink: a KubeEdge device event, as a mapper publishes it.
	event := []byte(`{"event_id":"","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"23.5","metadata":{"timestamp":1700000000000}},"metadata":{"type":"float"}}}}`)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(pub, append([]string{"-h", host, "-p", port, "-q", "1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub %v: %v: %s", args, err, out)
		}
	}
	run("-t", "$hw/events/upload/dev1", "-m", string(event))
	expect(topics.NodeKubeEdgePrefix("edge-1")+"$hw/events/upload/dev1", event)
	run("-t", "$hw/events/device/default/dev1/twin/update", "-m", string(event))
	expect(topics.NodeKubeEdgePrefix("edge-1")+"$hw/events/device/default/dev1/twin/update", event)

	// Plain rule: arbitrary bytes (NULs, invalid UTF-8) unchanged.
	bin := make([]byte, 1000)
	if _, err := rand.Read(bin); err != nil {
		t.Fatal(err)
	}
	bin[0], bin[1] = 0, 0xff
	f := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(f, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	run("-t", "sensors/bin", "-f", f)
	expect(topics.NodeAppPrefix("edge-1")+"sensors/bin", bin)

	// Downlink: the cloud sends a twin delta to the node; mosquitto_sub on
	// the edge broker gets it under KubeEdge's own topic name. A retained
	// probe tells us mosquitto_sub has subscribed.
	delta := `{"event_id":"e1","timestamp":1700000000001,"twin":{"temperature":{"expected":{"value":"20"}}}}`
	deltaTopic := "$hw/events/device/default/dev1/twin/update/delta"
	local := client(t, "tcp://"+ag.BrokerAddr(), "probe", "", true)
	local.Publish("probe/ready", 1, true, []byte("ready")).Wait()
	cmd := exec.Command(sub, "-h", host, "-p", port, "-q", "1", "-v", "-C", "2", "-W", "30", "-t", "probe/ready", "-t", deltaTopic)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "probe/ready ready" {
		t.Fatalf("mosquitto_sub: %q", lines.Text())
	}
	app := client(t, cl.BrokerURL(), "app", "app", true)
	if tok := app.Publish(topics.ToNodeKubeEdgePrefix("edge-1")+deltaTopic, 1, false, []byte(delta)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if !lines.Scan() {
		t.Fatalf("mosquitto_sub got no delta: %v", lines.Err())
	}
	if want := deltaTopic + " " + delta; strings.TrimSpace(lines.Text()) != want {
		t.Fatalf("mosquitto_sub got %q, want %q", lines.Text(), want)
	}
}
