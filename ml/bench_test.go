package ml_test

import (
	"context"
	"testing"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/comfort"
	"github.com/sedna-go/sedna/ml/datasets"
)

// Run with: go test ./ml -run '^$' -bench . -benchtime 3x
// docs/BENCHMARKS.md has the figures of the project's 2-core machine.

type benchSet struct {
	name        string
	train, test *datasets.Dataset
}

func benchSets(b *testing.B) []benchSet {
	b.Helper()
	digits, err := datasets.Digits()
	if err != nil {
		b.Fatal(err)
	}
	dTrain, dTest, _ := digits.Split(0.25, 1)
	fTrain, fTest, err := datasets.FashionSubset()
	if err != nil {
		b.Fatal(err)
	}
	f7Train, _ := fTrain.Pool(2)
	f7Test, _ := fTest.Pool(2)
	task, _ := comfort.ParseTask("temperate-summer-nv")
	c, err := comfort.GenerateDataset(task, 4000, 1)
	if err != nil {
		b.Fatal(err)
	}
	cTrain, cTest, _ := c.Split(0.25, 1)
	return []benchSet{
		{"digits8x8", dTrain, dTest},
		{"fashion14x14", fTrain, fTest},
		{"fashion7x7", f7Train, f7Test},
		{"comfort", cTrain, cTest},
	}
}

var benchModels = []struct {
	name string
	new  func(inputs, classes int) (*ml.Network, error)
}{
	{"softmax", func(in, c int) (*ml.Network, error) { return ml.NewSoftmax(in, c) }},
	{"mlp128", func(in, c int) (*ml.Network, error) { return ml.NewMLP(in, []int{128}, c, 1) }},
}

// BenchmarkTrainEpoch measures one epoch of Adam with batches of 32.
func BenchmarkTrainEpoch(b *testing.B) {
	for _, set := range benchSets(b) {
		for _, m := range benchModels {
			b.Run(set.name+"/"+m.name, func(b *testing.B) {
				model, err := m.new(set.train.Cols, len(set.train.Classes))
				if err != nil {
					b.Fatal(err)
				}
				opts := ml.FitOptions{Epochs: 1, Optimizer: ml.Adam, BatchSize: 32}
				for b.Loop() {
					if err := model.Fit(context.Background(), set.train.X, set.train.Y, opts); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/epoch")
				b.ReportMetric(float64(set.train.Rows*b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkPredict measures inference: the whole test set in one call
// (batch), and one sample per call (single).
func BenchmarkPredict(b *testing.B) {
	for _, set := range benchSets(b) {
		for _, m := range benchModels {
			model, err := m.new(set.train.Cols, len(set.train.Classes))
			if err != nil {
				b.Fatal(err)
			}
			b.Run(set.name+"/"+m.name+"/batch", func(b *testing.B) {
				for b.Loop() {
					if _, err := model.PredictProba(set.test.X); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N*set.test.Rows), "µs/sample")
			})
			b.Run(set.name+"/"+m.name+"/single", func(b *testing.B) {
				row := set.test.Row(0)
				for b.Loop() {
					if _, err := model.PredictProba(row); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/sample")
			})
		}
	}
}
