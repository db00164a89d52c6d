package datasets_test

import (
	"errors"
	"testing"

	"github.com/sedna-go/sedna/ml/datasets"
)

func tiny() *datasets.Dataset {
	// Two 2×2 images: one of class 0, one of class 1.
	return &datasets.Dataset{Name: "tiny", X: []float32{1, 0, 0, 0, 0.5, 0.5, 0.5, 0.5}, Y: []int{0, 1},
		Rows: 2, Cols: 4, Width: 2, Height: 2, Classes: []string{"a", "b"}}
}

// Drifted moves, scales and offsets pixels exactly, clips to [0, 1],
// leaves the labels and the source alone, and refuses rows that are not
// images.
func TestDriftedMovesAndScalesPixels(t *testing.T) {
	d := tiny()
	got, err := d.Drifted(datasets.Drift{ShiftX: 1, Gain: 0.5, Offset: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0.25, 0.75, 0.25, 0.25, 0.25, 0.5, 0.25, 0.5}
	for i := range want {
		if got.X[i] != want[i] {
			t.Fatalf("pixels %v, want %v", got.X, want)
		}
	}
	if got.Y[0] != 0 || got.Y[1] != 1 || d.X[0] != 1 {
		t.Fatalf("labels %v or source %v changed", got.Y, d.X)
	}
	bright, _ := d.Drifted(datasets.Drift{Gain: 3})
	if bright.X[0] != 1 || bright.X[4] != 1 {
		t.Fatalf("not clipped: %v", bright.X)
	}
	noisy, _ := d.Drifted(datasets.Drift{Noise: 0.1, Seed: 1})
	again, _ := d.Drifted(datasets.Drift{Noise: 0.1, Seed: 1})
	changed := false
	for i := range noisy.X {
		if noisy.X[i] != again.X[i] {
			t.Fatal("the same seed drew other noise")
		}
		changed = changed || noisy.X[i] != d.X[i]
	}
	if !changed {
		t.Fatal("noise changed nothing")
	}
	flat := &datasets.Dataset{Name: "flat", X: []float32{1, 2, 3}, Y: []int{0}, Rows: 1, Cols: 3}
	if _, err := flat.Drifted(datasets.Drift{}); !errors.Is(err, datasets.ErrInvalid) {
		t.Fatalf("rows that are not images: %v", err)
	}
}

// Resample draws the class mix it is given: a class of weight 0 never,
// the others in proportion; bad weights are refused.
func TestResampleDrawsTheClassMix(t *testing.T) {
	d := tiny()
	got, err := d.Resample(4000, datasets.Drift{ClassWeights: []float64{3, 1}, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := got.ClassCounts()
	if n[0]+n[1] != 4000 || n[0] < 2800 || n[0] > 3200 {
		t.Fatalf("class counts %v, want about 3000 and 1000", n)
	}
	only, _ := d.Resample(100, datasets.Drift{ClassWeights: []float64{0, 1}})
	if c := only.ClassCounts(); c[0] != 0 || c[1] != 100 {
		t.Fatalf("a class of weight 0 was drawn: %v", c)
	}
	for _, w := range [][]float64{{1}, {-1, 1}, {0, 0}} {
		if _, err := d.Resample(10, datasets.Drift{ClassWeights: w}); !errors.Is(err, datasets.ErrInvalid) {
			t.Fatalf("weights %v: %v", w, err)
		}
	}
}
