package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/internal/testcluster"
	"github.com/sedna-go/sedna/topics"
)

// replicaArgs are the arguments of a `sedna cloud` replica named name on
// the broker url with its state in etcd at endpoints, with a lease of
// 2 s (a standby takes over about 2 s after the leader dies).
func replicaArgs(t testing.TB, name, url, endpoints, user, clientPrefix string) []string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "cloud.yaml")
	yaml := fmt.Sprintf("external:\n  url: %q\n  username: %q\n  password: %q\n  clientIDPrefix: %q\n  roles:\n    app: operator\n"+
		"etcd:\n  endpoints: [%q]\n  leaseTTL: 2s\n  replica: %q\n  prefix: %q\n", url, user, password, clientPrefix, endpoints, name, clientPrefix+"/")
	if user == "" {
		yaml = fmt.Sprintf("external:\n  url: %q\n  clientIDPrefix: %q\n"+
			"etcd:\n  endpoints: [%q]\n  leaseTTL: 2s\n  replica: %q\n  prefix: %q\n", url, clientPrefix, endpoints, name, clientPrefix+"/")
	}
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"cloud", "--config", conf, "--data", filepath.Join(t.TempDir(), name), "--metrics", "off", "--log-level", "info"}
}

// Two replicas of the cloud manager on mosquitto with their state in etcd:
// the leader is SIGKILLed while an edge streams 10,000 messages up and a
// cloud app sends 500 down to another node; the standby takes over and
// the consumer gets each of the 10,000 once and the node's app each of
// the 500 (at least once: a message the leader took into the outbox but
// whose acknowledgement to the broker the kill cut is taken again by the
// standby, as by a restarted manager; docs/TOPICS.md).
func TestCloudReplicasTakeOver(t *testing.T) {
	const n, down = 10000, 500
	dir := t.TempDir()
	url := startMosquitto(t, dir)
	e, err := testcluster.StartEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })

	a := startProc(t, replicaArgs(t, "a", url, e.Endpoint, "", "replicas")...)
	b := launchProc(t, replicaArgs(t, "b", url, e.Endpoint, "", "replicas")...)

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
	dir := t.TempDir()
	url := startMosquitto(t, dir)
	e, err := testcluster.StartEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	a := startProc(t, replicaArgs(t, "a", url, e.Endpoint, "", "lease")...)
	b := launchProc(t, replicaArgs(t, "b", url, e.Endpoint, "", "lease")...)

	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second})
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
