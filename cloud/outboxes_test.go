package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/internal/testcluster"
	"github.com/sedna-go/sedna/store/etcdstore"
)

// Every partition gets nodes, and a node's partition does not change.
func TestOutboxOf(t *testing.T) {
	const n = 8
	count := make([]int, n)
	for i := range 1000 {
		node := fmt.Sprintf("edge-%d", i)
		p := outboxOf(node, n)
		if p < 0 || p >= n {
			t.Fatalf("outboxOf(%s) = %d", node, p)
		}
		if outboxOf(node, n) != p {
			t.Fatalf("outboxOf(%s) changed", node)
		}
		count[p]++
	}
	for p, c := range count {
		if c < 1000/n/2 {
			t.Errorf("partition %d has %d of 1,000 nodes: %v", p, c, count)
		}
	}
}

// Messages forwarded by the leader to a partition's inbox move into the
// partition's outbox in the order forwarded, each once (its inbox copy
// deleted in the same transaction), across leaders (a later leader's
// sort after); an owner that lost the partition (its owner key gone)
// moves nothing, and the messages wait for the next owner; a leader that
// lost its leadership forwards nothing.
func TestForwardedMessagesMoveOnce(t *testing.T) {
	e, err := testcluster.StartEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	const prefix, n = "fw/", 4
	// Nodes of partition 1.
	var nodes []string
	for i := 0; len(nodes) < 2; i++ {
		if name := fmt.Sprintf("edge-%d", i); outboxOf(name, n) == 1 {
			nodes = append(nodes, name)
		}
	}
	fence := func(key string) (func() []clientv3.Cmp, int64) {
		resp, err := c.Put(ctx, key, "x")
		if err != nil {
			t.Fatal(err)
		}
		rev := resp.Header.Revision
		return func() []clientv3.Cmp { return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", rev)} }, rev
	}
	leaderFence, leaderRev := fence("fw/leader/a")
	newForwarder := func(f func() []clientv3.Cmp, rev int64) *forwarder {
		return &forwarder{client: c, prefix: prefix, n: n, fence: f, order: fmt.Sprintf("%016x", rev), stores: map[int]*etcdstore.Store{}}
	}
	fw := newForwarder(leaderFence, leaderRev)
	defer fw.close()
	send := func(fw *forwarder, node, what string) error {
		return fw.forward(node, queue.Record{Topic: "sedna/v1/to/" + node + "/app/x", Payload: []byte(what), QoS: 1, Time: time.Now()})
	}
	for i := range 3 {
		for _, node := range nodes {
			if err := send(fw, node, fmt.Sprintf("a%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The next leader's messages sort after the first's.
	nextFence, nextRev := fence("fw/leader/b")
	fw2 := newForwarder(nextFence, nextRev)
	defer fw2.close()
	if err := send(fw2, nodes[0], "b0"); err != nil {
		t.Fatal(err)
	}
	// The first leader's key gone: it forwards nothing.
	if _, err := c.Delete(ctx, "fw/leader/a"); err != nil {
		t.Fatal(err)
	}
	if err := send(fw, nodes[0], "late"); !errors.Is(err, etcdstore.ErrFenced) {
		t.Fatalf("a forward by a lost leader: %v; want ErrFenced", err)
	}

	// An owner of partition 1, whose key is then taken from it.
	open := func(key string) *ownedOutbox {
		f, _ := fence(key)
		st, err := etcdstore.Open(etcdstore.Options{Client: c, Prefix: outboxNamespace(prefix, n, 1), Fence: f})
		if err != nil {
			t.Fatal(err)
		}
		d, err := cloudlink.NewDownlink(cloudlink.DownlinkConfig{Store: st, Logger: slog.New(slog.DiscardHandler),
			Owns: func(node string) bool { return outboxOf(node, n) == 1 }})
		if err != nil {
			t.Fatal(err)
		}
		return &ownedOutbox{st: st, d: d}
	}
	s := &sharer{}
	lost := open("fw/owner/1-old")
	if _, err := c.Delete(ctx, "fw/owner/1-old"); err != nil {
		t.Fatal(err)
	}
	if moved, err := s.moveInbox(lost, func(string) {}); moved || !errors.Is(err, etcdstore.ErrFenced) {
		t.Fatalf("an owner without its key moved %v: %v; want nothing, ErrFenced", moved, err)
	}
	_ = lost.d.Close()
	_ = lost.st.Close()

	o := open("fw/owner/1")
	defer func() { _ = o.d.Close(); _ = o.st.Close() }()
	var asked []string
	moved, err := s.moveInbox(o, func(node string) { asked = append(asked, node) })
	if err != nil || !moved {
		t.Fatalf("moveInbox = %v, %v", moved, err)
	}
	want := map[string][]string{nodes[0]: {"a0", "a1", "a2", "b0"}, nodes[1]: {"a0", "a1", "a2"}}
	for node, w := range want {
		recs, _, err := o.d.Queue().Read(node, 1, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, string(r.Payload))
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("%s's outbox: %v; want %v", node, got, w)
		}
	}
	if len(asked) != 7 {
		t.Fatalf("asked about %d messages' nodes; want 7", len(asked))
	}
	// Nothing left to move: a second pass moves nothing.
	if moved, err := s.moveInbox(o, func(string) {}); moved || err != nil {
		t.Fatalf("a second pass moved %v: %v", moved, err)
	}
	if resp, err := c.Get(ctx, outboxNamespace(prefix, n, 1)+"d/"+inboxPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("the inbox holds %v keys (%v); want none", resp, err)
	}
}
