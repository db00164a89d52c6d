package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options configure a Badger store. Zero fields take the defaults, which
// are sized for a small edge device (a few tens of MB of memory), not for a
// server as Badger's own defaults are.
type Options struct {
	// Dir holds the database; it is created if missing.
	Dir string
	// Mode is the durability of Write; default Process.
	Mode Mode
	// MemTableBytes is the size of one memtable, default 4 MiB. A single
	// transaction holds at most 15% of it, so it also bounds a batch.
	MemTableBytes int64
	// BlockCacheBytes is the read cache, default 2 MiB.
	BlockCacheBytes int64
	// ValueLogFileBytes is the size of one value-log file, default 64 MiB.
	ValueLogFileBytes int64
	// GCInterval is how often value-log garbage collection runs, default
	// 5 minutes; negative disables it. It is skipped while less than
	// MinFreeBytes plus a value-log file is free.
	GCInterval time.Duration
	// MinFreeBytes is the free space the store leaves on its file system:
	// writes that would go under it fail with ErrFull (deletions only under
	// a quarter of it). Badger writes through memory maps, so on a disk that
	// is really full it faults and the process dies; the reserve keeps room
	// for the memtable flushes and compactions it does on its own. Default
	// 32 MiB; negative disables the guard.
	MinFreeBytes int64
	// Logger receives Badger's warnings and errors; default slog.Default().
	Logger *slog.Logger
}

// metaPrefix holds the store's own keys; views made by Sub never reach it
// because their prefixes are printable.
var metaPrefix = []byte("\x00meta/")

var epochKey = append(append([]byte{}, metaPrefix...), "epoch"...)

// Badger is a Store over one Badger database.
type Badger struct {
	db     *badger.DB
	dir    string
	mode   Mode
	epoch  uint64
	log    *slog.Logger
	guard  *diskGuard
	vlog   int64 // bytes of one value-log file
	budget int   // memtable cost one group commit may take (see cost)
	// records bounds the records of one write: Badger counts a skiplist
	// node for each (RecordOverhead).
	records int
	count   int // writes one group commit may take
	bytes   int // bytes of batches one group commit joins

	reqs    chan *request
	closing chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	closeMu sync.RWMutex // held for writing by Close: no Write starts after
	closed  bool
	temp    string // a directory of OpenTemp's, removed by Close
}

type request struct {
	b    *Batch
	done chan error
}

var reqPool = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

// removeEmptyMemtables deletes memtable files of zero bytes: a process
// killed just after creating one leaves it so, and Badger (v4.9.6) then
// refuses to open the store ("while opening fid: N err: Create a new
// file"). An empty memtable file holds no write, so nothing is lost.
func removeEmptyMemtables(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".mem" {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("store: remove empty memtable %s: %w", p, err)
		}
		log.Warn("store: removed an empty memtable file left by a killed process", "file", p)
	}
	return nil
}

// OpenBadger opens (or creates) the Badger store in o.Dir.
//
// Badger v4 is refused on 32-bit platforms: data written before a reopen
// could not be read back there (reproduced on 386 and armv7; see
// docs/ARCHITECTURE.md). A second backend behind Store will serve them.
func OpenBadger(o Options) (*Badger, error) {
	if strconv.IntSize == 32 {
		return nil, fmt.Errorf("store: the Badger backend is not safe on 32-bit platforms (data written before a reopen cannot be read back); use a 64-bit build")
	}
	if o.Dir == "" {
		return nil, fmt.Errorf("store: no directory given")
	}
	if o.Mode == "" {
		o.Mode = Process
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return nil, err
	}
	if o.MemTableBytes <= 0 {
		o.MemTableBytes = 4 << 20
	}
	if o.BlockCacheBytes <= 0 {
		o.BlockCacheBytes = 2 << 20
	}
	if o.ValueLogFileBytes <= 0 {
		o.ValueLogFileBytes = 64 << 20
	}
	if o.GCInterval == 0 {
		o.GCInterval = 5 * time.Minute
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 32 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := removeEmptyMemtables(o.Dir, o.Logger); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(o.Dir).
		WithLogger(badgerLogger{o.Logger}).
		WithMemTableSize(o.MemTableBytes).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(6).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
		WithNumCompactors(2).
		WithBlockCacheSize(o.BlockCacheBytes).
		WithIndexCacheSize(0).
		WithValueLogFileSize(o.ValueLogFileBytes).
		WithValueThreshold(valueThreshold).
		WithCompression(options.None).
		WithDetectConflicts(false).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithSyncWrites(false) // Sync mode calls db.Sync once per group commit
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", o.Dir, mapErr(err))
	}
	// Badger refuses a transaction whose memtable cost is over 15% of a
	// memtable: a key and a small value count whole, a value from
	// valueThreshold up counts as the pointer to where it is in the value
	// log (cost). Keep a margin for its per-entry overhead.
	maxBatch := int(o.MemTableBytes * 15 / 100)
	s := &Badger{
		db: db, dir: o.Dir, mode: o.Mode, log: o.Logger, vlog: o.ValueLogFileBytes,
		guard:   newDiskGuard(o.Dir, o.MinFreeBytes, freeBytes, o.Logger),
		budget:  maxBatch * 3 / 4,
		records: maxBatch / RecordOverhead,
		count:   maxBatch / 400,
		bytes:   maxGroupBytes,
		reqs:    make(chan *request, 1024),
		closing: make(chan struct{}),
	}
	if err := s.loadEpoch(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.commitLoop()
	if o.GCInterval > 0 {
		s.wg.Add(1)
		go s.gcLoop(o.GCInterval)
	}
	return s, nil
}

func (s *Badger) loadEpoch() error {
	v, err := s.Get(epochKey)
	if err == nil && len(v) == 8 {
		s.epoch = binary.BigEndian.Uint64(v)
		return nil
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	var b [8]byte
	for s.epoch == 0 {
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("store: epoch: %w", err)
		}
		s.epoch = binary.BigEndian.Uint64(b[:])
	}
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(epochKey, b[:]) })
	if err == nil {
		err = s.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("store: write epoch: %w", mapErr(err))
	}
	return nil
}

// valueThreshold is the size from which Badger keeps a value in its value
// log rather than in the LSM tree.
const valueThreshold = 1 << 10

// maxGroupBytes bounds the bytes of the batches one group commit joins;
// one batch may be larger.
const maxGroupBytes = 16 << 20

// MaxWriteBytes bounds one Write: what any part of a process may write at
// once, a message of the project's largest (1 MiB) with its record and
// the state written with it included.
const MaxWriteBytes = 32 << 20

// cost is what b counts against Badger's limit of one transaction.
func cost(b *Batch) int {
	n := 0
	for _, op := range b.ops {
		n += len(op.Key) + 12
		if len(op.Value) < valueThreshold {
			n += len(op.Value)
		} else {
			n += 14 // a pointer into the value log
		}
	}
	return n
}

// MaxBatchBytes is how many bytes of small values (under 1 KiB) one Write
// takes: callers that group many small records cut their batches there. A
// batch of large values may be larger, up to MaxWriteBytes: Badger keeps
// those in its value log, and only a pointer counts against its
// transaction.
func (s *Badger) MaxBatchBytes() int { return s.budget }

// Mode is the durability of Write.
func (s *Badger) Mode() Mode { return s.mode }

// Epoch is the random number fixed when the store was created.
func (s *Badger) Epoch() uint64 { return s.epoch }

// Get returns a copy of the value under key.
func (s *Badger) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	return out, err
}

// Scan calls fn for keys with prefix, from start, in ascending order.
func (s *Badger) Scan(prefix, start []byte, fn func(key, value []byte) error) error {
	return s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		seek := prefix
		if bytes.Compare(start, prefix) > 0 {
			seek = start
		}
		for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			if isMeta(item.Key(), prefix) {
				continue
			}
			err := item.Value(func(v []byte) error { return fn(item.Key(), v) })
			if errors.Is(err, ErrStop) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Last returns the greatest key with prefix and a copy of its value.
func (s *Badger) Last(prefix []byte) (key, value []byte, err error) {
	err = s.view(func(txn *badger.Txn) error {
		succ := successor(prefix)
		opts := badger.IteratorOptions{Prefix: prefix, Reverse: true}
		if succ == nil {
			// Badger's reverse Rewind stops at the prefix itself; with no
			// successor the greatest key of all is the candidate.
			opts.Prefix = nil
		}
		it := txn.NewIterator(opts)
		defer it.Close()
		if succ != nil {
			it.Seek(succ)
		} else {
			it.Rewind()
		}
		for ; it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			if isMeta(item.Key(), prefix) {
				continue
			}
			key = item.KeyCopy(nil)
			value, err = item.ValueCopy(nil)
			return err
		}
		return ErrNotFound
	})
	return key, value, err
}

// isMeta reports whether key is one of the store's own keys that a scan of
// prefix should not show.
func isMeta(key, prefix []byte) bool {
	return bytes.HasPrefix(key, metaPrefix) && !bytes.HasPrefix(prefix, metaPrefix)
}

// successor returns the smallest key greater than every key with prefix,
// or nil if there is none (prefix empty or all 0xff).
func successor(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			s := append([]byte{}, prefix[:i+1]...)
			s[i]++
			return s
		}
	}
	return nil
}

func (s *Badger) view(fn func(*badger.Txn) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return mapErr(s.db.View(fn))
}

// Write applies b atomically. In Sync mode concurrent Writes are committed
// together in one transaction and one fsync by the committer goroutine; in
// Process mode (and for lazy batches) the caller commits its own
// transaction, and Badger's writer batches concurrent ones.
func (s *Badger) Write(b *Batch) error {
	if b.Len() == 0 {
		return nil
	}
	if c := cost(b); c > s.budget || b.Size() > MaxWriteBytes {
		return fmt.Errorf("%w: %d bytes (%d in the memtable), limits %d and %d", ErrTooLarge, b.Size(), c, MaxWriteBytes, s.budget)
	}
	if b.Len() > s.records {
		return fmt.Errorf("%w: %d records, at most %d in one write (store.RecordOverhead)", ErrTooLarge, b.Len(), s.records)
	}
	if err := s.guard.check(b.Size(), b.puts()); err != nil {
		return err
	}
	if s.mode == Process || b.lazy {
		s.closeMu.RLock()
		defer s.closeMu.RUnlock()
		if s.closed {
			return ErrClosed
		}
		return s.commitOne(b)
	}
	r := reqPool.Get().(*request)
	r.b = b
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		reqPool.Put(r)
		return ErrClosed
	}
	s.reqs <- r
	s.closeMu.RUnlock()
	err := <-r.done
	r.b = nil
	reqPool.Put(r)
	return err
}

// commitLoop is the only writer of the database. It takes every request
// waiting, commits them in one transaction and answers them all.
func (s *Badger) commitLoop() {
	defer s.wg.Done()
	var group []*request
	var carry *request
	for {
		if carry != nil {
			group, carry = append(group[:0], carry), nil
		} else {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					return
				}
				group = append(group[:0], r)
			case <-s.closing:
				// Close holds closeMu, so no Write is between its check and
				// its send: drain what was queued, then stop.
				for {
					select {
					case r := <-s.reqs:
						r.done <- s.commit([]*request{r})
					default:
						return
					}
				}
			}
		}
		size, bytes, count := cost(group[0].b), group[0].b.Size(), group[0].b.Len()
	more:
		for size < s.budget && count < s.count && bytes < s.bytes {
			select {
			case r := <-s.reqs:
				if size+cost(r.b) > s.budget || count+r.b.Len() > s.count || bytes+r.b.Size() > s.bytes {
					carry = r
					break more
				}
				group = append(group, r)
				size += cost(r.b)
				bytes += r.b.Size()
				count += r.b.Len()
			default:
				break more
			}
		}
		err := s.commit(group)
		for _, r := range group {
			r.done <- err
		}
	}
}

// commitOne commits one batch in its own transaction, without fsync.
func (s *Badger) commitOne(b *Batch) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := s.apply(txn, b); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", mapErr(err))
	}
	return nil
}

func (s *Badger) apply(txn *badger.Txn, b *Batch) error {
	for _, op := range b.ops {
		var err error
		if op.Delete {
			err = txn.Delete(op.Key)
		} else {
			err = txn.Set(op.Key, op.Value)
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			return fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		if err != nil {
			return fmt.Errorf("store: write: %w", mapErr(err))
		}
	}
	return nil
}

func (s *Badger) commit(group []*request) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, r := range group {
		if err := s.apply(txn, r.b); err != nil {
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", mapErr(err))
	}
	if s.mode == Sync {
		if err := s.db.Sync(); err != nil {
			return fmt.Errorf("store: sync: %w", mapErr(err))
		}
	}
	return nil
}

func (s *Badger) gcLoop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			s.RunGC()
		}
	}
}

// RunGC rewrites value-log files that are at least half garbage, until none
// is left. It runs on its own every Options.GCInterval.
func (s *Badger) RunGC() int {
	n := 0
	for {
		select {
		case <-s.closing:
			return n
		default:
		}
		if !s.guard.room(s.vlog) {
			s.log.Warn("store: value-log gc skipped: too little free space to rewrite a file", "needs", s.vlog)
			return n
		}
		if err := s.db.RunValueLogGC(0.5); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.Warn("store: value-log gc", "error", err)
			}
			return n
		}
		n++
	}
}

// Size returns the bytes the database occupies on disk: LSM tree and value log.
func (s *Badger) Size() (lsm, vlog int64) { return s.db.Size() }

// Close stops the store, finishing writes already queued.
func (s *Badger) Close() error {
	var err error
	s.once.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		close(s.closing)
		s.closeMu.Unlock()
		s.wg.Wait()
		err = s.db.Close()
		if s.temp != "" {
			err = errors.Join(err, os.RemoveAll(s.temp))
		}
	})
	return err
}

// Dir is the directory of the store's files.
func (s *Badger) Dir() string { return s.dir }

// OpenTemp opens a store in a new directory under the system's temporary
// directory (o.Dir is not used), which Close removes: for examples,
// simulations and tools that keep nothing.
func OpenTemp(o Options) (*Badger, error) {
	dir, err := os.MkdirTemp("", "sedna-store-")
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	s, err := OpenBadger(o)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	s.temp = dir
	return s, nil
}

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", ErrFull, err)
	}
	if errors.Is(err, badger.ErrDBClosed) {
		return ErrClosed
	}
	return err
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.l.Error("badger: " + trim(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Warningf(f string, a ...any) {
	msg := trim(fmt.Sprintf(f, a...))
	// Badger's cache statistics are advice for servers, not warnings here:
	// the small cache is chosen.
	if strings.Contains(msg, "Block cache might be too small") || strings.Contains(msg, "Cache life expectancy") {
		b.l.Debug("badger: " + msg)
		return
	}
	b.l.Warn("badger: " + msg)
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}

func trim(s string) string { return string(bytes.TrimRight([]byte(s), "\n")) }
