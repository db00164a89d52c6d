package e2e

import (
	"context"
	"fmt"

	paho "github.com/eclipse/paho.mqtt.golang"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/topics"
)

// lifecycleDocs is one resource of every kind, every worker on edge1 and
// an external process, so that "runs on the node" is a process there.
const lifecycleDocs = `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: lc-data}
spec: {url: /data/lc.txt, format: txt, nodeName: edge1}
---
apiVersion: sedna.io/v1alpha1
kind: Model
metadata: {name: lc-model}
spec: {url: /models/lc.bin, format: pb}
---
apiVersion: sedna.io/v1alpha1
kind: JointInferenceService
metadata: {name: lc-ji}
spec:
  edgeWorker:
    model: {name: lc-model}
    hardExampleMining: {name: IBT}
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
  cloudWorker:
    model: {name: lc-model}
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
---
apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: lc-il}
spec:
  dataset: {name: lc-data, trainProb: 0.8}
  initialModel: {name: lc-model}
  trainSpec:
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
    trigger: {checkPeriodSeconds: 60, condition: {operator: gt, threshold: 500, metric: num_of_samples}}
  evalSpec:
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
  deploySpec:
    model: {name: lc-model}
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
  outputDir: /output
---
apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: lc-fl}
spec:
  aggregationWorker:
    model: {name: lc-model}
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
  trainingWorkers:
    - dataset: {name: lc-data}
      template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
---
apiVersion: sedna.io/v1alpha1
kind: LifelongLearningJob
metadata: {name: lc-ll}
spec:
  dataset: {name: lc-data, trainProb: 0.8}
  trainSpec:
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
    trigger: {checkPeriodSeconds: 60, condition: {operator: gt, threshold: 500, metric: num_of_samples}}
  evalSpec:
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
  deploySpec:
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
  outputDir: /output
`

// TestDeleteThenApplyAgainReachesTheNode: a resource deleted and applied
// again under the same name reaches its node and runs there, for every
// kind: with the node online, with the node offline from before the delete
// until after the new apply, and with the cloud manager restarted between
// the delete and the apply. (A tombstone's generation once outranked the
// new object's, and the node ignored it forever.)
func TestDeleteThenApplyAgainReachesTheNode(t *testing.T) {
	rs, err := api.Parse([]byte(lifecycleDocs), "lifecycle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"online", "node offline", "cloud restart"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			m := startCloud(t, filepath.Join(dir, "cloud"), "")
			listen := m.Broker().Addr("tcp")
			defer func() { m.Close() }()
			a := startEdge(t, "edge1", filepath.Join(dir, "edge1"), m.BrokerURL())
			defer func() { a.Close() }()
			waitLink(t, a)
			waitJoined(t, m.BrokerURL(), "edge1")
			c := adminClient(t, m.BrokerURL())
			apply(t, c, rs, "created")
			waitRunning(t, a, rs, 0)
			first := int64(0) // the first incarnation's creation
			for _, st := range a.Workers() {
				first = max(first, st.Created)
			}

			if mode == "node offline" {
				a.Close()
			}
			for i := len(rs) - 1; i >= 0; i-- {
				del(t, c, rs[i])
			}
			if mode == "online" {
				waitStopped(t, a, rs)
			}
			if mode == "cloud restart" {
				c.Close()
				m.Close()
				m = startCloud(t, filepath.Join(dir, "cloud"), listen)
				c = adminClient(t, m.BrokerURL())
			}
			apply(t, c, rs, "created")
			if mode == "node offline" {
				// What the cloud holds for the node while it is away.
				n := nodeInfo(t, c, "edge1")
				if n.State != topics.NodeOffline || n.Backlog == 0 || n.Oldest == 0 || n.LastSeen == 0 {
					t.Fatalf("edge1 away: %+v", n)
				}
				a = startEdge(t, "edge1", filepath.Join(dir, "edge1"), m.BrokerURL())
			}
			// The new incarnation's workers (a node back from offline
			// first restarts the old ones it kept, until the tombstone).
			waitRunning(t, a, rs, first)
			for _, r := range rs {
				if len(r.Nodes()) == 0 {
					continue
				}
				rev, deleted, ok := a.SpecRevision(r.Key())
				if gen := rev.Generation; !ok || deleted || gen != 1 {
					t.Errorf("%s on the node: generation %d, deleted %v, seen %v; want generation 1 of the new object", r.Key(), gen, deleted, ok)
				}
			}
		})
	}
}

func apply(t testing.TB, c *cloud.Client, rs []*api.Resource, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := c.Apply(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Action != want {
			t.Fatalf("%s: %s (%s), want %s", r.Key, r.Action, r.Message, want)
		}
	}
}

func del(t testing.TB, c *cloud.Client, r *api.Resource) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Do(ctx, topics.APIRequest{Op: "delete", Kind: r.Kind, Name: r.Metadata.Name, Namespace: r.Metadata.Namespace}); err != nil {
		t.Fatalf("delete %s: %v", r.Key(), err)
	}
}

// workerIDs lists the workers rs place on a node, by supervisor ID.
func workerIDs(rs []*api.Resource) []string {
	var ids []string
	for _, r := range rs {
		for _, w := range r.Workers() {
			ids = append(ids, fmt.Sprintf("%s/%s/%s/%s", r.Kind, r.Metadata.Namespace, r.Metadata.Name, w.Role))
		}
	}
	return ids
}

// waitRunning waits until every worker of rs runs on the agent's node, of
// an incarnation created after createdAfter (unix nanoseconds).
func waitRunning(t testing.TB, a *edge.Agent, rs []*api.Resource, createdAfter int64) {
	t.Helper()
	waitWorkers(t, a, rs, func(st api.WorkerStatus, ok bool) bool {
		return ok && st.Phase == api.WorkerRunning && st.Created > createdAfter
	}, "running")
}

// waitStopped waits until no worker of rs runs on the agent's node.
func waitStopped(t testing.TB, a *edge.Agent, rs []*api.Resource) {
	t.Helper()
	waitWorkers(t, a, rs, func(_ api.WorkerStatus, ok bool) bool { return !ok }, "stopped")
}

func waitWorkers(t testing.TB, a *edge.Agent, rs []*api.Resource, good func(api.WorkerStatus, bool) bool, what string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		all := a.Workers()
		var bad []string
		for _, id := range workerIDs(rs) {
			st, ok := all[id]
			if !good(st, ok) {
				bad = append(bad, fmt.Sprintf("%s (%v %s)", id, ok, st.Phase))
			}
		}
		if len(bad) == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("workers not %s on the node: %s", what, strings.Join(bad, ", "))
		}
	}
}

// nodeInfo asks the control plane what it knows of node, which it must
// know.
func nodeInfo(t testing.TB, c *cloud.Client, node string) topics.NodeInfo {
	t.Helper()
	i, ok, all := lookupNode(t, c, node)
	if !ok {
		t.Fatalf("no node %s in %+v", node, all)
	}
	return i
}

// lookupNode asks the control plane what it knows of node: ok is false if
// it knows nothing of it yet (all is what it knows).
func lookupNode(t testing.TB, c *cloud.Client, node string) (info topics.NodeInfo, ok bool, all []topics.NodeInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := c.Do(ctx, topics.APIRequest{Op: "nodes"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Nodes {
		if n.Name == node {
			return n, true, rep.Nodes
		}
	}
	return topics.NodeInfo{}, false, rep.Nodes
}

// TestExternalWorkerReachesItsBroker: an external worker on an edge node
// connects to the node's broker with the SEDNA_BROKER_URL it is given and
// publishes there (it was "tcp://": read before the broker listened).
func TestExternalWorkerReachesItsBroker(t *testing.T) {
	dir := t.TempDir()
	m := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer m.Close()
	a := startEdge(t, "edge1", filepath.Join(dir, "edge1"), m.BrokerURL())
	defer a.Close()
	waitLink(t, a)
	waitJoined(t, m.BrokerURL(), "edge1")
	got := make(chan string, 4)
	sub := client(t, "tcp://"+a.BrokerAddr(), "url-watcher", "", true)
	if tok := sub.Subscribe("sensors/from-worker", 1, func(_ paho.Client, msg paho.Message) { got <- string(msg.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// The worker parses the URL as a user's program would, and reports it.
	script := `u=${SEDNA_BROKER_URL#tcp://}; exec mosquitto_pub -h "${u%:*}" -p "${u##*:}" -q 1 -t sensors/from-worker -m "$SEDNA_BROKER_URL"`
	rs, err := api.Parse([]byte(`apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: url-check}
spec:
  aggregationWorker:
    template: {spec: {nodeName: edge1, containers: [{image: x, command: [sh, -c, '`+script+`']}]}}
  trainingWorkers:
    - dataset: {name: url-data}
      template: {spec: {nodeName: edge1, containers: [{image: x, command: [sleep, "3600"]}]}}
---
apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: url-data}
spec: {url: /data/none.txt, format: txt, nodeName: edge1}
`), "url.yaml")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, adminClient(t, m.BrokerURL()), rs, "created")
	select {
	case url := <-got:
		if url != "tcp://"+a.BrokerAddr() {
			t.Fatalf("the worker was given %q; the node's broker is at %s", url, a.BrokerAddr())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the worker never published on its node's broker")
	}
}
