package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/internal/testcluster"
	"github.com/sedna-go/sedna/simulator/hollow"
	"github.com/sedna-go/sedna/topics"
)

// partitioned deletes the RabbitMQ queues of the n partitions named id
// (if any) when the test ends (they would keep collecting the next tests' frames),
// and returns a client of the cluster's etcd, closed then too.
func partitioned(tb testing.TB, cl *testcluster.Cluster, id string, n int) *clientv3.Client {
	tb.Helper()
	if n > 0 {
		parts := cloudlink.Partitions{Name: id, N: n}
		tb.Cleanup(func() {
			if err := parts.Delete(cl.AMQP, "cloud", password); err != nil {
				tb.Errorf("deleting the partitions' queues: %v", err)
			}
		})
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: cl.Etcd, DialTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { etcd.Close() })
	return etcd
}

// shares reads who owns the uplink partitions of the replicas below
// prefix: each owner's count.
func shares(ctx context.Context, c *clientv3.Client, prefix string) (map[string]int, int64, error) {
	resp, err := c.Get(ctx, prefix+"shares/owners/", clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	out := map[string]int{}
	for _, kv := range resp.Kvs {
		out[string(kv.Value)]++
	}
	return out, resp.Header.Revision, nil
}

// awaitShares waits until the partitions below prefix are owned as want
// says (owner: how many).
func awaitShares(t testing.TB, c *clientv3.Client, prefix string, want map[string]int, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var got map[string]int
	for {
		var rev int64
		var err error
		if got, rev, err = shares(ctx, c, prefix); err != nil {
			t.Fatalf("reading the shares (want %v): %v", want, err)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		select {
		case <-c.Watch(ctx, prefix+"shares/", clientv3.WithPrefix(), clientv3.WithRev(rev+1)):
		case <-ctx.Done():
			t.Fatalf("the partitions are owned %v after %v; want %v", got, within, want)
		}
	}
}

// Replicas that share the nodes (etcd.partitions on the RabbitMQ
// cluster): two `sedna cloud` replica processes relay 8 partitions of 20
// hollow nodes' frames and send their outboxes. A second replica that
// joins while frames stream takes half the partitions from the first;
// when it is killed -9, the first takes them back once its lease ran out,
// frames sent meanwhile included. A plain subscriber of the relayed topic
// gets every message exactly once: a handover between frames (a release,
// or a queue whose owner is dead) neither loses nor repeats one. A
// message a cloud app publishes for each node, before the kill and right
// after it (while the dead replica's outboxes have no owner), reaches
// each node exactly once.
func TestCloudReplicasShareTheNodes(t *testing.T) {
	const partitions, hollowEach = 8, 40
	cl := rabbitCluster(t)
	dir := t.TempDir()
	id := fmt.Sprintf("shares-%d", sessions.Add(1))
	args := func(name string) []string {
		conf := filepath.Join(dir, name+".yaml")
		yaml := fmt.Sprintf("external:\n  url: %q\n  amqp: %q\n  username: cloud\n  password: %q\n  clientIDPrefix: %q\n"+
			"etcd:\n  endpoints: [%s]\n  leaseTTL: 2s\n  replica: %q\n  prefix: %q\n  partitions: %d\n",
			cl.URLs(), strings.Join(cl.AMQP, ","), password, id, strings.Join(cl.Etcd, ", "), name, id+"/", partitions)
		if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"cloud", "--config", conf, "--data", filepath.Join(dir, name), "--metrics", "off", "--log-level", "info"}
	}
	etcd := partitioned(t, cl, id, partitions)

	// The plain subscriber of what the relays publish.
	var mu sync.Mutex
	seen := map[uint64]int{}
	got := make(chan struct{}, 1)
	sub := client(t, cl.URLs(), id+"-sub", "app", true)
	if tok := sub.Subscribe(topics.Root+"/node/+/app/hollow", 1, func(_ paho.Client, m paho.Message) {
		if r, n, ok := counterOf(m.Payload()); ok && r == 63 {
			mu.Lock()
			seen[n]++
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	awaitAll := func(n int) {
		t.Helper()
		deadline := time.After(2 * time.Minute)
		for {
			mu.Lock()
			have := len(seen)
			mu.Unlock()
			if have >= n {
				return
			}
			select {
			case <-got:
			case <-deadline:
				t.Fatalf("the subscriber got %d of %d messages", have, n)
			}
		}
	}

	startProc(t, args("a")...)
	awaitShares(t, etcd, id+"/", map[string]int{"a": partitions}, time.Minute)

	names := hollowUsers(t, cl, "sh", 20)
	down := map[string]map[string]int{} // node: payload: times
	downGot := make(chan struct{}, 1)
	fleet, err := hollow.Start(hollow.Config{URL: cl.URLs(), Nodes: names, Password: func(string) string { return password }, Logger: testLogger(t),
		OnDown: func(node, _ string, payload []byte) {
			mu.Lock()
			if down[node] == nil {
				down[node] = map[string]int{}
			}
			down[node][string(payload)]++
			mu.Unlock()
			select {
			case downGot <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := fleet.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Uint64 // the messages' numbers: 0, 1, ...
	stream := func(each int) {
		for _, n := range fleet.Nodes() {
			for range each {
				n.Send(topics.NodeAppPrefix(n.Name())+"hollow", payload(63, sent.Add(1)-1))
			}
		}
	}

	// b joins while the nodes stream (a message from each node every
	// 10 ms, from before b starts until the shares are even): a releases
	// half, between frames.
	stopStreaming := make(chan struct{})
	streaming := make(chan struct{})
	var stopOnce sync.Once
	stopStream := func() { stopOnce.Do(func() { close(stopStreaming) }); <-streaming }
	t.Cleanup(stopStream)
	go func() {
		defer close(streaming)
		tick := time.NewTicker(10 * time.Millisecond) // the stream's pace
		defer tick.Stop()
		for {
			select {
			case <-stopStreaming:
				return
			case <-tick.C:
				stream(1)
			}
		}
	}()
	b := launchProc(t, args("b")...)
	awaitShares(t, etcd, id+"/", map[string]int{"a": partitions / 2, "b": partitions / 2}, time.Minute)
	stopStream()
	t.Logf("%d messages streamed across b's join", sent.Load())
	awaitAll(int(sent.Load()))
	stream(hollowEach)
	awaitAll(int(sent.Load()))

	// A message for each node, through the outboxes (half of them b's).
	pub := client(t, cl.URLs(), id+"-pub", "app", true)
	sendDown := func(what string) {
		t.Helper()
		for _, n := range names {
			if tok := pub.Publish(topics.ToNodeAppPrefix(n)+"hello", 1, false, []byte(what)); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("publish for %s: %v", n, tok.Error())
			}
		}
	}
	awaitDown := func(what string) {
		t.Helper()
		deadline := time.After(2 * time.Minute)
		for {
			mu.Lock()
			have := 0
			for _, n := range names {
				if down[n][what] > 0 {
					have++
				}
			}
			mu.Unlock()
			if have == len(names) {
				return
			}
			select {
			case <-downGot:
			case <-deadline:
				t.Fatalf("%d of %d nodes got %q", have, len(names), what)
			}
		}
	}
	sendDown("before")
	awaitDown("before")

	// b dies between frames (its queues drained: a frame it relayed and
	// had not yet recorded would come again, at least once); what is sent
	// meanwhile waits in its queues for a.
	drained(t, cl.Ctl, id+".uplink.")
	killed := time.Now()
	b.kill()
	sendDown("during")
	stream(hollowEach)
	awaitShares(t, etcd, id+"/", map[string]int{"a": partitions}, time.Minute)
	t.Logf("a owned every partition again %v after b's SIGKILL", time.Since(killed).Round(time.Millisecond))
	n := int(sent.Load())
	awaitAll(n)
	awaitDown("during")
	if err := fleet.Settled(ctx); err != nil {
		t.Fatal(err)
	}
	drained(t, cl.Ctl, id+".uplink.") // nothing more to come, twice or not
	mu.Lock()
	defer mu.Unlock()
	for _, node := range names {
		if len(down[node]) != 2 || down[node]["before"] != 1 || down[node]["during"] != 1 {
			t.Fatalf("node %s got %v from its outbox; want before and during, once each", node, down[node])
		}
	}
	lost, dups := 0, 0
	for i := range uint64(n) {
		switch c := seen[i]; {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	if lost != 0 || dups != 0 || len(seen) != n {
		t.Fatalf("of %d messages the subscriber got: %d lost, %d twice or more, %d distinct", n, lost, dups, len(seen))
	}
	t.Logf("%d messages from %d hollow nodes relayed once, and a message to each node before and during the outage sent once, across a replica's join and a replica's kill -9", n, len(names))
}

// drained waits until the RabbitMQ queues whose names start with prefix
// hold nothing, acknowledged or not (rabbitmqctl through ctl).
func drained(t testing.TB, ctl func(int, ...string) (string, error), prefix string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := ctl(1, "list_queues", "-q", "--no-table-headers", "name", "messages")
		if err != nil {
			t.Fatalf("list_queues: %v", err)
		}
		left := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && strings.HasPrefix(f[0], prefix) && f[1] != "0" {
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues %s* still hold messages after a minute:\n%s", prefix, out)
		}
		<-time.After(200 * time.Millisecond) // polling the broker's counts: no event to wait on
	}
}

// BenchmarkRelayOnRabbitMQ relays b.N messages from 50 hollow nodes
// through the cloud tier on the test cluster and reports how many a
// second a plain subscriber of the relayed topic got, and the CPU time
// the replicas, the RabbitMQ nodes and the etcd members spent per 1,000
// messages, side by side: one replica relaying over its MQTT session (no
// partitions), one replica relaying 8 partitions over AMQP, and two
// replicas sharing them. Every process runs on this machine's cores, so
// the ratios say what each path costs, not what a second machine adds.
//
//	go test -run '^$' -bench BenchmarkRelayOnRabbitMQ -benchtime 20000x ./internal/e2e/
func BenchmarkRelayOnRabbitMQ(b *testing.B) {
	cl := rabbitCluster(b)
	names := hollowUsers(b, cl, "bench", 50)
	for _, mode := range []struct {
		name                 string
		replicas, partitions int
	}{{"mqtt", 1, 0}, {"partitions-1", 1, 8}, {"partitions-2", 2, 8}} {
		b.Run(mode.name, func(b *testing.B) {
			b.StopTimer()
			dir := b.TempDir()
			id := fmt.Sprintf("bench-%d", sessions.Add(1))
			etcd := partitioned(b, cl, id, mode.partitions)
			want := map[string]int{}
			var replicaPIDs []int
			for r := range mode.replicas {
				name := fmt.Sprintf("r%d", r)
				conf := filepath.Join(dir, name+".yaml")
				yaml := fmt.Sprintf("external:\n  url: %q\n  amqp: %q\n  username: cloud\n  password: %q\n  clientIDPrefix: %q\n"+
					"etcd:\n  endpoints: [%s]\n  replica: %q\n  prefix: %q\n  partitions: %d\n",
					cl.URLs(), strings.Join(cl.AMQP, ","), password, id, strings.Join(cl.Etcd, ", "), name, id+"/", mode.partitions)
				if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
					b.Fatal(err)
				}
				args := []string{"cloud", "--config", conf, "--data", filepath.Join(dir, name), "--metrics", "off", "--log-level", "warn"}
				p := launchProc(b, args...)
				if r == 0 {
					p.awaitReady(b, time.Minute)
				}
				replicaPIDs = append(replicaPIDs, p.cmd.Process.Pid)
				if mode.partitions > 0 {
					want[name] = mode.partitions / mode.replicas
				}
			}
			if mode.partitions > 0 {
				awaitShares(b, etcd, id+"/", want, time.Minute)
			}
			var mu sync.Mutex
			seen := map[uint64]bool{}
			all := make(chan struct{})
			sub := client(b, cl.URLs(), id+"-sub", "app", true)
			if tok := sub.Subscribe(topics.Root+"/node/+/app/bench", 1, func(_ paho.Client, m paho.Message) {
				if r, n, ok := counterOf(m.Payload()); ok && r == 64 {
					mu.Lock()
					seen[n] = true
					if len(seen) == b.N {
						close(all)
					}
					mu.Unlock()
				}
			}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("subscribe: %v", tok.Error())
			}
			fleet, err := hollow.Start(hollow.Config{URL: cl.URLs(), Nodes: names, Password: func(string) string { return password }, Logger: testLogger(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer fleet.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := fleet.Wait(ctx); err != nil {
				b.Fatal(err)
			}
			nodes := fleet.Nodes()
			var rabbitPIDs, etcdPIDs []int
			for n := 1; n <= 3; n++ {
				rabbitPIDs = append(rabbitPIDs, pidFile(b, filepath.Join(cl.Dir, fmt.Sprintf("rabbit%d", n), "pid")))
				etcdPIDs = append(etcdPIDs, pidFile(b, filepath.Join(cl.Dir, fmt.Sprintf("etcd%d", n), "pid")))
			}
			cpu0 := [3]float64{cpuOf(b, replicaPIDs), cpuOf(b, rabbitPIDs), cpuOf(b, etcdPIDs)}
			b.StartTimer()
			start := time.Now()
			for i := range b.N {
				n := nodes[i%len(nodes)]
				n.Send(topics.NodeAppPrefix(n.Name())+"bench", payload(64, uint64(i)))
			}
			select {
			case <-all:
			case <-ctx.Done():
				mu.Lock()
				b.Fatalf("the subscriber got %d of %d", len(seen), b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			per := float64(b.N) / 1000
			b.ReportMetric((cpuOf(b, replicaPIDs)-cpu0[0])*1000/per, "cloud-cpu-ms/1k")
			b.ReportMetric((cpuOf(b, rabbitPIDs)-cpu0[1])*1000/per, "rabbitmq-cpu-ms/1k")
			b.ReportMetric((cpuOf(b, etcdPIDs)-cpu0[2])*1000/per, "etcd-cpu-ms/1k")
		})
	}
}

// pidFile reads a process ID from a file.
func pidFile(tb testing.TB, path string) int {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return pid
}

// cpuOf is the CPU time (seconds) the processes have had.
func cpuOf(tb testing.TB, pids []int) float64 {
	tb.Helper()
	var sum float64
	for _, pid := range pids {
		u, err := hollow.ProcUsage(pid)
		if err != nil {
			tb.Fatal(err)
		}
		sum += u.CPU
	}
	return sum
}
