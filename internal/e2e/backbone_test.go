package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sedna-go/sedna/cloud"
)

// cloudTier is the cloud side the backbone's end-to-end tests run
// against: the embedded broker of a cloud manager, or the RabbitMQ test
// cluster with the cloud manager as its client. The same tests (the
// backbone's must-shows: uplink exactly once, an edge killed with its link
// down or while publishing, the cloud killed mid-stream, the downlink to
// an offline node, poison messages dead-lettered, KubeEdge's topics of
// every release across the bridge) run on both: on the embedded broker each as its own
// test, on RabbitMQ as TestBackboneOnRabbitMQ's subtests (must-show 4 of
// the cloud tier).
type cloudTier struct {
	name string
	// cloud starts a cloud manager with its data in dir and returns it
	// with the broker URL (or URL list) nodes, apps and consumers use.
	cloud func(t testing.TB, dir string) (*cloud.Manager, string)
	// proc returns the arguments of a `sedna cloud` process with its data
	// in dir, and the broker URL (list); the process may be killed and
	// started again with the same arguments.
	proc func(t testing.TB, dir string) ([]string, string)
	// id names a persistent session: on a shared broker, each test's
	// sessions must be its own.
	id func(base string) string
	// ingress is the component of the cloud manager that checks frames
	// and dead-letters what it refuses: the embedded broker's ingress, or
	// the relay that consumes an external broker's frames.
	ingress string
	// explain, if set, logs what the tier's broker holds (queues, their
	// backlog and consumers) when the test failed, to tell a message the
	// relay never published from one a subscriber never took.
	explain func(t testing.TB)
}

// explainOnFailure registers tier.explain to run if the test fails.
func (tier cloudTier) explainOnFailure(t testing.TB) {
	if tier.explain == nil {
		return
	}
	t.Cleanup(func() {
		if t.Failed() {
			tier.explain(t)
		}
	})
}

// embeddedTier is a cloud manager with its embedded broker, one per test.
func embeddedTier() cloudTier {
	return cloudTier{
		name: "embedded",
		cloud: func(t testing.TB, dir string) (*cloud.Manager, string) {
			m := startCloud(t, dir, "")
			return m, m.BrokerURL()
		},
		proc: func(t testing.TB, dir string) ([]string, string) {
			addr := freeAddr(t)
			return []string{"cloud", "--listen", addr, "--data", dir, "--credentials", writeCredentials(t, t.TempDir()),
				"--metrics", "off", "--log-level", "warn"}, "tcp://" + addr
		},
		id:      func(base string) string { return base },
		ingress: "cloud/ingress",
	}
}

// sessions numbers the persistent sessions tests open on the shared
// cluster, which outlive a test there.
var sessions atomic.Uint64

// rabbitTier is the shared RabbitMQ test cluster (for the test alone until
// it ends) with a cloud manager as its client.
func rabbitTier(t testing.TB) cloudTier {
	cl := rabbitCluster(t)
	id := func(base string) string { return fmt.Sprintf("%s-%d", base, sessions.Add(1)) }
	return cloudTier{
		name: "rabbitmq",
		cloud: func(t testing.TB, dir string) (*cloud.Manager, string) {
			return startRabbitCloud(t, cl, dir, id("cloud")), cl.URLs()
		},
		proc: func(t testing.TB, dir string) ([]string, string) {
			conf := filepath.Join(t.TempDir(), "cloud.yaml")
			yaml := fmt.Sprintf("external:\n  url: %q\n  username: cloud\n  password: %q\n  clientIDPrefix: %q\n  roles:\n    app: operator\n",
				cl.URLs(), password, id("cloud"))
			if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"cloud", "--config", conf, "--data", dir, "--metrics", "off", "--log-level", "warn"}, cl.URLs()
		},
		id:      id,
		ingress: "cloud/relay",
		explain: func(t testing.TB) {
			for n := 1; n <= len(cl.MQTT); n++ { // numbered from 1, as the script's
				out, err := cl.Ctl(n, "list_queues", "name", "type", "messages_ready", "messages_unacknowledged", "consumers", "leader")
				t.Logf("RabbitMQ node %d's queues (err %v):\n%s", n, err, out)
				if err == nil {
					break
				}
			}
			out, err := cl.Ctl(1, "list_connections", "name", "client_properties", "state", "node")
			t.Logf("RabbitMQ's connections (err %v):\n%s", err, out)
		},
	}
}

// Must-show 4 of the cloud tier: the backbone's end-to-end tests, which
// run on the embedded broker as TestUplinkExactlyOnceInOrder,
// TestEdgeKilledWithLinkDownLosesNothing,
// TestEdgeKilledWhilePublishingKeepsEveryAckedMessage,
// TestCloudKilledMidStream, TestDownlinkToOfflineNode,
// TestPoisonMessagesAreDeadLettered and
// TestKubeEdgeTopicsOfEveryReleaseCrossTheBridge, pass the same way on the
// 3-node RabbitMQ cluster with quorum queues.
func TestBackboneOnRabbitMQ(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	for _, bt := range []struct {
		name string
		run  func(t *testing.T, tier cloudTier)
	}{
		{"UplinkExactlyOnceInOrder", uplinkExactlyOnceInOrder},
		{"EdgeKilledWithLinkDownLosesNothing", func(t *testing.T, tier cloudTier) {
			dir := t.TempDir()
			m, url := tier.cloud(t, filepath.Join(dir, "cloud"))
			defer m.Close()
			edgeKilledWithLinkDown(t, dir, url, brokerURLs(t, url)[0], tier.id("consumer-2"), 2)
		}},
		{"EdgeKilledWhilePublishingKeepsEveryAckedMessage", edgeKilledWhilePublishing},
		{"CloudKilledMidStream", cloudKilledMidStream},
		{"DownlinkToOfflineNode", downlinkToOfflineNode},
		{"PoisonMessagesAreDeadLettered", poisonMessagesAreDeadLettered},
		{"KubeEdgeTopicsOfEveryReleaseCrossTheBridge", kubeEdgeTopicsCrossTheBridge},
	} {
		t.Run(bt.name, func(t *testing.T) { bt.run(t, rabbitTier(t)) })
	}
}
