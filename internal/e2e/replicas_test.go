package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/federated/digits"
	"github.com/sedna-go/sedna/internal/testcluster"
	"github.com/sedna-go/sedna/simulator/hollow"
	"github.com/sedna-go/sedna/topics"
)

// replicaPair starts mosquitto and one etcd member, then two `sedna
// cloud` replicas on them with their state in etcd below prefix and a
// lease of 2 s (a standby takes over about 2 s after the leader dies):
// a, which leads, and b, which stands by. It returns the broker's URL
// and etcd's endpoint too.
func replicaPair(t testing.TB, dir, prefix string) (url, endpoint string, a, b *proc) {
	t.Helper()
	url = startMosquitto(t, dir)
	e, err := testcluster.StartEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	args := func(name string) []string {
		conf := filepath.Join(t.TempDir(), "cloud.yaml")
		yaml := fmt.Sprintf("external:\n  url: %q\n  clientIDPrefix: %q\n"+
			"etcd:\n  endpoints: [%q]\n  leaseTTL: 2s\n  replica: %q\n  prefix: %q\n", url, prefix, e.Endpoint, name, prefix+"/")
		if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"cloud", "--config", conf, "--data", filepath.Join(t.TempDir(), name), "--metrics", "off", "--log-level", "info"}
	}
	a = startProc(t, args("a")...)
	b = launchProc(t, args("b")...)
	return url, e.Endpoint, a, b
}

// Two replicas of the cloud manager on mosquitto with their state in etcd:
// the leader is SIGKILLed while an edge streams 3,000 messages up and a
// cloud app sends 500 down to another node; the standby takes over and
// the consumer gets each of the 3,000 once and the node's app each of
// the 500 (at least once: a message the leader took into the outbox but
// whose acknowledgement to the broker the kill cut is taken again by the
// standby, as by a restarted manager; docs/TOPICS.md).
func TestCloudReplicasTakeOver(t *testing.T) {
	const n, down = 3000, 500
	dir := t.TempDir()
	url, _, a, b := replicaPair(t, dir, "replicas")

	topic := topics.NodeAppPrefix("edge-1") + "sensors/t"
	_, cnt := startConsumer(t, url, "consumer-r", openStore(t, filepath.Join(dir, "consumer")), 21, topic)
	up := startEdge(t, "edge-1", filepath.Join(dir, "edge-1"), url)
	defer up.Close()
	downEdge := startEdge(t, "edge-2", filepath.Join(dir, "edge-2"), url)
	defer downEdge.Close()
	waitLink(t, downEdge)

	var mu sync.Mutex
	seen := map[string]int{}
	got := make(chan struct{}, 1)
	lc := client(t, "tcp://"+downEdge.BrokerAddr(), "local-app", "", false)
	lc.Subscribe("cmd/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		seen[string(m.Payload())]++
		mu.Unlock()
		select {
		case got <- struct{}{}:
		default:
		}
	}).Wait()

	pub := client(t, "tcp://"+up.BrokerAddr(), "pub", "", true)
	app := client(t, url, "cloud-app", "", true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		publishAll(t, pub, "sensors/t", 21, 0, n, 64)
	}()
	go func() {
		defer wg.Done()
		for i := range down {
			tok := app.Publish(topics.ToNodeAppPrefix("edge-2")+"cmd/x", 1, false, fmt.Sprint(i))
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Errorf("cloud publish %d: %v", i, tok.Error())
				return
			}
		}
	}()
	cnt.wait(t, n/3, 60*time.Second)
	killed := time.Now()
	a.kill()
	b.awaitReady(t, 30*time.Second)
	t.Logf("the standby led %v after the leader's SIGKILL", time.Since(killed).Round(time.Millisecond))
	wg.Wait()
	cnt.wait(t, n, 120*time.Second)
	cnt.check(t, n, false)

	deadline := time.After(60 * time.Second)
	for {
		mu.Lock()
		have := len(seen)
		mu.Unlock()
		if have == down {
			break
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("edge-2's app got %d of %d downlink messages", have, down)
		}
	}
	mu.Lock()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	mu.Unlock()
	t.Logf("edge-2's app got all %d downlink messages, %d of them twice across the kill", down, dups)
}

// A leader whose etcd lease is gone (revoked here, as etcd does when the
// leader stops renewing it: a cut link, a long pause) stops at once,
// saying why, instead of acting beside its successor; the standby leads.
func TestCloudReplicaThatLosesItsLeaseStops(t *testing.T) {
	_, endpoint, a, b := replicaPair(t, t.TempDir(), "lease")
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Wait for b to campaign: its key beside a's.
	watch := c.Watch(ctx, "lease/leader/", clientv3.WithPrefix())
	var resp *clientv3.GetResponse
	for {
		if resp, err = c.Get(ctx, "lease/leader/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)); err != nil || len(resp.Kvs) >= 2 {
			break
		}
		select {
		case <-watch:
		case <-ctx.Done():
			t.Fatalf("the standby never campaigned:\n%s", b.output())
		}
	}
	if err != nil || len(resp.Kvs) != 2 || string(resp.Kvs[0].Value) != "a" {
		t.Fatalf("the election's keys: %v %v; want a's first, then b's", resp, err)
	}
	if _, err := c.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		t.Fatalf("the replica whose lease was revoked still runs:\n%s", a.output())
	}
	if code := a.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(a.output(), "lost its leadership") {
		t.Fatalf("the replica that lost its lease exited with %d:\n%s", code, a.output())
	}
	b.awaitReady(t, 30*time.Second)
}

// progress asks the control plane (through whichever replica leads) how
// far a job is. A question left unanswered (lost to a broker node's kill)
// is asked again on a new connection.
type progress struct {
	url string
	c   *cloud.Client
}

// ask returns the rounds done of job and its phase, or -1 if the question
// went unanswered.
func (p *progress) ask(t testing.TB, ref topics.JobRef) (int, string) {
	t.Helper()
	if p.c == nil {
		c, err := cloud.Dial(cloudlink.ClientConfig{URL: p.url, Username: "app", Password: password})
		if err != nil {
			t.Logf("dialling the cloud: %v (asked again)", err)
			return -1, ""
		}
		p.c = c
		t.Cleanup(func() { c.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rep, err := p.c.Do(ctx, topics.APIRequest{Op: "get", Kind: ref.Kind})
	if err != nil {
		t.Logf("asking for %s: %v (asked again on a new connection)", ref, err)
		p.c.Close()
		p.c = nil
		return -1, ""
	}
	for _, o := range rep.Objects {
		if o.Key == ref.String() {
			var st api.Status
			if err := json.Unmarshal(o.Status, &st); err != nil {
				t.Fatal(err)
			}
			done := 0
			if st.Progress != nil {
				done = st.Progress.Done
			}
			return done, st.Phase
		}
	}
	return -1, ""
}

// wait waits until job has done at least rounds rounds (or ended).
func (p *progress) wait(t testing.TB, ref topics.JobRef, rounds int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, phase := p.ask(t, ref)
		if done >= rounds || phase == api.ConditionCompleted || phase == api.ConditionFailed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d rounds done (%s) after %v, waiting for %d", ref, done, phase, within, rounds)
		}
		<-time.After(200 * time.Millisecond) // polling the control plane's answer: no event to wait on
	}
}

// ended waits until job has ended (Completed or Failed), and returns its
// rounds done and phase.
func (p *progress) ended(t testing.TB, ref topics.JobRef, within time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, phase := p.ask(t, ref)
		if phase == api.ConditionCompleted || phase == api.ConditionFailed {
			return done, phase
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d rounds done (%s) after %v, waiting for its end", ref, done, phase, within)
		}
		<-time.After(200 * time.Millisecond) // polling the control plane's answer: no event to wait on
	}
}

// Must-show 1 of the cloud tier: on the 3-node RabbitMQ cluster (quorum
// queues) with its 3 etcd members, two replicas of the cloud manager
// (`sedna cloud --etcd`, processes: a leader and a standby) that share the
// nodes (8 partitions of frames and outboxes, 4 each), three edge agents
// training a federated job and streaming, and 20 hollow nodes streaming.
// While the job runs, kill -9 in turn a RabbitMQ node, an etcd member and
// the leading replica: every message acknowledged at an edge or a hollow
// node reaches a cloud consumer exactly once, the standby leads and owns
// every partition, and the federated job, started before the kills,
// completes every round and registers its model.
func TestCloudReplicasOnTheCluster(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	const rounds, perPhase, hollowEach, partitions = 100, 300, 5, 8
	cl := rabbitCluster(t)
	dir := t.TempDir()
	id := fmt.Sprintf("replicas-%d", sessions.Add(1))
	data := filepath.Join(dir, "data")
	etcd := partitioned(t, cl, id, partitions)
	args := func(name string) []string {
		conf := filepath.Join(dir, name+".yaml")
		yaml := fmt.Sprintf("external:\n  url: %q\n  amqp: %q\n  username: cloud\n  password: %q\n  clientIDPrefix: %q\n  roles:\n    app: operator\n"+
			"etcd:\n  endpoints: [%s]\n  leaseTTL: 2s\n  replica: %q\n  prefix: %q\n  partitions: %d\n",
			cl.URLs(), strings.Join(cl.AMQP, ","), password, id, strings.Join(cl.Etcd, ", "), name, id+"/", partitions)
		if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"cloud", "--config", conf, "--data", filepath.Join(dir, name), "--read-dir", data,
			"--metrics", "off", "--log-level", "info"}
	}
	leader := startProc(t, args("a")...)
	standby := launchProc(t, args("b")...)
	awaitShares(t, etcd, id+"/", map[string]int{"a": partitions / 2, "b": partitions / 2}, time.Minute)

	nodes := []string{"rep-0", "rep-1", "rep-2"}
	agents, c := rabbitEdges(t, cl, dir, func(int) string { return cl.URLs() }, nodes...)
	_, cnt := startConsumer(t, cl.URLs(), id+"-consumer", openStore(t, filepath.Join(dir, "consumer")), 61, topics.NodeAppPrefix("rep-0")+"sensors/t")
	pub := client(t, "tcp://"+agents[0].BrokerAddr(), "pub-"+id, "", true)

	hollowNames := hollowUsers(t, cl, "rh", 20)
	_, hcnt := startConsumerOf(t, cl.URLs(), id+"-hollow-consumer", openStore(t, filepath.Join(dir, "hollow-consumer")), 62,
		func(topic string) bool { return topics.Match(topics.Root+"/node/+/app/hollow", topic) })
	fleet, err := hollow.Start(hollow.Config{URL: cl.URLs(), Nodes: hollowNames, Password: func(string) string { return password }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if err := fleet.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	phase := 0
	stream := func() {
		t.Helper()
		publishAll(t, pub, "sensors/t", 61, uint64(phase*perPhase), perPhase, 16)
		for i, n := range fleet.Nodes() {
			for j := range hollowEach {
				n.Send(topics.NodeAppPrefix(n.Name())+"hollow", payload(62, uint64((phase*len(hollowNames)+i)*hollowEach+j)))
			}
		}
		phase++
	}

	o := digits.Options{Job: "replicas-fl", Nodes: nodes, Dir: data, Rounds: rounds, MinClients: 3, RoundTimeout: "1m"}
	if _, err := digits.Write(o); err != nil {
		t.Fatal(err)
	}
	mustApply(t, c, digits.YAML(o))
	job := flJob(o.Job)
	prog := &progress{url: cl.URLs()}
	stream()
	prog.wait(t, job, 10, 2*time.Minute)

	// Each kill comes ten rounds after the one before (the killed broker
	// node and etcd member start again once the job is over: two of three
	// keep a quorum meanwhile).
	at := 0
	kill := func(what string, fn func() error) {
		t.Helper()
		done, ph := prog.ask(t, job)
		for deadline := time.Now().Add(time.Minute); done < 0; done, ph = prog.ask(t, job) {
			if time.Now().After(deadline) {
				t.Fatalf("no answer about %s for a minute before the kill of %s", job, what)
			}
		}
		if ph == api.ConditionCompleted {
			t.Fatalf("the federated job completed (%d rounds) before the kill of %s: give it more rounds", done, what)
		}
		if err := fn(); err != nil {
			t.Fatalf("kill -9 %s: %v", what, err)
		}
		at = done
		t.Logf("kill -9 %s at round %d", what, done)
	}
	kill("RabbitMQ node 1", func() error { return cl.KillRabbit(1) })
	stream()
	prog.wait(t, job, at+10, 2*time.Minute)
	// The broker node starts again meanwhile, as an operator would have
	// it (it takes RabbitMQ about ten seconds); the test waits for it at
	// the end, so that the tests after it have the whole cluster.
	rabbitBack := make(chan error, 1)
	go func() { rabbitBack <- cl.StartRabbit(1) }()
	t.Cleanup(func() { <-rabbitBack })

	kill("etcd member 1", func() error { return cl.KillEtcd(1) })
	etcdBack := false
	t.Cleanup(func() {
		if !etcdBack {
			_ = cl.StartEtcd(1)
		}
	})
	stream()
	prog.wait(t, job, at+10, 2*time.Minute)

	killed := time.Now()
	kill("the leading replica", func() error { leader.kill(); return nil })
	standby.awaitReady(t, time.Minute)
	t.Logf("the standby served %v after the leader's SIGKILL", time.Since(killed).Round(time.Millisecond))
	awaitShares(t, etcd, id+"/", map[string]int{"b": partitions}, time.Minute)
	t.Logf("and owned every partition %v after it", time.Since(killed).Round(time.Millisecond))
	stream()

	// The last round is counted before the job's phase says Completed:
	// waited for until it ends.
	if done, ph := prog.ended(t, job, 4*time.Minute); ph != api.ConditionCompleted || done != rounds {
		t.Fatalf("the federated job ended %s after %d rounds; want Completed after %d", ph, done, rounds)
	}
	var model api.Status
	if err := json.Unmarshal(objects(t, apiClient(t, cl.URLs()), api.KindModel)["Model/default/"+o.Job+"-model"].Status, &model); err != nil {
		t.Fatal(err)
	}
	if model.Model == nil || model.Model.Version != 1 {
		t.Fatalf("the job's model: %+v; want version 1, registered once", model.Model)
	}
	if err := fleet.Settled(ctx); err != nil {
		t.Fatal(err)
	}
	n := phase * perPhase
	cnt.wait(t, n, 2*time.Minute)
	cnt.check(t, uint64(n), false)
	hn := phase * len(hollowNames) * hollowEach
	hcnt.wait(t, hn, 2*time.Minute)
	hcnt.check(t, uint64(hn), false)
	t.Logf("%d messages from an edge agent and %d from hollow nodes consumed once; the federated job completed %d rounds", n, hn, rounds)
	if err := cl.StartEtcd(1); err != nil {
		t.Errorf("starting etcd member 1 again: %v", err)
	}
	etcdBack = true
	if err := <-rabbitBack; err != nil {
		t.Errorf("starting RabbitMQ node 1 again: %v", err)
	}
	rabbitBack <- nil // for the cleanup
}
