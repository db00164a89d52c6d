package cluster_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sedna-go/sedna/ml/cluster"
)

// blobs draws n rows around each centre (standard deviation sd) and
// returns them with each row's blob.
func blobs(centres [][]float32, n int, sd float64, seed uint64) ([]float32, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var x []float32
	var truth []int
	for i := range n * len(centres) {
		c := i % len(centres)
		for _, v := range centres[c] {
			x = append(x, v+float32(sd*rng.NormFloat64()))
		}
		truth = append(truth, c)
	}
	return x, truth
}

// The adjusted Rand index: 1 for the same grouping under other names, the
// value of a grouping worked out by hand, 0 for a grouping that tells
// nothing about the other; groupings of different lengths are refused.
func TestAdjustedRandIndex(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b []int
		want float64
	}{
		{"renamed", []int{0, 0, 1, 1, 2, 2}, []int{5, 5, 3, 3, 9, 9}, 1},
		// Pairs together in both: 2; expected 6·3/15 = 1.2; mean of the
		// two sides' pairs 4.5: (2 − 1.2) / (4.5 − 1.2).
		{"by hand", []int{0, 0, 0, 1, 1, 1}, []int{0, 0, 1, 1, 2, 2}, 0.8 / 3.3},
		{"one group against each alone", []int{0, 0, 0, 0}, []int{0, 1, 2, 3}, 0},
		{"both one group", []int{1, 1, 1}, []int{2, 2, 2}, 1},
	} {
		got, err := cluster.AdjustedRandIndex(c.a, c.b)
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: %v (%v), want %v", c.name, got, err, c.want)
		}
	}
	if _, err := cluster.AdjustedRandIndex([]int{0, 1}, []int{0}); !errors.Is(err, cluster.ErrInvalid) {
		t.Errorf("groupings of 2 and 1 items: %v", err)
	}
}

// The silhouette of two pairs on a line, worked out by hand: each point
// is 1 from its partner and 9.5 or 10.5 on average from the other pair.
func TestSilhouette(t *testing.T) {
	got, err := cluster.Silhouette([]float32{0, 1, 10, 11}, 1, []int{0, 0, 1, 1})
	want := (2*(9.5/10.5) + 2*(8.5/9.5)) / 4
	if err != nil || math.Abs(got-want) > 1e-9 {
		t.Fatalf("silhouette %v (%v), want %v", got, err, want)
	}
	if _, err := cluster.Silhouette([]float32{0, 1}, 1, []int{0, 0}); !errors.Is(err, cluster.ErrInvalid) {
		t.Errorf("one cluster: %v", err)
	}
}

// k-means finds three separated blobs exactly (whatever it names them),
// the same way from the same seed; a new row near a blob goes to it, a
// row far from all is far from its nearest centre.
func TestKMeansFindsBlobs(t *testing.T) {
	x, truth := blobs([][]float32{{0, 0}, {10, 0}, {0, 10}}, 100, 1, 1)
	m, labels, err := cluster.KMeans(x, 2, 3, cluster.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if ari, _ := cluster.AdjustedRandIndex(labels, truth); ari != 1 {
		t.Fatalf("adjusted Rand index %v, want 1", ari)
	}
	if _, again, _ := cluster.KMeans(x, 2, 3, cluster.Options{Seed: 7}); !slices.Equal(again, labels) {
		t.Error("the same seed grouped otherwise")
	}
	if !slices.Equal(m.Assign(x), labels) {
		t.Error("Assign disagrees with the training's labels")
	}
	c, d := m.Nearest([]float32{9.5, 0.5})
	if c != labels[1] || d > 1 {
		t.Errorf("(9.5, 0.5): cluster %d at %.2f, want blob (10, 0)'s, %d, near", c, d, labels[1])
	}
	if _, d := m.Nearest([]float32{30, 30}); d < 20 {
		t.Errorf("(30, 30) is %.2f from its nearest centre", d)
	}
}

// The number of clusters is the data's: 2, 3 and 5 blobs in 4 dimensions
// are found as 2, 3 and 5 among 2 to 8, the silhouette computed on a
// sample.
func TestChooseKFindsTheNumberOfBlobs(t *testing.T) {
	all := [][]float32{{0, 0, 0, 0}, {8, 0, 0, 0}, {0, 8, 0, 0}, {0, 0, 8, 0}, {0, 0, 0, 8}}
	for _, k := range []int{2, 3, 5} {
		x, truth := blobs(all[:k], 200, 1, uint64(k))
		ch, err := cluster.ChooseK(x, 4, 2, 8, 300, cluster.Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		ari, _ := cluster.AdjustedRandIndex(ch.Labels, truth)
		if ch.Model.K() != k || ari < 0.99 {
			t.Errorf("%d blobs: chose %d (silhouettes %.2f from k=2), ARI %.3f", k, ch.Model.K(), ch.Scores, ari)
		}
	}
}

// What cannot be clustered is refused with ErrInvalid.
func TestBadInputIsRefused(t *testing.T) {
	for name, f := range map[string]func() error{
		"k above n":   func() error { _, _, err := cluster.KMeans([]float32{1, 2}, 1, 3, cluster.Options{}); return err },
		"k of 0":      func() error { _, _, err := cluster.KMeans([]float32{1, 2}, 1, 0, cluster.Options{}); return err },
		"ragged rows": func() error { _, _, err := cluster.KMeans([]float32{1, 2, 3}, 2, 1, cluster.Options{}); return err },
		"NaN": func() error {
			_, _, err := cluster.KMeans([]float32{1, float32(math.NaN())}, 1, 1, cluster.Options{})
			return err
		},
		"choose 1":     func() error { _, err := cluster.ChooseK([]float32{1, 2, 3}, 1, 1, 2, 0, cluster.Options{}); return err },
		"empty":        func() error { _, _, err := cluster.KMeans(nil, 1, 1, cluster.Options{}); return err },
		"labels short": func() error { _, err := cluster.Silhouette([]float32{1, 2}, 1, []int{0}); return err },
	} {
		if err := f(); !errors.Is(err, cluster.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
