// Package etcdstore is a store.Store kept in etcd (go.etcd.io/etcd): what
// several cloud manager replicas must share (the control plane's specs and
// statuses, the model registry, the nodes' outboxes and the ingress'
// windows) lives in a replicated store that survives the loss of any
// machine but a quorum's, instead of one manager's Badger.
//
// A Store is a namespace of one etcd cluster (Options.Prefix): its keys are
// the store's keys below it, and a Write is one etcd transaction, atomic and
// on a quorum's disks before it returns (store.Sync). A Write may carry a
// fence (Options.Fence): conditions etcd checks in the same transaction,
// such as "this replica's ownership key still exists at the revision it
// was made", so that a replica that lost what it owned (its lease expired
// while it was paused, say) cannot overwrite what its successor writes:
// such a Write returns ErrFenced and writes nothing.
//
// etcd bounds a transaction: 128 operations and 1.5 MiB by default
// (etcd's --max-txn-ops and --max-request-bytes). MaxBatchBytes tells the
// parts that group small records how much to put in one Write so that they
// stay under the operation limit; a Write over either limit returns
// store.ErrTooLarge, and one that would exceed etcd's space quota returns
// store.ErrFull, writing nothing in both cases.
package etcdstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/store"
)

// ErrFenced is returned by a Write whose fence failed: the writer no
// longer holds what its writes require, and nothing was written.
var ErrFenced = errors.New("etcdstore: fenced: this writer no longer holds what its writes require; nothing written")

// Options configure a Store.
type Options struct {
	// Client is the etcd client. The Store does not close it.
	Client *clientv3.Client
	// Prefix is the store's namespace in etcd ("sedna/cloud/", say):
	// every key the store writes is below it. Required.
	Prefix string
	// Fence, if set, gives conditions every Write must meet, checked by
	// etcd in the Write's own transaction; a Write they fail returns
	// ErrFenced. It is called once per Write.
	Fence func() []clientv3.Cmp
	// Timeout bounds each request to etcd; default 10 s.
	Timeout time.Duration
	// MaxTxnOps is the etcd cluster's --max-txn-ops (default 128): a
	// Write of more operations is refused before it is sent, and
	// MaxBatchBytes is sized from it.
	MaxTxnOps int
	// ScanPage is how many keys Scan fetches per request; default 256.
	ScanPage int
}

// Store is a store.Store over a namespace of an etcd cluster.
type Store struct {
	o     Options
	data  string // o.Prefix + "d/": the store's keys are below it
	epoch uint64

	closeMu sync.RWMutex
	closed  bool
	ctx     context.Context // cancelled by Close: no request outlives the store
	cancel  context.CancelFunc
}

var _ store.Store = (*Store)(nil)

// Open opens the store kept in o.Prefix of o.Client's cluster, creating
// its epoch if the namespace is new.
func Open(o Options) (*Store, error) {
	if o.Client == nil {
		return nil, errors.New("etcdstore: no etcd client given")
	}
	if o.Prefix == "" {
		return nil, errors.New("etcdstore: no prefix given (the store's namespace in etcd)")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxTxnOps <= 0 {
		o.MaxTxnOps = 128
	}
	if o.ScanPage <= 0 {
		o.ScanPage = 256
	}
	s := &Store{o: o, data: o.Prefix + "d/"}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var e [8]byte
	for binary.BigEndian.Uint64(e[:]) == 0 {
		if _, err := rand.Read(e[:]); err != nil {
			return nil, err
		}
	}
	epochKey := o.Prefix + "epoch"
	ctx, cancel := s.reqCtx()
	defer cancel()
	resp, err := o.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(epochKey), "=", 0)).
		Then(clientv3.OpPut(epochKey, string(e[:]))).
		Else(clientv3.OpGet(epochKey)).Commit()
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("etcdstore: open %q: %w", o.Prefix, mapErr(err))
	}
	s.epoch = binary.BigEndian.Uint64(e[:])
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) != 1 || len(kvs[0].Value) != 8 {
			s.cancel()
			return nil, fmt.Errorf("etcdstore: open %q: its epoch key holds %d values, not one of 8 bytes", o.Prefix, len(kvs))
		}
		s.epoch = binary.BigEndian.Uint64(kvs[0].Value)
	}
	return s, nil
}

func (s *Store) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.o.Timeout)
}

// begin holds the store open for one call; end releases it.
func (s *Store) begin() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

func (s *Store) end() { s.closeMu.RUnlock() }

// Mode is store.Sync: a Write is on a quorum's disks when it returns.
func (s *Store) Mode() store.Mode { return store.Sync }

// Epoch is the random number fixed when the namespace was first opened.
func (s *Store) Epoch() uint64 { return s.epoch }

// Prefix is the store's namespace in etcd.
func (s *Store) Prefix() string { return s.o.Prefix }

// MaxBatchBytes is how many bytes of small records (counting
// store.RecordOverhead each) a caller should group into one Write: sized
// so that such a Write stays under the cluster's operation limit, with
// room for a few operations of the caller's own beside the records.
func (s *Store) MaxBatchBytes() int { return max(1, s.o.MaxTxnOps-16) * store.RecordOverhead }

// Get returns a copy of the value under key, or store.ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	ctx, cancel := s.reqCtx()
	defer cancel()
	resp, err := s.o.Client.Get(ctx, s.data+string(key))
	if err != nil {
		return nil, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, store.ErrNotFound
	}
	return resp.Kvs[0].Value, nil
}

// Scan calls fn for each key with prefix from start, in ascending order.
// Every page is read at the revision of the first, so a Scan sees each
// Write whole or not at all; fn runs with no request open and may write.
func (s *Store) Scan(prefix, start []byte, fn func(key, value []byte) error) error {
	from := s.data + string(prefix)
	end := clientv3.GetPrefixRangeEnd(from)
	if bytes.Compare(start, prefix) > 0 {
		from = s.data + string(start)
	}
	var rev int64
	for {
		kvs, more, r, err := s.page(from, end, rev)
		if err != nil {
			return err
		}
		rev = r
		for _, kv := range kvs {
			if err := fn(kv.Key[len(s.data):], kv.Value); err != nil {
				if errors.Is(err, store.ErrStop) {
					return nil
				}
				return err
			}
		}
		if !more || len(kvs) == 0 {
			return nil
		}
		from = string(kvs[len(kvs)-1].Key) + "\x00"
	}
}

// page reads up to ScanPage keys of [from, end) at rev (0: the latest),
// and says whether there are more and at which revision it read. A
// revision compacted meanwhile is read again at the latest.
func (s *Store) page(from, end string, rev int64) (kvs []*kvPair, more bool, at int64, err error) {
	if err := s.begin(); err != nil {
		return nil, false, 0, err
	}
	defer s.end()
	get := func(rev int64) (*clientv3.GetResponse, error) {
		ctx, cancel := s.reqCtx()
		defer cancel()
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(s.o.ScanPage))}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		return s.o.Client.Get(ctx, from, opts...)
	}
	resp, err := get(rev)
	if errors.Is(err, rpctypes.ErrCompacted) {
		resp, err = get(0)
	}
	if err != nil {
		return nil, false, 0, mapErr(err)
	}
	out := make([]*kvPair, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = &kvPair{Key: kv.Key, Value: kv.Value}
	}
	return out, resp.More, resp.Header.Revision, nil
}

type kvPair struct{ Key, Value []byte }

// Last returns the greatest key with prefix and its value, or
// store.ErrNotFound.
func (s *Store) Last(prefix []byte) (key, value []byte, err error) {
	if err := s.begin(); err != nil {
		return nil, nil, err
	}
	defer s.end()
	ctx, cancel := s.reqCtx()
	defer cancel()
	resp, err := s.o.Client.Get(ctx, s.data+string(prefix), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return nil, nil, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil, store.ErrNotFound
	}
	return resp.Kvs[0].Key[len(s.data):], resp.Kvs[0].Value, nil
}

// Write applies b in one etcd transaction, under the fence if there is
// one. Of several writes of one key in b the last counts, as in every
// store (etcd refuses a transaction that names a key twice).
func (s *Store) Write(b *store.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	last := make(map[string]int, b.Len())
	for i, op := range b.Ops() {
		last[string(op.Key)] = i
	}
	if len(last) > s.o.MaxTxnOps {
		return fmt.Errorf("%w: %d keys in one write, etcd takes %d (its --max-txn-ops)", store.ErrTooLarge, len(last), s.o.MaxTxnOps)
	}
	ops := make([]clientv3.Op, 0, len(last))
	for i, op := range b.Ops() {
		if last[string(op.Key)] != i {
			continue
		}
		k := s.data + string(op.Key)
		if op.Delete {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(op.Value)))
		}
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	ctx, cancel := s.reqCtx()
	defer cancel()
	txn := s.o.Client.Txn(ctx)
	if s.o.Fence != nil {
		txn = txn.If(s.o.Fence()...)
	}
	resp, err := txn.Then(ops...).Commit()
	if err != nil {
		if noSpace(err) && s.holds(b, last) {
			return nil
		}
		return mapErr(err)
	}
	if !resp.Succeeded {
		return ErrFenced
	}
	return nil
}

// noSpace reports whether err is etcd's "database space exceeded".
func noSpace(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace)
}

// holds reports whether the store reads as b wrote it: every key b puts
// holds its value, every key it deletes is gone. etcd answers "database
// space exceeded" also for the transaction that crossed the quota, which
// it has applied (the entry was committed to its log; it raises the alarm
// as it applies it): a Write taken for refused there had written
// everything (CI: the key of a write that returned ErrFull was there). A
// transaction applies whole or not at all, so if every key reads as b
// wrote it (and the fence, if any, holds), the store holds b (or held it
// already); if the keys cannot be read, the write counts as refused.
func (s *Store) holds(b *store.Batch, last map[string]int) bool {
	gets := make([]clientv3.Op, 0, len(last))
	want := make([]*store.Op, 0, len(last))
	for i, op := range b.Ops() {
		if last[string(op.Key)] != i {
			continue
		}
		gets = append(gets, clientv3.OpGet(s.data+string(op.Key)))
		want = append(want, &b.Ops()[i])
	}
	ctx, cancel := s.reqCtx()
	defer cancel()
	txn := s.o.Client.Txn(ctx)
	if s.o.Fence != nil {
		txn = txn.If(s.o.Fence()...) // and the writer still holds what its writes require
	}
	resp, err := txn.Then(gets...).Commit()
	if err != nil || !resp.Succeeded || len(resp.Responses) != len(want) {
		return false
	}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if want[i].Delete {
			if len(kvs) != 0 {
				return false
			}
		} else if len(kvs) != 1 || !bytes.Equal(kvs[0].Value, want[i].Value) {
			return false
		}
	}
	return true
}

// Close ends the store's requests; later calls return store.ErrClosed.
// The client stays open.
func (s *Store) Close() error {
	s.cancel()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closed = true
	return nil
}

// mapErr turns etcd's errors into the store's where they mean the same.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrNoSpace), errors.Is(err, rpctypes.ErrGRPCNoSpace):
		return fmt.Errorf("%w: etcd's space quota is exhausted (%v)", store.ErrFull, err)
	case errors.Is(err, rpctypes.ErrTooManyOps), errors.Is(err, rpctypes.ErrGRPCTooManyOps),
		errors.Is(err, rpctypes.ErrRequestTooLarge), errors.Is(err, rpctypes.ErrGRPCRequestTooLarge):
		return fmt.Errorf("%w: %v", store.ErrTooLarge, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%w (%v)", store.ErrClosed, err)
	}
	return fmt.Errorf("etcdstore: %w", err)
}
