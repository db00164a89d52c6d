package store

import (
	"errors"
	"sync/atomic"
	"testing"
)

// The guard refuses values once the free space would go under the reserve,
// lets deletions through down to a quarter of it, counts what was written
// since its last reading, and lets writes through again once space is
// freed.
func TestDiskGuardReserve(t *testing.T) {
	var free atomic.Int64
	free.Store(100 << 20)
	g := newDiskGuard("/data", 32<<20, func(string) (int64, error) { return free.Load(), nil }, nil)
	if err := g.check(1<<20, true); err != nil {
		t.Fatalf("100 MiB free: %v", err)
	}
	free.Store(33 << 20)
	if err := g.check(2<<20, true); !errors.Is(err, ErrFull) {
		t.Fatalf("33 MiB free, 2 MiB to write, 32 MiB reserve: %v, want ErrFull", err)
	}
	if err := g.check(2<<20, false); err != nil {
		t.Fatalf("a deletion under the reserve: %v", err)
	}
	free.Store(7 << 20)
	if err := g.check(1<<10, false); !errors.Is(err, ErrFull) {
		t.Fatalf("a deletion with 7 MiB free (under a quarter of the reserve): %v", err)
	}
	free.Store(64 << 20)
	for i := range 31 { // 31 MiB in writes the last reading has not seen
		if err := g.check(1<<20, true); err != nil {
			t.Fatalf("write %d after space was freed: %v", i, err)
		}
	}
	free.Store(40 << 20) // the file system filled meanwhile
	if err := g.check(16<<20, true); !errors.Is(err, ErrFull) {
		t.Fatalf("16 MiB with 40 MiB free: %v, want ErrFull", err)
	}
	if newDiskGuard("/data", -1, nil, nil) != nil || (*diskGuard)(nil).check(1, true) != nil {
		t.Fatal("a disabled guard refuses")
	}
}
