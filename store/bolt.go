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
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltBucket holds every key of a Bolt store.
var boltBucket = []byte("kv")

// boltScanChunk is how many entries a Scan copies out of one read
// transaction before it calls back: the callback runs with no transaction
// open, so it may write to the store (a bbolt writer that grows the file
// waits for every reader to finish).
const boltScanChunk = 256

// Bolt is a Store over one bbolt file (go.etcd.io/bbolt): a B+tree in one
// memory-mapped file, copy-on-write pages and a meta page written last, so
// a killed process leaves the last committed transaction. It is the
// backend of 32-bit builds, where Badger is refused; its memory map is
// sized to the file, not to a fixed arena.
type Bolt struct {
	db    *bolt.DB
	dir   string
	mode  Mode
	epoch uint64
	guard *diskGuard

	closeMu sync.RWMutex // held for writing by Close: no call starts after
	closed  bool
}

// OpenBolt opens (or creates) the Bolt store in o.Dir (its file is
// o.Dir/store.bolt). Of Options it reads Dir, Mode, MinFreeBytes and
// Logger. In Sync mode concurrent Writes share a transaction and an
// fsync (bbolt's Batch); in Process mode a commit is written to the
// operating system without an fsync.
func OpenBolt(o Options) (*Bolt, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("store: no directory given")
	}
	if o.Mode == "" {
		o.Mode = Process
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return nil, err
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 32 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", mapErr(err))
	}
	db, err := bolt.Open(filepath.Join(o.Dir, "store.bolt"), 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: o.Mode == Process,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", o.Dir, mapErr(err))
	}
	db.MaxBatchDelay = time.Millisecond
	s := &Bolt{db: db, dir: o.Dir, mode: o.Mode, guard: newDiskGuard(o.Dir, o.MinFreeBytes, freeBytes, o.Logger)}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(boltBucket)
		if err != nil {
			return err
		}
		if v := b.Get(epochKey); len(v) == 8 {
			s.epoch = binary.BigEndian.Uint64(v)
			return nil
		}
		var e [8]byte
		for s.epoch == 0 {
			if _, err := rand.Read(e[:]); err != nil {
				return err
			}
			s.epoch = binary.BigEndian.Uint64(e[:])
		}
		return b.Put(epochKey, e[:])
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: %s: %w", o.Dir, mapErr(err))
	}
	if o.Mode == Process {
		// The epoch is on disk before anything is written under it.
		if err := db.Sync(); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: %s: %w", o.Dir, mapErr(err))
		}
	}
	return s, nil
}

// Mode is the durability of Write.
func (s *Bolt) Mode() Mode { return s.mode }

// Epoch is the random number fixed when the store was created.
func (s *Bolt) Epoch() uint64 { return s.epoch }

// Dir is the store's directory.
func (s *Bolt) Dir() string { return s.dir }

// MaxBatchBytes is the bytes of small records a caller should group into
// one Write: bbolt takes up to MaxWriteBytes, but a board's memory is what
// bounds a batch, so the same as Badger's default (about 450 KiB).
func (s *Bolt) MaxBatchBytes() int { return 450 << 10 }

func (s *Bolt) view(fn func(b *bolt.Bucket) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return mapErr(s.db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(boltBucket)) }))
}

// Get returns a copy of the value under key.
func (s *Bolt) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.view(func(b *bolt.Bucket) error {
		v := b.Get(key)
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

// Scan calls fn for keys with prefix, from start, in ascending order;
// entries are copied out of a read transaction a chunk at a time, and fn
// runs outside it.
func (s *Bolt) Scan(prefix, start []byte, fn func(key, value []byte) error) error {
	seek := prefix
	if bytes.Compare(start, prefix) > 0 {
		seek = start
	}
	first := true
	for {
		var keys, vals [][]byte
		err := s.view(func(b *bolt.Bucket) error {
			c := b.Cursor()
			k, v := c.Seek(seek)
			if !first && k != nil && bytes.Equal(k, seek) {
				k, v = c.Next() // the last key of the previous chunk
			}
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(keys) < boltScanChunk; k, v = c.Next() {
				if isMeta(k, prefix) {
					continue
				}
				keys, vals = append(keys, append([]byte{}, k...)), append(vals, append([]byte{}, v...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range keys {
			if err := fn(keys[i], vals[i]); err != nil {
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
		}
		if len(keys) < boltScanChunk {
			return nil
		}
		seek, first = keys[len(keys)-1], false
	}
}

// Last returns the greatest key with prefix and a copy of its value.
func (s *Bolt) Last(prefix []byte) (key, value []byte, err error) {
	err = s.view(func(b *bolt.Bucket) error {
		c := b.Cursor()
		var k, v []byte
		if succ := successor(prefix); succ == nil {
			k, v = c.Last()
		} else if k, _ = c.Seek(succ); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			if isMeta(k, prefix) {
				continue
			}
			key, value = append([]byte{}, k...), append([]byte{}, v...)
			return nil
		}
		return ErrNotFound
	})
	return key, value, err
}

// Write applies b atomically: in one transaction of its own, or, in Sync
// mode, in one shared with the Writes waiting beside it (one fsync).
func (s *Bolt) Write(b *Batch) error {
	if b.Len() == 0 {
		return nil
	}
	if b.Size() > MaxWriteBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, b.Size(), MaxWriteBytes)
	}
	if err := s.guard.check(b.Size(), b.puts()); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	apply := func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltBucket)
		for _, op := range b.ops {
			var err error
			if op.Delete {
				err = bk.Delete(op.Key)
			} else {
				err = bk.Put(op.Key, op.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if s.mode == Sync && !b.lazy {
		return mapErr(s.db.Batch(apply))
	}
	return mapErr(s.db.Update(apply))
}

// Close releases the store.
func (s *Bolt) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return mapErr(s.db.Close())
}

// Open opens the process's store in o.Dir with the platform's backend:
// Badger on 64-bit builds, Bolt on 32-bit ones (where Badger is refused).
// A directory keeps the backend that made it: a Bolt store is opened as
// one on any build, and a Badger store on a 32-bit build is refused, saying
// so.
func Open(o Options) (Store, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("store: no directory given")
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "store.bolt")); err == nil {
		return OpenBolt(o)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "MANIFEST")); err == nil || strconv.IntSize == 64 {
		return OpenBadger(o)
	}
	return OpenBolt(o)
}
