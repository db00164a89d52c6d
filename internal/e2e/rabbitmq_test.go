package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/internal/testcluster"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// The test cluster (three RabbitMQ nodes, three etcd members) is started
// once, by the first test that needs it, and stopped by TestMain.
var (
	clusterOnce   sync.Once
	sharedCluster *testcluster.Cluster
	clusterErr    error
	clusterDir    string
)

// rabbitUsers are the RabbitMQ users of the shared cluster, all with the
// test password and every right on the vhost: the cloud, the operator
// "app", and the nodes (edge-1, edge-7: the backbone's tests'; rep-0..2:
// the replicas').
var rabbitUsers = []string{"cloud", "app", "edge1", "edge2", "edge.3", "edge-1", "edge-7", "rep-0", "rep-1", "rep-2"}

// clusterMu gives the shared cluster to one test at a time: two cloud
// managers on one broker would each take what cloud apps publish for the
// nodes into their own outboxes, and send it (a node got a message twice,
// from two clouds of different epochs, in a run of these tests together).
var clusterMu sync.Mutex

// rabbitCluster returns the shared test cluster, starting it if needed,
// for the test alone until it ends.
func rabbitCluster(t testing.TB) *testcluster.Cluster {
	t.Helper()
	clusterMu.Lock()
	t.Cleanup(clusterMu.Unlock) // the first cleanup registered runs last: after the test's cloud is closed
	clusterOnce.Do(func() {
		start := time.Now()
		if clusterDir, clusterErr = os.MkdirTemp("", "sedna-cluster"); clusterErr != nil {
			return
		}
		if sharedCluster, clusterErr = testcluster.Start(clusterDir); clusterErr != nil {
			return
		}
		for _, u := range rabbitUsers {
			if clusterErr = sharedCluster.AddUser(u, password, ""); clusterErr != nil {
				return
			}
		}
		t.Logf("test cluster (3 RabbitMQ nodes, 3 etcd members) up in %v: MQTT %s, etcd %v",
			time.Since(start).Round(time.Millisecond), sharedCluster.URLs(), sharedCluster.Etcd)
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return sharedCluster
}

// stopCluster stops the shared cluster, if a test started it.
func stopCluster() {
	if sharedCluster != nil {
		if err := sharedCluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if clusterDir != "" {
		_ = os.RemoveAll(clusterDir)
	}
}

// startRabbitCloud starts a cloud manager on the RabbitMQ cluster, with
// its data in dir and its sessions named after id (persistent sessions
// outlive a test on the shared cluster: each test has its own).
func startRabbitCloud(t testing.TB, cl *testcluster.Cluster, dir, id string) *cloud.Manager {
	t.Helper()
	m, err := cloud.Start(cloud.Config{DataDir: dir, Metrics: "off",
		External: cloud.ExternalBroker{URL: cl.URLs(), Username: "cloud", Password: password, ClientIDPrefix: id,
			Roles: map[string]access.UserRole{"app": access.UserOperator}}},
		cloud.Options{Paradigms: all.All(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitOnline waits until the control plane has heard from each node since
// after: online, last seen then or later (a node it does not know yet is
// waited for too: its link may be up before its status arrived).
func waitOnline(t testing.TB, c *cloud.Client, after time.Time, nodes ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := 0
		for _, n := range nodes {
			if i, known, _ := lookupNode(t, c, n); known && i.State == topics.NodeOnline && i.LastSeen >= after.UnixNano() {
				ok++
			}
		}
		if ok == len(nodes) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				i, known, _ := lookupNode(t, c, n)
				t.Logf("%s: known %v, %+v", n, known, i)
			}
			t.Fatalf("nodes %v not all heard from online since %v", nodes, after)
		}
		<-time.After(50 * time.Millisecond) // polling the control plane's answer: no event to wait on
	}
}

// specOnNode subscribes to a job's spec on a node's broker; the channel
// gets each generation served there.
func specOnNode(t testing.TB, a *edge.Agent, id string, ref topics.JobRef) <-chan uint64 {
	t.Helper()
	got := make(chan uint64, 8)
	c := client(t, "tcp://"+a.BrokerAddr(), id, "", true)
	if tok := c.Subscribe(topics.JobSpec(ref), 1, func(_ paho.Client, m paho.Message) {
		env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{})
		var sp topics.Spec
		if err == nil && env.DecodeBody(&sp) == nil {
			got <- sp.Generation
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return got
}

// rabbitEdges starts an edge agent per node in dir, node i bridging to
// the broker URL list urls(i), waits for their links, and returns them
// with an API client once the control plane has heard from every one.
func rabbitEdges(t testing.TB, cl *testcluster.Cluster, dir string, urls func(i int) string, nodes ...string) ([]*edge.Agent, *cloud.Client) {
	t.Helper()
	var agents []*edge.Agent
	for i, n := range nodes {
		a := startEdge(t, n, filepath.Join(dir, n), urls(i))
		t.Cleanup(a.Close)
		agents = append(agents, a)
	}
	for _, a := range agents {
		waitLink(t, a)
	}
	c := apiClient(t, cl.URLs())
	waitOnline(t, c, time.Time{}, nodes...)
	return agents, c
}

// streamedOnce has n messages published on a's broker (sensors/t, run)
// reach a consumer of the cluster exactly once, in order.
func streamedOnce(t testing.TB, cl *testcluster.Cluster, dir string, a *edge.Agent, node string, run uint32, n uint64) {
	t.Helper()
	id := fmt.Sprintf("consumer-%s-%d", node, run)
	_, got := startConsumer(t, cl.URLs(), id, openStore(t, filepath.Join(dir, id)), run, topics.NodeAppPrefix(node)+"sensors/t")
	publishAll(t, client(t, "tcp://"+a.BrokerAddr(), "pub-"+id, "", true), "sensors/t", run, 0, n, 64)
	got.wait(t, int(n), 60*time.Second)
	got.check(t, n, true)
}

// datasetReaches applies Dataset name for node and returns how long its
// spec took to be served on a's broker.
func datasetReaches(t testing.TB, c *cloud.Client, a *edge.Agent, node, name string) time.Duration {
	t.Helper()
	spec := specOnNode(t, a, "spec-watch-"+name, topics.JobRef{Kind: api.KindDataset, Namespace: "default", Name: name})
	sent := time.Now()
	mustApply(t, c, fmt.Sprintf("apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: %s}\nspec: {url: /data/d.txt, format: txt, nodeName: %s}\n", name, node))
	select {
	case <-spec:
		return time.Since(sent)
	case <-time.After(30 * time.Second):
		t.Fatalf("Dataset %s did not reach node %s", name, node)
		return 0
	}
}

// mustApply applies doc and fails the test if it is not accepted.
func mustApply(t testing.TB, c *cloud.Client, doc string) {
	t.Helper()
	if rep := applyYAML(t, c, doc); rep.Error != "" {
		t.Fatalf("apply: %s", rep.Error)
	}
}

// Must-show 3 of the cloud tier, on the 3-node RabbitMQ cluster:
//   - a node named edge.3 (a '.' that RabbitMQ would read as a level
//     separator) streams 500 messages that a cloud consumer gets exactly
//     once, and gets a Dataset applied for it;
//   - a cloud manager restarted while its nodes stay online hears from
//     them again within seconds, and a Dataset applied then reaches its
//     node without the node reconnecting;
//   - a node whose RabbitMQ node is killed (-9) is connected to another
//     within 5 s, and what it sends meanwhile reaches the consumer once;
//     a clean-session bus and an API client that were on that RabbitMQ
//     node are delivered to and answered on another within 30 s.
func TestRabbitMQNamesRestartAndFailover(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	cl := rabbitCluster(t)
	dir := t.TempDir()
	m := startRabbitCloud(t, cl, filepath.Join(dir, "cloud"), "names-cloud")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			m.Close()
		}
	})
	// edge.3 starts on RabbitMQ node 1, edge1 on node 2.
	list := func(first int) string {
		return fmt.Sprintf("%s,%s,%s", cl.MQTT[first%3], cl.MQTT[(first+1)%3], cl.MQTT[(first+2)%3])
	}
	agents, c := rabbitEdges(t, cl, dir, list, "edge.3", "edge1")
	e3, e1 := agents[0], agents[1]

	// A dotted node's traffic, up and down.
	const n = 500
	streamedOnce(t, cl, dir, e3, "edge.3", 31, n)
	t.Logf("edge.3 has Dataset d.three after %v", datasetReaches(t, c, e3, "edge.3", "d.three").Round(time.Millisecond))

	// The cloud restarts; the nodes stay online.
	m.Close()
	stopped = true
	restarted := time.Now()
	m = startRabbitCloud(t, cl, filepath.Join(dir, "cloud"), "names-cloud")
	stopped = false
	took := waitOnline(t, c, restarted, "edge.3", "edge1")
	t.Logf("after the cloud's restart, both nodes heard from online in %v", took.Round(time.Millisecond))
	if up, _ := e1.Bridge().Connected(); !up {
		t.Fatal("edge1's link went down")
	}
	// Without the node reconnecting: the downlink learnt it is online.
	t.Logf("a Dataset applied after the restart reached edge1 in %v", datasetReaches(t, c, e1, "edge1", "d1").Round(time.Millisecond))

	// edge1's RabbitMQ node dies.
	_, got1 := startConsumer(t, cl.URLs(), "names-consumer-1", openStore(t, filepath.Join(dir, "consumer1")), 32, topics.NodeAppPrefix("edge1")+"sensors/t")
	pub1 := client(t, "tcp://"+e1.BrokerAddr(), "pub1", "", true)
	publishAll(t, pub1, "sensors/t", 32, 0, n, 64)
	up, changed := e1.Bridge().Connected()
	if !up {
		t.Fatal("edge1's link is down before the kill")
	}
	// Clean sessions on the same RabbitMQ node: a bus (as a replica's,
	// for statuses and acknowledgements) and an API client.
	cleanBus, err := cloudlink.DialBus(cloudlink.ClientConfig{URL: list(1), ClientID: "names-clean-bus", Username: "cloud",
		Password: password, CleanSession: true, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanBus.Close() })
	heard := make(chan struct{}, 1)
	if err := cleanBus.Subscribe("failover/clean", func(string, []byte) error {
		select {
		case heard <- struct{}{}:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	asker, err := cloud.Dial(cloudlink.ClientConfig{URL: list(1), Username: "app", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { asker.Close() })
	killed := time.Now()
	if err := cl.KillRabbit(2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.StartRabbit(2); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("edge1's link did not go down with its RabbitMQ node")
	}
	publishAll(t, pub1, "sensors/t", 32, n, n, 64) // while it fails over
	waitLink(t, e1)
	back := time.Since(killed)
	t.Logf("edge1 reconnected to another RabbitMQ node %v after its own was killed", back.Round(time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("edge1 reconnected after %v, want within 5 s", back)
	}
	got1.wait(t, 2*n, 90*time.Second)
	got1.check(t, 2*n, true)

	// The clean sessions, connected again to another node, are delivered
	// to and answered (their subscriptions at QoS 0: at QoS 1 each was a
	// durable queue on the dead node, and nothing came until it returned).
	pub := client(t, cl.MQTT[0], "names-clean-pub", "cloud", true)
	deadline := time.Now().Add(30 * time.Second)
	for delivered := false; !delivered; {
		if tok := pub.Publish("failover/clean", 1, false, "hello"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		select {
		case <-heard:
			delivered = true
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("a clean bus whose RabbitMQ node died got nothing on another node in 30 s")
			}
		}
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := asker.Do(ctx, topics.APIRequest{Op: "get", Kind: api.KindDataset})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an API client whose RabbitMQ node died is unanswered on another node: %v", err)
		}
	}
	t.Logf("clean sessions of the killed node delivered to and answered again %v after the kill", time.Since(killed).Round(time.Millisecond))
}

// rabbitPermissions gives user the permissions `sedna rabbitmq
// permissions` prints for role, on the shared cluster (the user is made
// first, with every right, then narrowed).
func rabbitPermissions(t testing.TB, cl *testcluster.Cluster, user string, role access.UserRole) {
	t.Helper()
	if err := cl.AddUser(user, password, ""); err != nil {
		t.Fatal(err)
	}
	cmds, err := access.RabbitMQ{}.Permissions(user, role)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if out, err := cl.Ctl(1, c...); err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
	}
}

// The permissions `sedna rabbitmq permissions` generates, on the real
// RabbitMQ cluster: two nodes (one with a dot in its name) bridge with
// them, stream up (300 messages, exactly once to a consumer) and get a
// Dataset down; a client logged in as one node can neither publish the
// other's status (the broker closes its connection; a watcher of that
// status gets nothing forged) nor subscribe to the other's downlink (the
// broker refuses the filter), and an operator cannot publish a node's
// status either.
func TestRabbitMQPermissionsIsolateNodes(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	cl := rabbitCluster(t)
	rabbitPermissions(t, cl, "iso1", access.UserNode)
	rabbitPermissions(t, cl, "iso.2", access.UserNode)
	rabbitPermissions(t, cl, "ops-iso", access.UserOperator)
	dir := t.TempDir()
	m := startRabbitCloud(t, cl, filepath.Join(dir, "cloud"), "iso-cloud")
	t.Cleanup(m.Close)
	agents, c := rabbitEdges(t, cl, dir, func(int) string { return cl.URLs() }, "iso1", "iso.2")
	a1, a2 := agents[0], agents[1]
	streamedOnce(t, cl, dir, a2, "iso.2", 41, 300)
	datasetReaches(t, c, a1, "iso1", "iso-d1")

	// A watcher with every right, of iso.2's status.
	forged := make(chan string, 4)
	w := client(t, cl.MQTT[0], "iso-watcher", "app", true)
	if tok := w.Subscribe(topics.NodeStatusTopic("iso.2"), 1, func(_ paho.Client, m paho.Message) {
		env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{})
		var st topics.NodeStatus
		if err == nil && env.DecodeBody(&st) == nil && st.Reason == "forged" {
			forged <- m.Topic()
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	env, err := topics.NewEnvelope(topics.KindNodeStatus, "hostile", topics.NodeStatus{Node: "iso.2", State: topics.NodeOffline, Reason: "forged"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := env.Marshal()
	for _, who := range []string{"iso1", "ops-iso"} {
		lost := make(chan struct{})
		o := paho.NewClientOptions().AddBroker(cl.MQTT[0]).SetClientID("hostile-" + who).SetUsername(who).SetPassword(password).
			SetAutoReconnect(false).SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
		h := paho.NewClient(o)
		if tok := h.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s connects: %v", who, tok.Error())
		}
		tok := h.Publish(topics.NodeStatusTopic("iso.2"), 1, false, raw)
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s published iso.2's status and kept its connection (acknowledged: %v, %v)", who, tok.WaitTimeout(0), tok.Error())
		}
		h.Disconnect(0)
	}
	// The bridge's own client ID, so that the queue it may use is this
	// one's (iso1's bridge is taken over meanwhile, and comes back).
	// RabbitMQ 3.10 refuses the filter by closing the connection (its log:
	// "queue.bind caused a channel exception access_refused"); a SUBACK
	// failure code would do too.
	lost := make(chan struct{})
	h := paho.NewClient(paho.NewClientOptions().AddBroker(cl.MQTT[1]).SetClientID(access.BridgeClientID("iso1")).
		SetUsername("iso1").SetPassword(password).SetAutoReconnect(false).
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) }))
	if tok := h.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	filter := topics.Downlink("iso.2")
	st := h.Subscribe(filter, 0, func(paho.Client, paho.Message) {})
	st.WaitTimeout(10 * time.Second)
	res, acked := st.(*paho.SubscribeToken).Result()[filter]
	switch {
	case acked && res == 0x80:
	case acked:
		t.Fatalf("iso1 subscribed to iso.2's downlink: SUBACK %#x", res)
	default:
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("iso1 subscribing to iso.2's downlink: no SUBACK, and the connection stays (%v)", st.Error())
		}
	}
	h.Disconnect(0)
	waitLink(t, a1)
	// The watcher's session saw the forgeries' fate: a message the
	// watcher gets after them (iso.2's own status, asked for again by a
	// restarted cloud) shows they are not on their way.
	m.Close()
	m = startRabbitCloud(t, cl, filepath.Join(dir, "cloud"), "iso-cloud")
	t.Cleanup(m.Close)
	waitOnline(t, c, time.Now(), "iso.2")
	select {
	case topic := <-forged:
		t.Fatalf("a forged status reached a watcher on %s", topic)
	default:
	}
}
