package incremental

import (
	"errors"
	"slices"
	"testing"

	"github.com/sedna-go/sedna/store"
)

func openStore(t *testing.T, dir string) *store.Badger {
	t.Helper()
	st, err := store.OpenBadger(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func seqs(t *testing.T, p *Pool) []uint64 {
	t.Helper()
	es, err := p.Oldest(100)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

// The pool keeps at most its limit of examples, dropping the oldest (and
// counting them) to make room; a reopened pool has the same examples and
// numbers and goes on numbering after them; removed examples are counted
// and gone.
func TestPoolDropsTheOldestAndSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	p, err := OpenPool(store.Sub(st, "il/job/"), PoolLimits{MaxExamples: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := p.Add(HardExample{ID: "k", Data: []byte{byte(i), 1}, Model: 7}); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqs(t, p); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("kept %v", got)
	}
	es, _ := p.Oldest(1)
	if es[0].Data[0] != 2 || es[0].Model != 7 {
		t.Fatalf("oldest kept %+v", es[0])
	}
	if s := p.Stats(); s.Kept != 3 || s.Added != 5 || s.Dropped != 2 {
		t.Fatalf("stats %+v", s)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir)
	defer st.Close()
	p, err = OpenPool(store.Sub(st, "il/job/"), PoolLimits{MaxExamples: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, p); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("kept after a restart %v", got)
	}
	seq, err := p.Add(HardExample{ID: "k"})
	if err != nil || seq != 6 {
		t.Fatalf("next after a restart: %d %v", seq, err)
	}
	if err := p.Remove(4, 5, 99); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, p); !slices.Equal(got, []uint64{6}) {
		t.Fatalf("kept after removing 4 and 5 %v", got)
	}
	if s := p.Stats(); s.Kept != 1 || s.Added != 6 || s.Dropped != 3 || s.Removed != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// The byte bound drops the oldest too; an example larger than the whole
// pool is refused and drops nothing.
func TestPoolBytesBound(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	one, err := OpenPool(store.Sub(st, "probe/"), PoolLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.Add(HardExample{ID: "k", Data: make([]byte, 400)}); err != nil {
		t.Fatal(err)
	}
	size := one.Stats().Bytes
	p, err := OpenPool(store.Sub(st, "il/job/"), PoolLimits{MaxBytes: 2*size + size/2})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Add(HardExample{ID: "k", Data: make([]byte, 400)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqs(t, p); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("kept %v", got)
	}
	if _, err := p.Add(HardExample{ID: "big", Data: make([]byte, 4000)}); err == nil {
		t.Fatal("an example larger than the pool was kept")
	}
	if got := seqs(t, p); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("kept after the refusal %v", got)
	}
	if s := p.Stats(); s.Dropped != 1 || s.Added != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// failingStore refuses writes.
type failingStore struct{ store.Store }

func (failingStore) Write(*store.Batch) error { return store.ErrFull }

// A write the store refuses is an error, and the pool is as it was.
func TestPoolWriteErrorLosesNothing(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	p, err := OpenPool(store.Sub(st, "il/job/"), PoolLimits{MaxExamples: 2})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(HardExample{ID: "a"})
	p.Add(HardExample{ID: "b"})
	p.st = failingStore{p.st}
	if _, err := p.Add(HardExample{ID: "c"}); !errors.Is(err, store.ErrFull) {
		t.Fatalf("add on a full disk: %v", err)
	}
	if err := p.Remove(1); !errors.Is(err, store.ErrFull) {
		t.Fatalf("remove on a full disk: %v", err)
	}
	if got := seqs(t, p); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("kept %v", got)
	}
	if s := p.Stats(); s.Kept != 2 || s.Added != 2 || s.Dropped != 0 || s.Next != 2 {
		t.Fatalf("stats %+v", s)
	}
}
