package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/store/etcdstore"
)

// EtcdConfig keeps the manager's state in an etcd cluster instead of its
// Badger, so that several replicas of the manager can run: one leads
// (elected through etcd) and does everything a single manager does, the
// others stand by and one of them takes over, with the whole state, when
// the leader's lease runs out (docs/SCALE.md). It needs an external
// broker (external.url): every replica reaches the same sessions there.
type EtcdConfig struct {
	// Endpoints are the etcd members' client URLs. Empty: no etcd (the
	// manager's state is in its Badger, and it runs alone).
	Endpoints []string `json:"endpoints,omitempty"`
	// Username and Password authenticate to etcd, if it asks.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Prefix is the namespace of this cloud in etcd; default "sedna/".
	// Replicas of one cloud share it.
	Prefix string `json:"prefix,omitempty"`
	// LeaseTTL is how long a leader that stopped renewing its lease (a
	// killed process, a cut link) keeps its leadership: how long a
	// standby waits before it takes over. Default 5 s, at least 1 s.
	LeaseTTL broker.Duration `json:"leaseTTL,omitempty"`
	// Replica names this replica in the election; default host-pid.
	Replica string `json:"replica,omitempty"`
	// Partitions, if above 0, spreads the nodes' frames (queues of a
	// RabbitMQ cluster, read over AMQP: external.amqp) and their outboxes
	// over this many partitions, shared out among the replicas, standbys
	// included: each relays and sends its share, and takes over the share
	// of a replica that left (docs/SCALE.md). The same on every replica;
	// 0: the leader relays every frame over MQTT and sends every outbox.
	Partitions int `json:"partitions,omitempty"`
}

func (c EtcdConfig) on() bool { return len(c.Endpoints) > 0 }

// replica is this manager's membership of the etcd election.
type replica struct {
	client   *clientv3.Client
	session  *concurrency.Session
	election *concurrency.Election
	name     string
	prefix   string
}

// elect connects to etcd and campaigns until this replica leads (or ctx
// ends), then opens the store in etcd, fenced by the leadership: a write
// made after the lease ran out writes nothing (etcdstore.ErrFenced).
func (m *Manager) elect(ctx context.Context) error {
	c := m.cfg.Etcd
	if m.cfg.External.URL == "" {
		return errors.New("cloud: etcd keeps the state of replicas that share an external broker: set external.url (--broker) too")
	}
	if c.Prefix == "" {
		c.Prefix = "sedna/"
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	ttl := time.Duration(c.LeaseTTL)
	if ttl == 0 {
		ttl = 5 * time.Second
	}
	if ttl < time.Second {
		return fmt.Errorf("cloud: etcd.leaseTTL %s is under a second (etcd counts leases in seconds)", ttl)
	}
	if c.Partitions < 0 {
		return fmt.Errorf("cloud: etcd.partitions %d is negative", c.Partitions)
	}
	if c.Partitions > 0 && m.cfg.External.AMQP == "" {
		return errors.New("cloud: etcd.partitions needs external.amqp (--amqp): the RabbitMQ nodes' AMQP URLs, where the replicas read their partitions")
	}
	if c.Partitions > 0 {
		if _, err := cloudlink.SplitAMQPURLs(m.cfg.External.AMQP); err != nil {
			return fmt.Errorf("cloud: external.amqp: %w", err)
		}
	}
	if c.Replica == "" {
		host, _ := os.Hostname()
		c.Replica = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, Username: c.Username, Password: c.Password,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("cloud: etcd: %w", err)
	}
	r := &replica{client: client, name: c.Replica, prefix: c.Prefix}
	m.replica = r
	// The session outlives ctx (a SIGTERM): Close revokes its lease, so
	// that a successor takes over at once, not a lease later.
	secs := int64((ttl + time.Second - 1) / time.Second)
	grant, err := client.Grant(ctx, secs)
	if err != nil {
		return fmt.Errorf("cloud: etcd lease: %w", err)
	}
	if r.session, err = concurrency.NewSession(client, concurrency.WithTTL(int(secs)), concurrency.WithLease(grant.ID),
		concurrency.WithContext(context.WithoutCancel(ctx))); err != nil {
		return fmt.Errorf("cloud: etcd session: %w", err)
	}
	if c.Partitions > 0 {
		if err := m.startSharing(); err != nil {
			return err
		}
	}
	// A standby whose session ends (etcd unreachable longer than its
	// lease) stops waiting: Start fails, saying so.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.session.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	r.election = concurrency.NewElection(r.session, c.Prefix+"leader")
	if leader, err := r.election.Leader(ctx); err == nil {
		m.log.Info("standing by", "replica", r.name, "leader", string(leader.Kvs[0].Value))
	} else if !errors.Is(err, concurrency.ErrElectionNoLeader) {
		return fmt.Errorf("cloud: etcd: %w", err)
	}
	if err := r.election.Campaign(ctx, r.name); err != nil {
		select {
		case <-r.session.Done():
			return fmt.Errorf("cloud: replica %s lost its etcd session (lease) while standing by", r.name)
		default:
		}
		return fmt.Errorf("cloud: etcd election: %w", err)
	}
	key, rev := r.election.Key(), r.election.Rev()
	m.log.Info("leading", "replica", r.name, "key", key)
	m.store, err = etcdstore.Open(etcdstore.Options{Client: client, Prefix: c.Prefix + "store/", Fence: func() []clientv3.Cmp {
		return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", rev)}
	}})
	if err != nil {
		return err
	}
	if m.sharer != nil {
		// The nodes' outboxes are the partitions' owners': messages for
		// nodes go to them through etcd, fenced as the leader's writes.
		m.forwarder = &forwarder{client: client, prefix: c.Prefix, n: c.Partitions, order: fmt.Sprintf("%016x", rev),
			stores: map[int]*etcdstore.Store{}, fence: func() []clientv3.Cmp {
				return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", rev)}
			}}
	}
	go func() {
		<-r.session.Done()
		m.lostOnce.Do(func() { close(m.lost) })
	}()
	go r.compact(time.Minute, m.log)
	return nil
}

// compact keeps etcd's history short while this replica leads: every
// period it compacts away the revisions older than the previous period
// (an outbox's and a window's every change is a revision, and etcd keeps
// them all until compacted, against its space quota). A Scan still
// reading at a compacted revision goes on at the latest. It ends with the
// session.
func (r *replica) compact(every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-r.session.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(r.session.Ctx(), 10*time.Second)
		resp, err := r.client.Get(ctx, r.prefix+"leader", clientv3.WithCountOnly())
		if err == nil && prev > 0 {
			_, err = r.client.Compact(ctx, prev)
			if errors.Is(err, rpctypes.ErrCompacted) {
				err = nil
			}
		}
		cancel()
		if err != nil {
			log.Warn("etcd compaction", "error", err)
			continue
		}
		prev = resp.Header.Revision
	}
}

// Lost is closed when this replica lost its leadership (its etcd lease
// ran out: etcd unreachable for longer than etcd.leaseTTL, or the session
// closed). Its writes are refused from then on; Close it at once (it
// leaves the broker first, so that its successor has the sessions), and
// start it again as a standby if wanted. Never closed without etcd.
func (m *Manager) Lost() <-chan struct{} { return m.lost }

// Replica is this replica's name in the etcd election ("" without etcd).
func (m *Manager) Replica() string {
	if m.replica == nil {
		return ""
	}
	return m.replica.name
}

// close resigns (a standby takes over at once, not a lease later) and
// closes the session and the client.
func (r *replica) close() {
	if r.election != nil && r.election.Key() != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = r.election.Resign(ctx)
		cancel()
	}
	if r.session != nil {
		_ = r.session.Close()
	}
	_ = r.client.Close()
}
