package cloud

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/store/etcdstore"
	"github.com/sedna-go/sedna/topics"
)

// The nodes' outboxes shared among the replicas (etcd.partitions,
// docs/SCALE.md): node N's outbox belongs to partition outboxOf(N), kept
// in etcd in the partition's own namespace ({prefix}outbox/{partitions}/
// {P}/, its own epoch), and sent by the replica that owns partition P, as
// it relays P's frames. The leader, where messages for nodes are made (the
// control plane's specs and models, cloud apps' messages for nodes),
// forwards each into the partition's inbox ({namespace}in/, keyed by the
// leader's election revision and a counter, so in the order it forwarded
// them); the owner moves each from the inbox into the outbox in one etcd
// transaction (the inbox key deleted with the record appended, fenced by
// its owner key): a message is kept once, whoever dies.

// outboxOf is the partition of node's outbox among n.
func outboxOf(node string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(node))
	return int(h.Sum32() % uint32(n))
}

// outboxNamespace is partition p's outbox namespace in etcd.
func outboxNamespace(prefix string, n, p int) string {
	return fmt.Sprintf("%soutbox/%d/%d/", prefix, n, p)
}

// inboxPrefix is where messages forwarded to a partition wait, in its
// namespace's store.
const inboxPrefix = "in/"

// forwarded is a message for a node on its way to its outbox.
type forwarded struct {
	Node    string `msgpack:"node"`
	Topic   string `msgpack:"topic"`
	Payload []byte `msgpack:"payload"`
	Retain  bool   `msgpack:"retain,omitempty"`
	QoS     byte   `msgpack:"qos"`
	Time    int64  `msgpack:"time"`
	Expires int64  `msgpack:"expires,omitempty"`
}

// forwarder is the leader's side: Downlink.Send hands it each message.
type forwarder struct {
	client *clientv3.Client
	prefix string
	n      int
	fence  func() []clientv3.Cmp // the leader's
	order  string                // the leader's election revision, hex: later leaders sort after
	seq    atomic.Uint64

	mu     sync.Mutex
	stores map[int]*etcdstore.Store
}

func (f *forwarder) store(p int) (*etcdstore.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.stores[p]; st != nil {
		return st, nil
	}
	st, err := etcdstore.Open(etcdstore.Options{Client: f.client, Prefix: outboxNamespace(f.prefix, f.n, p), Fence: f.fence})
	if err != nil {
		return nil, err
	}
	f.stores[p] = st
	return st, nil
}

// forward writes r for node into its partition's inbox: durable once it
// returns.
func (f *forwarder) forward(node string, r queue.Record) error {
	st, err := f.store(outboxOf(node, f.n))
	if err != nil {
		return err
	}
	m := forwarded{Node: node, Topic: r.Topic, Payload: r.Payload, Retain: r.Retain, QoS: r.QoS, Time: r.Time.UnixNano()}
	if !r.Expires.IsZero() {
		m.Expires = r.Expires.UnixNano()
	}
	raw, err := msgpack.Marshal(&m)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Put(fmt.Appendf(nil, "%s%s%016x", inboxPrefix, f.order, f.seq.Add(1)), raw)
	return st.Write(&b)
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.stores {
		_ = st.Close()
	}
}

// ownedOutbox is the outbox of an owned partition: its downlink and the
// pump that fills it from the inbox.
type ownedOutbox struct {
	st   *etcdstore.Store
	d    *cloudlink.Downlink
	done chan struct{}
}

// startOutbox opens partition p's outbox (its writes fenced by its
// owner key) and sends it, until ctx ends.
func (s *sharer) startOutbox(ctx context.Context, p int, fence func() []clientv3.Cmp) (*ownedOutbox, error) {
	ns := outboxNamespace(s.r.prefix, s.parts.N, p)
	st, err := etcdstore.Open(etcdstore.Options{Client: s.r.client, Prefix: ns, Fence: fence})
	if err != nil {
		return nil, err
	}
	n := s.parts.N
	d, err := cloudlink.NewDownlink(cloudlink.DownlinkConfig{Store: st, Queue: s.outboxQueue, Dead: s.dead, Metrics: s.metrics,
		Logger: s.log.With("outbox", p), Owns: func(node string) bool { return outboxOf(node, n) == p }})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := d.Start(s.bus); err != nil {
		_ = d.Close()
		_ = st.Close()
		return nil, err
	}
	o := &ownedOutbox{st: st, d: d, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		s.pump(ctx, p, ns, o)
	}()
	return o, nil
}

// close stops the outbox's pump and sender; ctx must have ended.
func (o *ownedOutbox) close() {
	<-o.done
	_ = o.d.Close()
	_ = o.st.Close()
}

// pump moves the messages forwarded to partition p from its inbox into
// its outbox, in the order forwarded, each in one fenced transaction,
// until ctx ends. A node the outbox has no status of is asked for one
// (the partition may have just changed owner), once.
func (s *sharer) pump(ctx context.Context, p int, ns string, o *ownedOutbox) {
	watch := s.r.client.Watch(ctx, ns+"d/"+inboxPrefix, clientv3.WithPrefix())
	asked := map[string]bool{}
	ask := func(node string) {
		if asked[node] || o.d.Known(node) {
			return
		}
		asked[node] = true
		if err := s.askStatus(node); err != nil {
			s.log.Warn("outbox: a status request not sent", "node", node, "error", err)
		}
	}
	for _, node := range o.d.Queue().Streams() {
		ask(node)
	}
	// The backlog, for the leader's view of the nodes: now, then every
	// few seconds when it changed; gone with the partition.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var reported []byte
	report := func() {
		raw, err := msgpack.Marshal(o.d.Queue().Stats())
		if err == nil && string(raw) != string(reported) {
			if _, err = s.r.client.Put(ctx, s.backlogKey(p), string(raw), clientv3.WithLease(s.r.session.Lease())); err == nil {
				reported = raw
			}
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("outbox: its backlog not reported", "partition", p, "error", err)
		}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		k := s.backlogKey(p) // this replica's report only: a successor may have made its own
		_, _ = s.r.client.Txn(dctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", s.r.session.Lease())).Then(clientv3.OpDelete(k)).Commit()
	}()
	report()
	recon := s.reconnects()
	pause := time.Duration(0)
	for {
		changed := o.d.Queue().Changed()
		moved, err := s.moveInbox(o, ask)
		if err != nil && ctx.Err() == nil && !errors.Is(err, queue.ErrFull) {
			s.log.Warn("outbox: forwarded messages not taken; trying again", "partition", p, "error", err)
			pause = min(max(2*pause, 250*time.Millisecond), 5*time.Second)
		} else {
			pause = 0
		}
		var wait <-chan time.Time
		if pause > 0 {
			wait = time.After(pause)
		}
		if moved && err == nil {
			continue // more may have come meanwhile
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-watch:
			if !ok {
				return
			}
		case <-changed: // room in a full outbox
		case <-wait:
		case <-tick.C:
			report()
		case <-recon:
			// The bus connected again: its nodes' statuses and replay
			// requests of meanwhile are gone; each is asked again.
			recon = s.reconnects()
			clear(asked)
			for _, node := range o.d.Forget() {
				ask(node)
			}
		}
	}
}

// moveInbox takes every message waiting in the inbox into the outbox, in
// key order; it stops at the first it cannot take (queue.ErrFull, a store
// error), which stays for the next try.
func (s *sharer) moveInbox(o *ownedOutbox, ask func(string)) (moved bool, err error) {
	type waiting struct {
		key []byte
		m   forwarded
	}
	var in []waiting
	err = o.st.Scan([]byte(inboxPrefix), nil, func(k, v []byte) error {
		var m forwarded
		if err := msgpack.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("outbox: forwarded message %s: %w", k, err)
		}
		in = append(in, waiting{key: slices.Clone(k), m: m})
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, w := range in {
		r := queue.Record{Topic: w.m.Topic, Payload: w.m.Payload, Retain: w.m.Retain, QoS: w.m.QoS, Time: time.Unix(0, w.m.Time)}
		if w.m.Expires != 0 {
			r.Expires = time.Unix(0, w.m.Expires)
		}
		var extra store.Batch
		extra.Delete(w.key)
		if err := o.d.Keep(w.m.Node, r, &extra); err != nil {
			return moved, err
		}
		moved = true
		ask(w.m.Node)
	}
	return moved, nil
}

// askStatus asks node for its status on the relay's bus.
func (s *sharer) askStatus(node string) error {
	raw, err := statusRequest("cloud/outbox", time.Now(), 0)
	if err != nil {
		return err
	}
	return s.bus.Publish(topics.StatusRequestTopic(node), raw, false, 1)
}

// backlogKey is where the owner of partition p says how much its outbox
// holds per node, for the leader's view of the nodes.
func (s *sharer) backlogKey(p int) string { return fmt.Sprintf("%sshares/backlog/%d", s.r.prefix, p) }

// readBacklog is the leader's view of every partition's outbox: the
// statistics their owners last reported (every few seconds).
func readBacklog(ctx context.Context, c *clientv3.Client, prefix string, log *slog.Logger) []queue.StreamStats {
	resp, err := c.Get(ctx, prefix+"shares/backlog/", clientv3.WithPrefix())
	if err != nil {
		log.Warn("reading the outboxes' backlog", "error", err)
		return nil
	}
	var out []queue.StreamStats
	for _, kv := range resp.Kvs {
		var st []queue.StreamStats
		if err := msgpack.Unmarshal(kv.Value, &st); err != nil {
			log.Warn("an outbox's backlog unreadable", "key", strings.TrimPrefix(string(kv.Key), prefix), "error", err)
			continue
		}
		out = append(out, st...)
	}
	return out
}
