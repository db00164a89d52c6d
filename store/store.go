// Package store is the one local store of a Sedna-Go process: a small
// ordered key-value interface, implemented over Badger (and over bbolt on 32-bit builds), shared by every
// part of the process (queues, inboxes, dedup state, sessions, samples,
// models) through key prefixes.
//
// A process opens one Store and hands each part a Sub view with its own
// prefix. Writes are atomic batches; concurrent writers are group-committed
// into one transaction (and, in Sync mode, one fsync). Large values go
// through PutBlob, which splits them into chunks that fit a transaction.
//
// Write modes say what a returned Write promises:
//
//   - Sync: the batch is on disk (fsync) before Write returns; it survives
//     a power cut.
//   - Process: the batch is in the operating system's page cache before
//     Write returns; it survives the process being killed (SIGKILL, panic,
//     OOM kill) but not a power cut or kernel crash.
//
// The package owns no policy: how much a queue may hold, what to drop when
// full, how long to keep things, belong to the parts that use it.
package store

import (
	"errors"
	"fmt"
)

// Errors of every Store.
var (
	// ErrNotFound: no value under the key.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrFull: the disk is full; nothing of the batch was written.
	ErrFull = errors.New("store: disk full")
	// ErrTooLarge: one batch is larger than a transaction may be.
	ErrTooLarge = errors.New("store: batch too large for one transaction")
	// ErrStop may be returned by a Scan callback to end the scan early
	// without an error.
	ErrStop = errors.New("store: stop scan")
)

// Mode is the durability promise of Write.
type Mode string

// The write modes.
const (
	// Sync: fsync before Write returns; survives a power cut.
	Sync Mode = "sync"
	// Process: written to the OS before Write returns; survives a killed
	// process, not a power cut.
	Process Mode = "process"
)

// ParseMode returns the mode named s.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Sync, Process:
		return Mode(s), nil
	}
	return "", fmt.Errorf("store: unknown write mode %q (want sync or process)", s)
}

// Store is an ordered key-value store. Keys and values are bytes; keys sort
// bytewise. Slices passed to callbacks are valid only during the callback.
// Every method is safe for concurrent use.
type Store interface {
	// Get returns a copy of the value under key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for each key with prefix that is >= start (start may
	// be nil), in ascending order, until fn returns an error. ErrStop ends
	// the scan and Scan returns nil.
	Scan(prefix, start []byte, fn func(key, value []byte) error) error
	// Last returns the greatest key with prefix and its value, or
	// ErrNotFound.
	Last(prefix []byte) (key, value []byte, err error)
	// Write applies the batch atomically with the store's Mode.
	Write(b *Batch) error
	// Mode is the durability of Write.
	Mode() Mode
	// Epoch is a random number fixed when the store was created; a wiped
	// store gets a new one.
	Epoch() uint64
	// Close releases the store. Views made by Sub are closed with it.
	Close() error
}

// Batch is a list of writes applied atomically by Store.Write.
type Batch struct {
	ops  []Op
	size int
	lazy bool
}

// SetLazy marks the batch as one whose loss in a power cut costs nothing
// but repeated work (deleting what is done, say): in Sync mode it is
// written without waiting for an fsync. It stays atomic.
func (b *Batch) SetLazy() { b.lazy = true }

// Lazy reports whether SetLazy was called.
func (b *Batch) Lazy() bool { return b.lazy }

// Op is one write of a Batch: a put, or a delete if Delete is set.
type Op struct {
	Key, Value []byte
	Delete     bool
}

// Put adds a put of value under key. The batch keeps the slices: do not
// change them until Write returns.
func (b *Batch) Put(key, value []byte) {
	b.ops = append(b.ops, Op{Key: key, Value: value})
	b.size += len(key) + len(value) + 16
}

// Delete adds a delete of key.
func (b *Batch) Delete(key []byte) {
	b.ops = append(b.ops, Op{Key: key, Delete: true})
	b.size += len(key) + 16
}

// Len is the number of writes in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// puts says whether b writes a value (rather than only deleting).
func (b *Batch) puts() bool {
	for _, op := range b.ops {
		if !op.Delete {
			return true
		}
	}
	return false
}

// Size is the approximate number of bytes the batch writes.
func (b *Batch) Size() int { return b.size }

// Ops returns the writes of the batch, for backends.
func (b *Batch) Ops() []Op { return b.ops }

// Reset empties the batch for reuse.
func (b *Batch) Reset() { b.ops, b.size, b.lazy = b.ops[:0], 0, false }

// DeletePrefix deletes every key with prefix, a write's worth at a time (at
// most a thousand keys, fewer where the store's writes are small: a large
// prefix is not one batch held in memory).
func DeletePrefix(s Store, prefix []byte) error {
	budget := BatchBudget(s, 512<<10)
	for {
		var b Batch
		err := s.Scan(prefix, nil, func(k, _ []byte) error {
			b.Delete(append([]byte(nil), k...))
			if b.Len() == 1000 || b.Size()+RecordOverhead*(b.Len()+1) > budget {
				return ErrStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrStop) {
			return err
		}
		if b.Len() == 0 {
			return nil
		}
		if err := s.Write(&b); err != nil {
			return err
		}
	}
}

// Sub returns a view of s in which every key is prefixed with prefix. Views
// of views nest. Closing a view does nothing; close the parent.
func Sub(s Store, prefix string) Store {
	if v, ok := s.(*view); ok {
		return &view{parent: v.parent, prefix: v.prefix + prefix}
	}
	return &view{parent: s, prefix: prefix}
}

// Split returns the store a view was made from and the view's whole key
// prefix (s and "" if s is not a view), so a part can put its own keys and
// another part's keys, made absolute, into one atomic batch.
func Split(s Store) (root Store, prefix string) {
	if v, ok := s.(*view); ok {
		return v.parent, v.prefix
	}
	return s, ""
}

// RecordOverhead is what a caller filling a write up to BatchBudget counts
// for each record beside its key and value: about the skiplist node Badger
// spends on it, which bounds how many records one transaction takes (a
// write of many tiny records or deletions is refused for their number,
// not their bytes).
const RecordOverhead = 100

// BatchBudget is how many bytes a caller that groups many small records
// should put in one Write of s, counting each record's key, its value and
// RecordOverhead: s's MaxBatchBytes where its store says one (a view asks
// the store it is of), never more than ceiling. An edge node's Badger
// store, with its 1 MiB memtables, takes about 118 KiB.
func BatchBudget(s Store, ceiling int) int {
	root, _ := Split(s)
	if m, ok := root.(interface{ MaxBatchBytes() int }); ok {
		return max(1, min(ceiling, m.MaxBatchBytes()))
	}
	return ceiling
}

type view struct {
	parent Store
	prefix string
}

func (v *view) key(k []byte) []byte {
	out := make([]byte, 0, len(v.prefix)+len(k))
	return append(append(out, v.prefix...), k...)
}

func (v *view) Get(key []byte) ([]byte, error) { return v.parent.Get(v.key(key)) }

func (v *view) Scan(prefix, start []byte, fn func(key, value []byte) error) error {
	var s []byte
	if start != nil {
		s = v.key(start)
	}
	n := len(v.prefix)
	return v.parent.Scan(v.key(prefix), s, func(k, val []byte) error { return fn(k[n:], val) })
}

func (v *view) Last(prefix []byte) ([]byte, []byte, error) {
	k, val, err := v.parent.Last(v.key(prefix))
	if err != nil {
		return nil, nil, err
	}
	return k[len(v.prefix):], val, nil
}

func (v *view) Write(b *Batch) error {
	nb := &Batch{ops: make([]Op, len(b.ops)), size: b.size, lazy: b.lazy}
	for i, op := range b.ops {
		nb.ops[i] = Op{Key: v.key(op.Key), Value: op.Value, Delete: op.Delete}
	}
	return v.parent.Write(nb)
}

func (v *view) Mode() Mode    { return v.parent.Mode() }
func (v *view) Epoch() uint64 { return v.parent.Epoch() }
func (v *view) Close() error  { return nil }

// Check reads a key of no one's from st: nil when the store answers
// (ErrNotFound is an answer), its error when it does not (closed, a
// failing disk), for a process's readiness.
func Check(st Store) error {
	if st == nil {
		return errors.New("store: not open")
	}
	if _, err := st.Get([]byte("\x00ready")); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}
