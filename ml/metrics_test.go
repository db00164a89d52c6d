package ml_test

import (
	"errors"
	"math"
	"testing"

	"github.com/sedna-go/sedna/ml"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestConfusionScores(t *testing.T) {
	// truth:  0 0 0 1 1 2 2 2 2 2
	// pred:   0 0 1 1 2 2 2 2 0 1
	truth := []int{0, 0, 0, 1, 1, 2, 2, 2, 2, 2}
	pred := []int{0, 0, 1, 1, 2, 2, 2, 2, 0, 1}
	c, err := ml.NewConfusion(truth, pred, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, cell := range []struct{ t, p, n int }{{0, 0, 2}, {0, 1, 1}, {1, 1, 1}, {1, 2, 1}, {2, 0, 1}, {2, 1, 1}, {2, 2, 3}, {0, 2, 0}} {
		if got := c.Count(cell.t, cell.p); got != cell.n {
			t.Errorf("Count(%d, %d) = %d, want %d", cell.t, cell.p, got, cell.n)
		}
	}
	if c.Total() != 10 || c.Classes() != 3 || !near(c.Accuracy(), 0.6) {
		t.Fatalf("total %d, classes %d, accuracy %v", c.Total(), c.Classes(), c.Accuracy())
	}
	// By hand: class 0 tp 2 fp 1 fn 1; class 1 tp 1 fp 2 fn 1; class 2 tp 3 fp 1 fn 2.
	want := []ml.Scores{
		{Precision: 2.0 / 3, Recall: 2.0 / 3, F1: 2.0 / 3},
		{Precision: 1.0 / 3, Recall: 1.0 / 2, F1: 0.4},
		{Precision: 3.0 / 4, Recall: 3.0 / 5, F1: 2 * 0.75 * 0.6 / 1.35},
	}
	for k, s := range c.PerClass() {
		if !near(s.Precision, want[k].Precision) || !near(s.Recall, want[k].Recall) || !near(s.F1, want[k].F1) {
			t.Errorf("class %d: %+v, want %+v", k, s, want[k])
		}
	}
	macro := c.Macro()
	if !near(macro.Precision, (2.0/3+1.0/3+0.75)/3) || !near(macro.Recall, (2.0/3+0.5+0.6)/3) ||
		!near(macro.F1, (want[0].F1+want[1].F1+want[2].F1)/3) {
		t.Errorf("macro %+v", macro)
	}
	micro := c.Micro()
	if !near(micro.Precision, 0.6) || !near(micro.Recall, 0.6) || !near(micro.F1, 0.6) {
		t.Errorf("micro %+v, want all 0.6 (the accuracy)", micro)
	}
	if c.String() == "" {
		t.Error("empty rendering")
	}
}

func TestScoresOfAClassNeverPredictedOrAbsent(t *testing.T) {
	c, err := ml.NewConfusion([]int{0, 0, 1}, []int{0, 0, 0}, 3)
	if err != nil {
		t.Fatal(err)
	}
	per := c.PerClass()
	if per[1] != (ml.Scores{}) || per[2] != (ml.Scores{}) {
		t.Fatalf("scores %+v, want zeros for classes 1 and 2", per)
	}
	if !near(per[0].Precision, 2.0/3) || !near(per[0].Recall, 1) {
		t.Fatalf("class 0: %+v", per[0])
	}
}

func TestAccuracyAndLogLoss(t *testing.T) {
	acc, err := ml.Accuracy([]int{1, 2, 3, 4}, []int{1, 2, 0, 4})
	if err != nil || acc != 0.75 {
		t.Fatalf("accuracy %v, %v", acc, err)
	}
	p := []float32{0.5, 0.5, 0.9, 0.1, 0, 1}
	ll, err := ml.LogLoss([]int{0, 0, 0}, p, 2)
	want := (math.Log(2) - math.Log(0.9) - math.Log(1e-15)) / 3
	if err != nil || math.Abs(ll-want) > 1e-6 {
		t.Fatalf("log loss %v, want %v (%v)", ll, want, err)
	}
	if got := ml.Argmax([]float32{0.1, 0.7, 0.2, 0.4, 0.4, 0.2}, 3); got[0] != 1 || got[1] != 0 {
		t.Fatalf("argmax %v, ties go to the lowest index", got)
	}
}

func TestMetricsRefuseBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"accuracy of nothing", func() error { _, err := ml.Accuracy(nil, nil); return err }},
		{"accuracy of unequal lengths", func() error { _, err := ml.Accuracy([]int{1}, []int{1, 2}); return err }},
		{"log loss, short probabilities", func() error { _, err := ml.LogLoss([]int{0, 1}, []float32{1, 0}, 2); return err }},
		{"log loss, one class", func() error { _, err := ml.LogLoss([]int{0}, []float32{1}, 1); return err }},
		{"log loss, label out of range", func() error { _, err := ml.LogLoss([]int{2}, []float32{0.5, 0.5}, 2); return err }},
		{"log loss of NaN", func() error {
			_, err := ml.LogLoss([]int{0}, []float32{float32(math.NaN()), 1}, 2)
			return err
		}},
		{"confusion of zero classes", func() error { _, err := ml.NewConfusion([]int{0}, []int{0}, 0); return err }},
		{"confusion, prediction out of range", func() error { _, err := ml.NewConfusion([]int{0}, []int{5}, 2); return err }},
		{"confusion of nothing", func() error { _, err := ml.NewConfusion(nil, nil, 2); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.err(); !errors.Is(err, ml.ErrInvalidInput) {
				t.Fatalf("error %v, want ErrInvalidInput", err)
			}
		})
	}
}
