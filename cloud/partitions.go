package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store/etcdstore"
	"github.com/sedna-go/sedna/topics"
)

// Replicas that share the nodes (etcd.partitions, docs/SCALE.md): the
// nodes' frames are spread by stream over N partitions (RabbitMQ queues,
// cloudlink.Partitions), and every replica, leader or standby, relays
// those of the partitions it owns. A replica is a member while its etcd
// session lives (key shares/members/NAME); it owns partition P while its
// key shares/owners/P, made on its session's lease, lives. Each replica
// computes the same fair share from the members (share), claims free
// partitions up to its share, and releases what it has over it, so that
// the partitions spread out as replicas come and go. A partition's windows
// are written fenced by its owner key: a replica that lost it (its lease
// ran out) writes nothing more, and its successor reads them whole.

// share plans this replica's part: of n partitions, each of the members
// (sorted) gets n/len, the first n%len one more. It returns the partitions
// me should claim (free ones, lowest first, up to its share) and release
// (its highest, over its share). owners maps a partition to its owner; a
// partition whose owner is not a member counts as free.
func share(n int, members []string, owners map[int]string, me string) (claim, release []int) {
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	i := slices.Index(ms, me)
	if i < 0 {
		return nil, nil // not a member (yet): it claims nothing
	}
	want := n / len(ms)
	if i < n%len(ms) {
		want++
	}
	var mine, free []int
	for p := range n {
		switch o := owners[p]; {
		case o == me:
			mine = append(mine, p)
		case o == "" || !slices.Contains(ms, o):
			free = append(free, p)
		}
	}
	if len(mine) > want {
		release = slices.Clone(mine[want:])
		slices.Reverse(release)
	} else if k := min(want-len(mine), len(free)); k > 0 {
		claim = free[:k]
	}
	return claim, release
}

// sharer runs this replica's part of the partitions until its context
// ends or its session does.
type sharer struct {
	r       *replica
	parts   cloudlink.Partitions
	src     cloudlink.AMQPSource // without Queue
	relayID string               // the consumers' name: their windows are found by it
	bus     *cloudlink.ClientBus
	dead    *queue.DeadLetters
	metrics *metrics.Set
	log     *slog.Logger
	// outboxQueue bounds each partition's outboxes (cloud.downlink).
	outboxQueue queue.Options

	owned  map[int]*ownedPart
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	recon chan struct{} // closed (and made anew) when the bus connects again
}

// reconnected tells the outboxes that the bus connected again: the
// statuses and replay requests of their nodes may have been missed.
func (s *sharer) reconnected() {
	s.mu.Lock()
	close(s.recon)
	s.recon = make(chan struct{})
	s.mu.Unlock()
}

// reconnects is closed at the bus's next reconnection.
func (s *sharer) reconnects() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recon
}

// ownedPart is a partition this replica owns and relays.
type ownedPart struct {
	key    string
	rev    int64 // its owner key's create revision: the fence
	cancel context.CancelFunc
	done   chan struct{} // the relay's
	store  *etcdstore.Store
	outbox *ownedOutbox
}

func (s *sharer) membersKey() string    { return s.r.prefix + "shares/members/" }
func (s *sharer) ownersKey() string     { return s.r.prefix + "shares/owners/" }
func (s *sharer) ownerKey(p int) string { return s.ownersKey() + strconv.Itoa(p) }

// startSharing joins the members and starts relaying a share of the
// partitions.
func (m *Manager) startSharing() error {
	c, ext := m.cfg.Etcd, m.cfg.External
	urls, err := cloudlink.SplitAMQPURLs(ext.AMQP)
	if err != nil {
		return fmt.Errorf("cloud: external.amqp: %w", err)
	}
	r := m.replica
	s := &sharer{r: r, parts: cloudlink.Partitions{Name: ext.ClientIDPrefix, N: c.Partitions},
		src:     cloudlink.AMQPSource{URLs: urls, Username: ext.Username, Password: ext.Password},
		relayID: ext.ClientIDPrefix + "-ingress", metrics: m.metrics, log: m.log.With("replica", r.name),
		outboxQueue: queue.Options{MaxBytes: m.cfg.Downlink.MaxBytes, MaxAge: time.Duration(m.cfg.Downlink.MaxAge), Policy: m.cfg.Downlink.Policy},
		owned:       map[int]*ownedPart{}, done: make(chan struct{}), recon: make(chan struct{})}
	if err := s.parts.Declare(urls, ext.Username, ext.Password); err != nil {
		return err
	}
	// A clean session (a replica's name may be new at each start): what
	// its outboxes' nodes said while it reconnected is asked again.
	if s.bus, err = cloudlink.DialBus(cloudlink.ClientConfig{URL: ext.URL, ClientID: ext.ClientIDPrefix + "-relay-" + r.name,
		Username: ext.Username, Password: ext.Password, CleanSession: true, OnReconnect: s.reconnected}); err != nil {
		return err
	}
	// Dead letters of this replica's relays: its own namespace (several
	// replicas write at once), reported on the cloud's error events and
	// logged as they come.
	ds, err := etcdstore.Open(etcdstore.Options{Client: r.client, Prefix: r.prefix + "replicas/" + r.name + "/dl/"})
	if err != nil {
		s.bus.Close()
		return err
	}
	report := func(ev topics.ErrorEvent) { publishError(s.bus, "cloud/replica/"+r.name, ev) }
	if s.dead, err = queue.OpenDeadLetters(ds, 0, report, m.metrics, s.log); err != nil {
		s.bus.Close()
		return err
	}
	ctx, cancel := context.WithCancel(r.session.Ctx())
	s.cancel = cancel
	if _, err := r.client.Put(ctx, s.membersKey()+r.name, r.name, clientv3.WithLease(r.session.Lease())); err != nil {
		cancel()
		s.bus.Close()
		return fmt.Errorf("cloud: etcd: joining the replicas: %w", err)
	}
	m.sharer = s
	go s.run(ctx)
	return nil
}

// run plans and applies this replica's share each time the members or
// the owners change, and every resync besides (a step that failed is
// tried again), until ctx ends; then it stops its relays (their
// unacknowledged frames go back to their queues) and returns.
func (s *sharer) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		for p := range s.owned {
			s.stop(p)
		}
	}()
	const resync = 10 * time.Second
	var watch clientv3.WatchChan
	retry := time.Duration(0)
	for ctx.Err() == nil {
		if watch == nil {
			// Made again if etcd ends it (a compaction, a lost member):
			// a change missed meanwhile is caught by the step below.
			watch = s.r.client.Watch(clientv3.WithRequireLeader(ctx), s.r.prefix+"shares/", clientv3.WithPrefix())
		}
		wait := resync
		if err := s.step(ctx); err != nil && ctx.Err() == nil {
			retry = min(max(2*retry, 250*time.Millisecond), resync)
			wait = retry
			s.log.Warn("sharing the partitions; trying again", "error", err, "in", wait)
		} else {
			retry = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-timer.C:
		case resp, ok := <-watch:
			if !ok || resp.Canceled || resp.Err() != nil {
				if ctx.Err() == nil {
					s.log.Warn("the watch of the shares ended; watching again", "error", resp.Err())
				}
				watch = nil
			}
			// Several changes at once make one step.
		drain:
			for watch != nil {
				select {
				case resp, ok := <-watch:
					if !ok || resp.Canceled {
						watch = nil
					}
				default:
					break drain
				}
			}
		}
		timer.Stop()
	}
}

// step reads the members and the owners, and claims and releases what
// share says. An owner key of this replica's lease that it does not relay
// (a claim whose answer was lost, a release whose deletion failed) is
// deleted, to be claimed again.
func (s *sharer) step(ctx context.Context) error {
	resp, err := s.r.client.Get(ctx, s.r.prefix+"shares/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	var members []string
	owners := map[int]string{}
	var errs []error
	lease := int64(s.r.session.Lease())
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if name, ok := strings.CutPrefix(k, s.membersKey()); ok {
			members = append(members, name)
			continue
		}
		ps, ok := strings.CutPrefix(k, s.ownersKey())
		if !ok {
			continue
		}
		p, err := strconv.Atoi(ps)
		if err != nil {
			continue
		}
		owner := string(kv.Value)
		switch {
		case owner == s.r.name && kv.Lease != lease:
			// An earlier process of this name: not free until its
			// lease ends, and not this one's.
			owner = "(earlier) " + owner
		case owner == s.r.name && (s.owned[p] == nil || s.owned[p].rev != kv.CreateRevision):
			if _, err := s.r.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", kv.CreateRevision)).
				Then(clientv3.OpDelete(k)).Commit(); err != nil {
				errs = append(errs, err)
			}
			s.log.Warn("a partition's key of this replica was not relayed; freed", "partition", p)
			owner = "(freed) " + owner
		}
		owners[p] = owner
	}
	// A partition this replica relays whose key is gone (or another's)
	// is stopped: its writes are refused already.
	for p := range s.owned {
		if owners[p] != s.r.name {
			s.log.Warn("a partition's key is gone; its relay stops", "partition", p)
			s.stop(p)
		}
	}
	claim, release := share(s.parts.N, members, owners, s.r.name)
	for _, p := range release {
		if err := s.release(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range claim {
		if err := s.claim(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// claim takes partition p, if its key is free (a replica that left takes
// its keys with its lease), and starts relaying it.
func (s *sharer) claim(ctx context.Context, p int) error {
	key := s.ownerKey(p)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	resp, err := s.r.client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, s.r.name, clientv3.WithLease(s.r.session.Lease()))).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return nil // another took it first, or the former owner's key lives on: the next change plans again
	}
	rev := resp.Header.Revision
	// Every write for the partition (its streams' windows, its outboxes)
	// holds while its key is this claim's.
	fence := func() []clientv3.Cmp { return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", rev)} }
	st, err := etcdstore.Open(etcdstore.Options{Client: s.r.client, Prefix: s.r.prefix + "store/", Fence: fence})
	if err != nil {
		return err
	}
	relay, err := cloudlink.NewRelay(cloudlink.RelayConfig{Client: cloudlink.ClientConfig{ClientID: s.relayID}, Bus: s.bus, Store: st,
		Dead: s.dead, Metrics: s.metrics, Logger: s.log})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	o := &ownedPart{key: key, rev: rev, cancel: cancel, done: make(chan struct{})}
	if o.outbox, err = s.startOutbox(pctx, p, fence); err != nil {
		cancel()
		_ = st.Close()
		// Freed again (if still this replica's), for the next plan.
		_, _ = s.r.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
		return fmt.Errorf("partition %d's outbox: %w", p, err)
	}
	o.store = st
	s.owned[p] = o
	src := s.src
	// Each partition starts at another broker node: a node's loss stops
	// a third of them, not all.
	src.URLs = append(slices.Clone(src.URLs[p%len(src.URLs):]), src.URLs[:p%len(src.URLs)]...)
	src.Queue = s.parts.Queue(p)
	src.Tag = s.r.name
	go func() {
		defer close(o.done)
		_ = relay.ConsumeAMQP(pctx, src)
	}()
	s.log.Info("relaying a partition", "partition", p)
	return nil
}

// stop ends the relay of partition p and waits for it: what it had not
// acknowledged goes back to the queue.
func (s *sharer) stop(p int) {
	o := s.owned[p]
	if o == nil {
		return
	}
	o.cancel()
	<-o.done
	if o.outbox != nil {
		o.outbox.close()
	}
	_ = o.store.Close()
	delete(s.owned, p)
}

// release stops relaying partition p, then frees it for another replica.
func (s *sharer) release(ctx context.Context, p int) error {
	o := s.owned[p]
	if o == nil {
		return nil
	}
	s.stop(p)
	_, err := s.r.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(o.key), "=", o.rev)).Then(clientv3.OpDelete(o.key)).Commit()
	if err == nil {
		s.log.Info("released a partition", "partition", p)
	}
	return err
}

// close stops sharing: its relays stop (their frames go back to the
// queues) and its keys go with its session.
func (s *sharer) close() {
	s.cancel()
	<-s.done
	s.bus.Close()
}
