package store

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// A full disk does not give Badger an error to return: it writes its
// memtable log, value log and tables through memory maps of files that are
// created sparse, so the write that finds no free block faults (SIGBUS) and
// the process dies. diskGuard refuses writes while the file system's free
// space is under a reserve, so that a full disk is ErrFull for the writer
// (a broker withholds its PUBACK; the sender keeps the message) and the
// background writes Badger does on its own (memtable flushes, compactions)
// still find room.
type diskGuard struct {
	dir     string
	reserve int64
	statfs  func(dir string) (int64, error)

	written atomic.Int64 // bytes written since the last reading
	free    atomic.Int64 // at the last reading
	at      atomic.Int64 // unix nanos of the last reading
	mu      sync.Mutex   // one reading at a time
	full    atomic.Bool  // the last check refused (for the log)
	log     *slog.Logger
}

// guardRefresh bounds how stale a reading of the free space may be, in
// bytes written and in time.
const (
	guardRefreshBytes = 256 << 10
	guardRefreshAge   = 100 * time.Millisecond
)

func newDiskGuard(dir string, reserve int64, statfs func(string) (int64, error), log *slog.Logger) *diskGuard {
	if reserve <= 0 || statfs == nil {
		return nil
	}
	g := &diskGuard{dir: dir, reserve: reserve, statfs: statfs, log: log}
	g.free.Store(-1)
	return g
}

// check says whether a batch of size bytes may be written: ErrFull if the
// free space, less what was written since it was read and size, is under
// the reserve. Deletions (put false) only need a quarter of it, so that a
// full store can still forget what it sent and free room.
func (g *diskGuard) check(size int, put bool) error {
	if g == nil {
		return nil
	}
	free := g.reading()
	if free < 0 {
		return nil // the file system does not say: no guard
	}
	need := g.reserve
	if !put {
		need /= 4
	}
	if free-g.written.Load()-int64(size) < need {
		// Read again before refusing: space may have been freed.
		if free = g.read(); free-int64(size) < need {
			if !g.full.Swap(true) && g.log != nil {
				g.log.Error("store: disk full: refusing writes until space is freed", "dir", g.dir, "free", free, "reserve", need)
			}
			return fmt.Errorf("%w: %d bytes free in %s, under the reserve of %d bytes", ErrFull, free, g.dir, need)
		}
	}
	if g.full.Swap(false) && g.log != nil {
		g.log.Info("store: disk has room again: writing", "dir", g.dir, "free", free)
	}
	g.written.Add(int64(size))
	return nil
}

// room says whether size bytes more than the reserve are free: the value
// log's garbage collection, which writes a file's live data anew before it
// deletes the old one, runs only then.
func (g *diskGuard) room(size int64) bool {
	if g == nil {
		return true
	}
	free := g.read()
	return free < 0 || free-size >= g.reserve
}

// reading is the free space, read again when the last reading is stale.
func (g *diskGuard) reading() int64 {
	if g.written.Load() < guardRefreshBytes && time.Since(time.Unix(0, g.at.Load())) < guardRefreshAge {
		return g.free.Load()
	}
	if !g.mu.TryLock() {
		return g.free.Load() // another writer is reading it
	}
	defer g.mu.Unlock()
	return g.readLocked()
}

func (g *diskGuard) read() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readLocked()
}

func (g *diskGuard) readLocked() int64 {
	free, err := g.statfs(g.dir)
	if err != nil {
		free = -1
	}
	g.written.Store(0)
	g.free.Store(free)
	g.at.Store(time.Now().UnixNano())
	return free
}
