package partition_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/sedna-go/sedna/ml/partition"
)

// labels returns n labels over classes classes, in blocks as in a sorted
// file would not be: label i%classes.
func labels(n, classes int) []int {
	y := make([]int, n)
	for i := range y {
		y[i] = (i * 7) % classes
	}
	return y
}

// checkPartition fails unless parts cover 0..n-1 exactly once, each part
// sorted and none empty.
func checkPartition(t *testing.T, parts [][]int, n int) {
	t.Helper()
	seen := make([]bool, n)
	for c, p := range parts {
		if len(p) == 0 {
			t.Fatalf("client %d has no samples", c)
		}
		if !slices.IsSorted(p) {
			t.Fatalf("client %d: indices not sorted", c)
		}
		for _, i := range p {
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("client %d: index %d out of range or given twice", c, i)
			}
			seen[i] = true
		}
	}
	if i := slices.Index(seen, false); i >= 0 {
		t.Fatalf("sample %d given to no client", i)
	}
}

// dominance is the mean, over clients, of the share of a client's samples
// that have its most frequent label.
func dominance(parts [][]int, y []int, classes int) float64 {
	var sum float64
	for _, p := range parts {
		count := make([]int, classes)
		for _, i := range p {
			count[y[i]]++
		}
		sum += float64(slices.Max(count)) / float64(len(p))
	}
	return sum / float64(len(parts))
}

func distinctLabels(p []int, y []int) int {
	seen := map[int]bool{}
	for _, i := range p {
		seen[y[i]] = true
	}
	return len(seen)
}

func TestPartitionsCoverEverySampleOnce(t *testing.T) {
	y := labels(1000, 10)
	for _, tc := range []struct {
		name string
		make func(seed uint64) ([][]int, error)
	}{
		{"iid", func(s uint64) ([][]int, error) { return partition.IID(1000, 7, s) }},
		{"dirichlet 0.1", func(s uint64) ([][]int, error) { return partition.Dirichlet(y, 10, 0.1, s) }},
		{"dirichlet 100", func(s uint64) ([][]int, error) { return partition.Dirichlet(y, 10, 100, s) }},
		{"dirichlet 0.001", func(s uint64) ([][]int, error) { return partition.Dirichlet(y, 3, 0.001, s) }},
		{"shards 2", func(s uint64) ([][]int, error) { return partition.Shards(y, 10, 2, s) }},
		{"shards 3 uneven", func(s uint64) ([][]int, error) { return partition.Shards(y[:997], 7, 3, s) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.make(1)
			if err != nil {
				t.Fatal(err)
			}
			n := 1000
			if tc.name == "shards 3 uneven" {
				n = 997
			}
			checkPartition(t, a, n)
			b, _ := tc.make(1)
			c, _ := tc.make(2)
			if !slices.EqualFunc(a, b, slices.Equal) {
				t.Fatal("same seed, different partition")
			}
			if slices.EqualFunc(a, c, slices.Equal) {
				t.Fatal("another seed, same partition")
			}
		})
	}
}

func TestIIDSizesDifferByAtMostOne(t *testing.T) {
	parts, err := partition.IID(1003, 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := len(parts[0]), len(parts[0])
	for _, p := range parts {
		lo, hi = min(lo, len(p)), max(hi, len(p))
	}
	if hi-lo > 1 {
		t.Fatalf("sizes from %d to %d", lo, hi)
	}
}

func TestDirichletSkewFollowsAlpha(t *testing.T) {
	y := labels(5000, 10)
	var prev float64 = 2
	for _, alpha := range []float64{0.05, 0.5, 5, 500} {
		parts, err := partition.Dirichlet(y, 20, alpha, 3)
		if err != nil {
			t.Fatal(err)
		}
		d := dominance(parts, y, 10)
		t.Logf("alpha %v: the most frequent label is %.0f%% of a client's samples on average", alpha, 100*d)
		if d >= prev {
			t.Fatalf("alpha %v: dominance %.2f did not fall below %.2f", alpha, d, prev)
		}
		prev = d
	}
	if prev > 0.15 {
		t.Fatalf("alpha 500 should be close to IID (0.1), got %.2f", prev)
	}
}

func TestShardsGiveFewLabels(t *testing.T) {
	y := labels(6000, 10)
	parts, err := partition.Shards(y, 30, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for c, p := range parts {
		n := distinctLabels(p, y)
		if n > 4 { // two shards, each at most straddling a label boundary
			t.Fatalf("client %d sees %d labels", c, n)
		}
		total += n
	}
	if mean := float64(total) / 30; mean > 2.5 {
		t.Fatalf("clients see %.1f labels on average, want about 2", mean)
	}
}

func TestByAttribute(t *testing.T) {
	keys, parts := partition.ByAttribute([]string{"nv", "ac", "nv", "ac", "mixed"})
	if !slices.Equal(keys, []string{"ac", "mixed", "nv"}) {
		t.Fatalf("keys %v", keys)
	}
	want := [][]int{{1, 3}, {4}, {0, 2}}
	if !slices.EqualFunc(parts, want, slices.Equal) {
		t.Fatalf("parts %v, want %v", parts, want)
	}
	none, parts := partition.ByAttribute([]int(nil))
	if len(none) != 0 || len(parts) != 0 {
		t.Fatal("parts of nothing")
	}
}

func TestRefusals(t *testing.T) {
	y := labels(20, 4)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"iid, no clients", second(partition.IID(10, 0, 1))},
		{"iid, more clients than samples", second(partition.IID(3, 4, 1))},
		{"dirichlet, alpha 0", second(partition.Dirichlet(y, 2, 0, 1))},
		{"dirichlet, negative alpha", second(partition.Dirichlet(y, 2, -1, 1))},
		{"dirichlet, negative label", second(partition.Dirichlet([]int{0, -1}, 1, 1, 1))},
		{"dirichlet, more clients than samples", second(partition.Dirichlet(y, 21, 1, 1))},
		{"shards, too many", second(partition.Shards(y, 7, 3, 1))},
		{"shards, zero per client", second(partition.Shards(y, 2, 0, 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, partition.ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", tc.err)
			}
		})
	}
}

func second(_ [][]int, err error) error { return err }
