package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/edge"
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
	cl, agents := startLinked(t, t.TempDir(), "edge-1")
	ag := agents[0]
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
	f := filepath.Join(t.TempDir(), "payload.bin")
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
	lines := subscribedSub(t, ag, sub, host, port, "-C", "2", "-W", "30", "-t", deltaTopic)
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

// Issue 15: KubeEdge apps and mappers of every release from v1.12 to the
// latest work unchanged, whichever form of device topic they use. Device
// IDs were the device's name up to v1.15 (and are for v1alpha2 devices and
// legacy mappers since): "$hw/events/device/{name}/twin/update"; since
// v1.16 they are "{namespace}/{name}" (kubeedge#5329), one more level.
// mosquitto_pub publishes every uplink topic in both forms on the edge
// broker and each arrives in the cloud byte for byte; a cloud app sends
// every downlink topic in both forms and mosquitto_sub on the edge broker
// gets each under KubeEdge's own name. Before issue 15 the device-ID-only
// form was dropped on the node without a trace. (The same on RabbitMQ:
// TestBackboneOnRabbitMQ.)
func TestKubeEdgeTopicsOfEveryReleaseCrossTheBridge(t *testing.T) {
	kubeEdgeTopicsCrossTheBridge(t, embeddedTier())
}

func kubeEdgeTopicsCrossTheBridge(t *testing.T, tier cloudTier) {
	pub, sub := mosquittoClient(t, "mosquitto_pub"), mosquittoClient(t, "mosquitto_sub")
	dir := t.TempDir()
	cl, url := tier.cloud(t, filepath.Join(dir, "cloud"))
	t.Cleanup(cl.Close)
	ag := startEdge(t, "edge-1", filepath.Join(dir, "edge-1"), url)
	t.Cleanup(ag.Close)
	waitLink(t, ag)
	host, port, _ := splitHostPort(ag.BrokerAddr())

	got := make(chan paho.Message, 10)
	watcher := client(t, url, "watcher", "app", true)
	if tok := watcher.Subscribe(topics.NodeKubeEdgePrefix("edge-1")+"#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// Uplink, as device apps and mappers publish them.
	up := []string{
		"$hw/events/device/dev1/twin/update",         // v1.12-v1.15, legacy mappers (TopicTwinUpdate)
		"$hw/events/device/default/dev1/twin/update", // v1.16+
		"$hw/events/device/dev1/twin/get",
		"$hw/events/device/default/dev1/twin/get",
		"$hw/events/device/dev1/state/update", // legacy mappers (TopicStateUpdate)
		"$hw/events/device/default/dev1/state/update",
		"$hw/events/node/edge-1/membership/get",
		"$hw/events/upload/dev1",
		"$ke/events/device/dev1/data/update",
		"SYS/dis/upload_records",
		"app/user/temp",
	}
	for i, topic := range up {
		msg := fmt.Sprintf(`{"event_id":"up-%d","timestamp":1700000000000,"state":"online"}`, i)
		if out, err := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", msg).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %s: %v: %s", topic, err, out)
		}
		select {
		case m := <-got:
			if want := topics.NodeKubeEdgePrefix("edge-1") + topic; m.Topic() != want || string(m.Payload()) != msg {
				t.Fatalf("cloud got %q %q, want %q %q", m.Topic(), m.Payload(), want, msg)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not reach the cloud", topic)
		}
	}

	// Downlink, as edgecore publishes them for device apps. A retained
	// probe tells us mosquitto_sub has subscribed.
	down := []string{
		"$hw/events/device/dev1/twin/update/delta",         // v1.12-v1.15, legacy mappers (TopicTwinUpdateDelta)
		"$hw/events/device/default/dev1/twin/update/delta", // v1.16+
		"$hw/events/device/dev1/twin/update/document",
		"$hw/events/device/default/dev1/twin/update/document",
		"$hw/events/device/dev1/twin/update/result",
		"$hw/events/device/default/dev1/twin/update/result",
		"$hw/events/device/dev1/twin/get/result",
		"$hw/events/device/default/dev1/twin/get/result",
		"$hw/events/device/dev1/updated",
		"$hw/events/device/default/dev1/updated",
		"$hw/events/device/dev1/state/update/result",
		"$hw/events/device/default/dev1/state/update/result",
		"$hw/events/node/edge-1/membership/updated", // legacy mappers
		"$hw/events/node/edge-1/membership/get/result",
		"$hw/events/node/edge-1/authInfo/get/result",
		"$ke/events/device/dev1/data/update",
		"app/user/cmd",
	}
	lines := subscribedSub(t, ag, sub, host, port, "-C", strconv.Itoa(len(down)+1), "-W", "60", "-t", "$hw/#", "-t", "$ke/#", "-t", "+/user/#")
	app := client(t, url, "app", "app", true)
	for i, topic := range down {
		msg := fmt.Sprintf(`{"event_id":"down-%d","timestamp":1700000000001}`, i)
		if tok := app.Publish(topics.ToNodeKubeEdgePrefix("edge-1")+topic, 1, false, []byte(msg)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
		if !lines.Scan() {
			t.Fatalf("mosquitto_sub got no %s: %v", topic, lines.Err())
		}
		if want := topic + " " + msg; strings.TrimSpace(lines.Text()) != want {
			t.Fatalf("mosquitto_sub got %q, want %q", lines.Text(), want)
		}
	}
}

// subscribedSub starts mosquitto_sub (sub) on the node's broker with args
// and returns its lines once its subscriptions are in place: it also
// subscribes to a retained probe, whose line comes first. It stops with
// the test.
func subscribedSub(t testing.TB, ag *edge.Agent, sub, host, port string, args ...string) *bufio.Scanner {
	t.Helper()
	local := client(t, "tcp://"+ag.BrokerAddr(), "probe", "", true)
	local.Publish("probe/ready", 1, true, []byte("ready")).Wait()
	cmd := exec.Command(sub, append([]string{"-h", host, "-p", port, "-q", "1", "-v", "-t", "probe/ready"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "probe/ready ready" {
		t.Fatalf("mosquitto_sub: %q", lines.Text())
	}
	return lines
}
