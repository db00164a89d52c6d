package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/store/storetest"
)

func openBadger(mode store.Mode) storetest.Opener {
	return func(t *testing.T, dir string) store.Store {
		s, err := store.OpenBadger(store.Options{Dir: dir, Mode: mode, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestBadgerConformanceProcess(t *testing.T) { storetest.Run(t, openBadger(store.Process)) }
func TestBadgerConformanceSync(t *testing.T)    { storetest.Run(t, openBadger(store.Sync)) }

func TestBadgerRefusesOversizedBatch(t *testing.T) {
	s, err := store.OpenBadger(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b store.Batch
	b.Put([]byte("big"), make([]byte, store.MaxWriteBytes+1))
	if err := s.Write(&b); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
	var small store.Batch
	for i := 0; i <= s.MaxBatchBytes()/500; i++ {
		small.Put([]byte(fmt.Sprintf("s/%06d", i)), make([]byte, 500))
	}
	if err := s.Write(&small); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("a batch of small values over one transaction: %v", err)
	}
	// A value of a message of the project's largest, with its record and
	// a few writes beside it, fits one write (the limit once cut messages
	// at 471,858 bytes, under the 1 MiB the docs promised).
	var msg store.Batch
	msg.Put([]byte("m/1"), make([]byte, 1<<20+4096))
	msg.Put([]byte("window"), make([]byte, 200))
	if err := s.Write(&msg); err != nil {
		t.Fatalf("a 1 MiB message: %v", err)
	}
	if v, err := s.Get([]byte("m/1")); err != nil || len(v) != 1<<20+4096 {
		t.Fatalf("read back: %d bytes, %v", len(v), err)
	}
	// Many small writes that together exceed one transaction still land,
	// in several group commits.
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				var b store.Batch
				b.Put([]byte(fmt.Sprintf("g/%d/%d", w, i)), bytes.Repeat([]byte{1}, s.MaxBatchBytes()/8))
				if err := s.Write(&b); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
}

func TestBadgerValueLogGC(t *testing.T) {
	s, err := store.OpenBadger(store.Options{Dir: t.TempDir(), ValueLogFileBytes: 1 << 20, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := bytes.Repeat([]byte{7}, 64<<10)
	for round := 0; round < 6; round++ {
		for i := 0; i < 32; i++ {
			var b store.Batch
			b.Put([]byte(fmt.Sprintf("v/%d", i)), val)
			if err := s.Write(&b); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, before := s.Size()
	// Badger needs the overwritten versions to be discardable: GC can only
	// reclaim files older than the active one.
	s.RunGC()
	_, after := s.Size()
	t.Logf("value log %d -> %d bytes", before, after)
	for i := 0; i < 32; i++ {
		if v, err := s.Get([]byte(fmt.Sprintf("v/%d", i))); err != nil || !bytes.Equal(v, val) {
			t.Fatalf("value %d after GC: %v", i, err)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []string{"sync", "process"} {
		if _, err := store.ParseMode(m); err != nil {
			t.Error(err)
		}
	}
	if _, err := store.ParseMode("none"); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Mode: "fast"}); err == nil {
		t.Error("OpenBadger accepted an unknown mode")
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, mode := range []store.Mode{store.Process, store.Sync} {
		for _, writers := range []int{1, 4} {
			b.Run(fmt.Sprintf("mode=%s/writers=%d", mode, writers), func(b *testing.B) {
				s, err := store.OpenBadger(store.Options{Dir: b.TempDir(), Mode: mode, GCInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				val := make([]byte, 256)
				b.SetParallelism(writers)
				var n uint64
				var mu sync.Mutex
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						mu.Lock()
						n++
						k := []byte(fmt.Sprintf("k/%016d", n))
						mu.Unlock()
						var bt store.Batch
						bt.Put(k, val)
						if err := s.Write(&bt); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			})
		}
	}
}

// A process killed right after Badger created a memtable file leaves it
// empty; the store opens anyway (Badger alone refuses it).
func TestOpenAfterAnEmptyMemtableFile(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenBadger(store.Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	putKV(t, s, "k", "v")
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = store.OpenBadger(store.Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatalf("reopen with an empty memtable file: %v", err)
	}
	defer s.Close()
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
}

// OpenTemp's store works like any other, in a directory of its own that
// Close removes.
func TestOpenTempIsRemovedByClose(t *testing.T) {
	s, err := store.OpenTemp(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	putKV(t, s, "k", "v")
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("get: %q %v", v, err)
	}
	dir := s.Dir()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the store's directory: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after Close: %v", dir, err)
	}
}

// putKV writes k=v in a batch of its own.
func putKV(t *testing.T, s store.Store, k, v string) {
	t.Helper()
	var b store.Batch
	b.Put([]byte(k), []byte(v))
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
}

// DeletePrefix deletes every key with the prefix, more than one batch's
// worth, through a view too, and nothing else.
func TestDeletePrefix(t *testing.T) {
	s, err := store.OpenBadger(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := store.Sub(s, "v/")
	var b store.Batch
	for i := range 2500 {
		b.Put(fmt.Appendf(nil, "v/a/%05d", i), []byte{1})
	}
	b.Put([]byte("v/b/1"), []byte{1})
	b.Put([]byte("a/1"), []byte{1})
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	if err := store.DeletePrefix(v, []byte("a/")); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := s.Scan(nil, nil, func(k, _ []byte) error { left = append(left, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != "[a/1 v/b/1]" {
		t.Fatalf("left %v", left)
	}
}

// One write of more records than a transaction takes is refused as too
// large, saying so, whatever their bytes; BatchBudget, asked through a
// view, gives the store's MaxBatchBytes under a ceiling, and a budget
// filled with RecordOverhead counted per record is taken.
func TestTooManyRecordsAndTheBatchBudget(t *testing.T) {
	s, err := store.OpenBadger(store.Options{Dir: t.TempDir(), GCInterval: -1, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := store.Sub(s, "v/")
	if got := store.BatchBudget(v, 1<<30); got != s.MaxBatchBytes() {
		t.Fatalf("BatchBudget through a view: %d, want %d", got, s.MaxBatchBytes())
	}
	if got := store.BatchBudget(v, 1000); got != 1000 {
		t.Fatalf("BatchBudget under a ceiling: %d", got)
	}
	var many store.Batch
	for i := range 5000 {
		many.Delete(fmt.Appendf(nil, "k%d", i))
	}
	if err := v.Write(&many); !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "5000 records") {
		t.Fatalf("5,000 deletions in one write: %v", err)
	}
	var fit store.Batch
	for i := 0; fit.Size()+store.RecordOverhead*(fit.Len()+1) <= store.BatchBudget(v, 1<<30); i++ {
		fit.Delete(fmt.Appendf(nil, "k%d", i))
	}
	if err := v.Write(&fit); err != nil {
		t.Fatalf("%d deletions within the budget: %v", fit.Len(), err)
	}
}

// DeletePrefix empties a prefix of more keys than one write of a small
// store takes (1 MiB memtables), long keys included.
func TestDeletePrefixFitsASmallStore(t *testing.T) {
	s, err := store.OpenBadger(store.Options{Dir: t.TempDir(), GCInterval: -1, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := strings.Repeat("k", 200)
	for part := range 10 {
		var b store.Batch
		for i := range 300 {
			b.Put(fmt.Appendf(nil, "p/%s/%d/%d", long, part, i), []byte("v"))
		}
		if err := s.Write(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.DeletePrefix(s, []byte("p/")); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.Scan([]byte("p/"), nil, func(_, _ []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("%d keys left (%v)", n, err)
	}
}
