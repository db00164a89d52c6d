package e2e

import (
	"context"

	"fmt"
	paho "github.com/eclipse/paho.mqtt.golang"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/internal/testcluster"
	"github.com/sedna-go/sedna/simulator/hollow"
	"github.com/sedna-go/sedna/topics"
)

// hollowUsers imports n node users named prefix-0000.. on the cluster,
// with the permissions `sedna rabbitmq permissions` gives nodes, and
// returns their names.
func hollowUsers(t testing.TB, cl *testcluster.Cluster, prefix string, n int) []string {
	t.Helper()
	names := make([]string, n)
	users := make([]testcluster.User, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%04d", prefix, i)
		cmds, err := access.RabbitMQ{}.Permissions(names[i], access.UserNode)
		if err != nil {
			t.Fatal(err)
		}
		users[i] = testcluster.User{Name: names[i], Password: password}
		for _, c := range cmds {
			users[i].Permissions = append(users[i].Permissions, []string(c))
		}
	}
	if err := cl.ImportUsers(users); err != nil {
		t.Fatal(err)
	}
	return names
}

// 500 hollow nodes on the RabbitMQ cluster, each with its own user and
// the generated permissions, spread over the three broker nodes: each
// sends 10 messages, which a cloud consumer gets exactly once (5,000);
// the control plane counts all 500 online, having asked them; and a
// message published for each node reaches it once. (The 10,000-node run
// and the cloud tier's cost per 1,000 nodes: `sedna sim hollow`,
// docs/SCALE.md.)
func TestHollowNodesOnRabbitMQ(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	const nodes, each = 500, 10
	cl := rabbitCluster(t)
	imported := time.Now()
	names := hollowUsers(t, cl, "hollow", nodes)
	t.Logf("%d users imported with their permissions in %v", nodes, time.Since(imported).Round(time.Millisecond))
	dir := t.TempDir()
	m := startRabbitCloud(t, cl, filepath.Join(dir, "cloud"), "hollow-cloud")
	t.Cleanup(m.Close)

	// The consumer: every node's app/hollow topic, exactly once by ID.
	_, cnt := startConsumerOf(t, cl.URLs(), "hollow-consumer", openStore(t, filepath.Join(dir, "consumer")), 51,
		func(topic string) bool { return topics.Match(topics.Root+"/node/+/app/hollow", topic) })

	var mu sync.Mutex
	down := map[string]int{}
	start := time.Now()
	fleet, err := hollow.Start(hollow.Config{URL: cl.URLs(), Nodes: names, Password: func(string) string { return password },
		Logger: testLogger(t), OnDown: func(node, topic string, _ []byte) {
			mu.Lock()
			down[node]++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := fleet.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d hollow nodes connected in %v", nodes, time.Since(start).Round(time.Millisecond))
	for i, n := range fleet.Nodes() {
		for j := range each {
			n.Send(topics.NodeAppPrefix(n.Name())+"hollow", payload(51, uint64(i*each+j)))
		}
	}
	if err := fleet.Settled(ctx); err != nil {
		t.Fatal(err)
	}
	acked := time.Since(start)
	cnt.wait(t, nodes*each, 2*time.Minute)
	cnt.check(t, nodes*each, false)
	s := fleet.Stats()
	t.Logf("%d messages acknowledged (%v after the start) and consumed once (%v); %d frames, %d connections, %d failed attempts",
		s.Acked, acked.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), s.Frames, s.Connects, s.Failures)

	// The control plane knows them all online.
	connected := time.Now()
	c := apiClient(t, cl.URLs())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rep, err := c.Do(ctx, topics.APIRequest{Op: "nodes"})
		if err != nil {
			t.Fatal(err)
		}
		online := 0
		for _, n := range rep.Nodes {
			if n.State == topics.NodeOnline {
				online++
			}
		}
		if online == nodes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control plane has %d of %d hollow nodes online", online, nodes)
		}
		<-time.After(200 * time.Millisecond) // polling the control plane's answer
	}

	online := time.Since(connected)
	// One message for each node, through the cloud's outbox.
	pub := client(t, cl.MQTT[1], "hollow-pub", "app", true)
	toks := make([]paho.Token, len(names))
	for i, n := range names {
		toks[i] = pub.Publish(topics.ToNodeAppPrefix(n)+"hello", 1, false, []byte("hi"))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish for %s: %v", names[i], tok.Error())
		}
	}
	t.Logf("a message for each node published; the control plane had them all online %v after they connected", online.Round(time.Millisecond))
	published := time.Now()
	defer func() {
		t.Logf("the nodes had their messages %v after they were published", time.Since(published).Round(time.Millisecond))
	}()
	for {
		mu.Lock()
		got, dups := len(down), 0
		for _, k := range down {
			dups += k - 1
		}
		mu.Unlock()
		if dups > 0 {
			t.Fatalf("%d downlink messages delivered twice", dups)
		}
		if got == nodes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes got their message", got, nodes)
		}
		<-time.After(100 * time.Millisecond) // polling the fleet's counts
	}
}
