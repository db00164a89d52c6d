package ml_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/sedna-go/sedna/ml"
)

func TestConstructorsRefuseBadShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func() (*ml.Network, error)
	}{
		{"softmax without inputs", func() (*ml.Network, error) { return ml.NewSoftmax(0, 3) }},
		{"softmax with zero classes", func() (*ml.Network, error) { return ml.NewSoftmax(4, 0) }},
		{"softmax with one class", func() (*ml.Network, error) { return ml.NewSoftmax(4, 1) }},
		{"mlp without hidden layer", func() (*ml.Network, error) { return ml.NewMLP(4, nil, 3, 1) }},
		{"mlp with three hidden layers", func() (*ml.Network, error) { return ml.NewMLP(4, []int{3, 3, 3}, 3, 1) }},
		{"mlp with an empty layer", func() (*ml.Network, error) { return ml.NewMLP(4, []int{0}, 3, 1) }},
		{"mlp with negative inputs", func() (*ml.Network, error) { return ml.NewMLP(-1, []int{8}, 3, 1) }},
		{"too many weights", func() (*ml.Network, error) { return ml.NewMLP(1<<20, []int{1 << 20}, 3, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.new()
			if !errors.Is(err, ml.ErrInvalidInput) || n != nil {
				t.Fatalf("got %v, %v; want ErrInvalidInput", n, err)
			}
		})
	}
}

func TestShapesAndKinds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       func() (*ml.Network, error)
		kind    ml.Kind
		weights int
	}{
		{"softmax", func() (*ml.Network, error) { return ml.NewSoftmax(64, 10) }, ml.KindSoftmax, 65 * 10},
		{"mlp one hidden", func() (*ml.Network, error) { return ml.NewMLP(196, []int{128}, 10, 1) }, ml.KindMLP, 197*128 + 129*10},
		{"mlp two hidden", func() (*ml.Network, error) { return ml.NewMLP(7, []int{32, 16}, 3, 1) }, ml.KindMLP, 8*32 + 33*16 + 17*3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.n()
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind() != tc.kind || n.NumWeights() != tc.weights || len(n.Weights()) != tc.weights {
				t.Fatalf("kind %v, %d weights; want %v, %d", n.Kind(), n.NumWeights(), tc.kind, tc.weights)
			}
			sizes := n.Sizes()
			if sizes[0] != n.Inputs() || sizes[len(sizes)-1] != n.Classes() {
				t.Fatalf("sizes %v, inputs %d, classes %d", sizes, n.Inputs(), n.Classes())
			}
		})
	}
	if ml.KindSoftmax.String() != "softmax" || ml.KindMLP.String() != "mlp" || ml.Kind(9).String() != "kind(9)" {
		t.Fatal("Kind.String")
	}
	if ml.SGD.String() != "sgd" || ml.Adam.String() != "adam" {
		t.Fatal("Optimizer.String")
	}
}

func TestInvalidInputIsAnErrorNotAPanic(t *testing.T) {
	n, err := ml.NewMLP(2, []int{4}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"fit on no data", func() error { return n.Fit(ctx, nil, nil, ml.FitOptions{}) }},
		{"fit on a partial row", func() error { return n.Fit(ctx, []float32{1, 2, 3}, []int{0, 1}, ml.FitOptions{}) }},
		{"fit with fewer labels than rows", func() error { return n.Fit(ctx, []float32{1, 2, 3, 4}, []int{0}, ml.FitOptions{}) }},
		{"fit with a label out of range", func() error { return n.Fit(ctx, []float32{1, 2}, []int{3}, ml.FitOptions{}) }},
		{"fit with a negative label", func() error { return n.Fit(ctx, []float32{1, 2}, []int{-1}, ml.FitOptions{}) }},
		{"fit on NaN", func() error { return n.Fit(ctx, []float32{1, nan}, []int{0}, ml.FitOptions{}) }},
		{"fit on infinity", func() error { return n.Fit(ctx, []float32{inf, 1}, []int{0}, ml.FitOptions{}) }},
		{"negative epochs", func() error { return n.Fit(ctx, []float32{1, 2}, []int{0}, ml.FitOptions{Epochs: -1}) }},
		{"negative batch", func() error { return n.Fit(ctx, []float32{1, 2}, []int{0}, ml.FitOptions{BatchSize: -2}) }},
		{"NaN learning rate", func() error {
			return n.Fit(ctx, []float32{1, 2}, []int{0}, ml.FitOptions{LearningRate: nan})
		}},
		{"momentum of one", func() error { return n.Fit(ctx, []float32{1, 2}, []int{0}, ml.FitOptions{Momentum: 1}) }},
		{"negative L2", func() error { return n.Fit(ctx, []float32{1, 2}, []int{0}, ml.FitOptions{L2: -1}) }},
		{"unknown optimizer", func() error { return n.Fit(ctx, []float32{1, 2}, []int{0}, ml.FitOptions{Optimizer: 7}) }},
		{"predict nothing", func() error { _, err := n.PredictProba(nil); return err }},
		{"predict a partial row", func() error { _, err := n.Predict([]float32{1, 2, 3}); return err }},
		{"predict NaN", func() error { _, err := n.PredictProba([]float32{nan, 0}); return err }},
		{"short weights", func() error { return n.SetWeights(make([]float32, n.NumWeights()-1)) }},
		{"long weights", func() error { return n.SetWeights(make([]float32, n.NumWeights()+1)) }},
		{"NaN weight", func() error {
			w := n.Weights()
			w[3] = nan
			return n.SetWeights(w)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.Weights()
			err := tc.call()
			if !errors.Is(err, ml.ErrInvalidInput) {
				t.Fatalf("error %v, want ErrInvalidInput", err)
			}
			if !equalBits(before, n.Weights()) {
				t.Fatal("a refused call changed the weights")
			}
		})
	}
}

func TestZeroNetworkRefusesWork(t *testing.T) {
	var n ml.Network
	if n.Inputs() != 0 || n.Classes() != 0 || n.NumWeights() != 0 {
		t.Fatalf("zero network: %d inputs, %d classes", n.Inputs(), n.Classes())
	}
	if _, err := n.PredictProba([]float32{1}); !errors.Is(err, ml.ErrInvalidInput) {
		t.Fatalf("predict: %v", err)
	}
	if err := n.Fit(context.Background(), []float32{1}, []int{0}, ml.FitOptions{}); !errors.Is(err, ml.ErrInvalidInput) {
		t.Fatalf("fit: %v", err)
	}
	if err := n.SetWeights([]float32{1}); !errors.Is(err, ml.ErrInvalidInput) {
		t.Fatalf("set weights: %v", err)
	}
}

func TestWeightsRoundTripBitForBit(t *testing.T) {
	a, err := ml.NewMLP(5, []int{7, 4}, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	w := a.Weights()
	w[0] = math.SmallestNonzeroFloat32   // a subnormal survives too
	w[1] = float32(math.Copysign(0, -1)) // and a negative zero
	b, _ := ml.NewMLP(5, []int{7, 4}, 3, 7)
	if err := b.SetWeights(w); err != nil {
		t.Fatal(err)
	}
	if !equalBits(b.Weights(), w) {
		t.Fatal("SetWeights then Weights changed bits")
	}
	w[2] = 99 // the model holds its own copy
	if b.Weights()[2] == 99 {
		t.Fatal("SetWeights kept the caller's slice")
	}
	got := b.Weights()
	got[3] = 77
	if b.Weights()[3] == 77 {
		t.Fatal("Weights returned the model's own slice")
	}
}

func TestProbabilitiesAreDistributions(t *testing.T) {
	n, _ := ml.NewMLP(3, []int{16}, 4, 5)
	x := make([]float32, 300*3) // enough rows for the two-goroutine path
	for i := range x {
		x[i] = float32(i%17)/4 - 2
	}
	p, err := n.PredictProba(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 300*4 {
		t.Fatalf("%d probabilities", len(p))
	}
	for r := 0; r < 300; r++ {
		var sum float64
		for _, v := range p[r*4 : r*4+4] {
			if v < 0 || v > 1 {
				t.Fatalf("row %d: probability %v", r, v)
			}
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Fatalf("row %d sums to %v", r, sum)
		}
		// A row alone gives the same bits as the row in a batch.
		one, _ := n.PredictProba(x[r*3 : r*3+3])
		if !equalBits(one, p[r*4:r*4+4]) {
			t.Fatalf("row %d: alone %v, in a batch %v", r, one, p[r*4:r*4+4])
		}
	}
}

// toy returns a separable 3-class problem in 2 dimensions.
func toy(rows int) ([]float32, []int) {
	x := make([]float32, 2*rows)
	y := make([]int, rows)
	for i := range y {
		c := i % 3
		y[i] = c
		angle := float64(c)*2*math.Pi/3 + float64(i%7)*0.05
		x[2*i] = float32(2*math.Cos(angle)) + float32(i%5)*0.04
		x[2*i+1] = float32(2*math.Sin(angle)) - float32(i%3)*0.04
	}
	return x, y
}

func TestSameSeedSameWeights(t *testing.T) {
	x, y := toy(150)
	train := func(initSeed, fitSeed uint64, opt ml.Optimizer) []float32 {
		n, err := ml.NewMLP(2, []int{8, 6}, 3, initSeed)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Fit(context.Background(), x, y, ml.FitOptions{
			Epochs: 3, BatchSize: 20, Optimizer: opt, Momentum: 0.9, L2: 1e-4, Seed: fitSeed, Anneal: true,
		}); err != nil {
			t.Fatal(err)
		}
		return n.Weights()
	}
	for _, opt := range []ml.Optimizer{ml.SGD, ml.Adam} {
		a, b := train(1, 2, opt), train(1, 2, opt)
		if !equalBits(a, b) {
			t.Fatalf("%v: same seeds, different weights", opt)
		}
		if equalBits(a, train(1, 3, opt)) {
			t.Fatalf("%v: another shuffling seed gave the same weights", opt)
		}
		if equalBits(a, train(4, 2, opt)) {
			t.Fatalf("%v: another initialisation seed gave the same weights", opt)
		}
	}
}

func TestFitLearnsAndReports(t *testing.T) {
	x, y := toy(300)
	for _, tc := range []struct {
		name string
		new  func() (*ml.Network, error)
		opts ml.FitOptions
	}{
		{"softmax sgd", func() (*ml.Network, error) { return ml.NewSoftmax(2, 3) }, ml.FitOptions{Epochs: 20, LearningRate: 0.1}},
		{"softmax sgd momentum", func() (*ml.Network, error) { return ml.NewSoftmax(2, 3) },
			ml.FitOptions{Epochs: 20, Momentum: 0.9, LearningRate: 0.02}},
		{"mlp adam", func() (*ml.Network, error) { return ml.NewMLP(2, []int{16}, 3, 1) },
			ml.FitOptions{Epochs: 20, Optimizer: ml.Adam, LearningRate: 0.01}},
		{"mlp two hidden, small batches", func() (*ml.Network, error) { return ml.NewMLP(2, []int{16, 8}, 3, 1) },
			ml.FitOptions{Epochs: 20, Optimizer: ml.Adam, LearningRate: 0.01, BatchSize: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.new()
			if err != nil {
				t.Fatal(err)
			}
			var seen []ml.Progress
			tc.opts.Progress = func(p ml.Progress) { seen = append(seen, p) }
			if err := n.Fit(context.Background(), x, y, tc.opts); err != nil {
				t.Fatal(err)
			}
			if len(seen) != tc.opts.Epochs || seen[0].Epoch != 1 || seen[len(seen)-1].Epoch != tc.opts.Epochs ||
				seen[0].Samples != 300 || seen[0].Epochs != tc.opts.Epochs {
				t.Fatalf("progress reports %+v", seen)
			}
			if !(seen[len(seen)-1].Loss < seen[0].Loss) {
				t.Fatalf("loss went from %v to %v", seen[0].Loss, seen[len(seen)-1].Loss)
			}
			ev, err := ml.Evaluate(n, x, y)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Accuracy < 0.99 {
				t.Fatalf("training accuracy %.3f on a separable problem", ev.Accuracy)
			}
			if n.Samples() != 300 {
				t.Fatalf("Samples() = %d, want 300", n.Samples())
			}
		})
	}
}

func TestFitStopsWhenCancelled(t *testing.T) {
	x, y := toy(300)
	n, _ := ml.NewMLP(2, []int{16}, 3, 1)
	ctx, cancel := context.WithCancel(context.Background())
	epochs := 0
	err := n.Fit(ctx, x, y, ml.FitOptions{Epochs: 50, Progress: func(p ml.Progress) {
		epochs = p.Epoch
		if p.Epoch == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if epochs != 2 {
		t.Fatalf("ran %d epochs after cancelling in the second", epochs)
	}
	if n.Samples() != 0 {
		t.Fatalf("a stopped Fit recorded %d samples", n.Samples())
	}
}

func TestCloneIsIndependent(t *testing.T) {
	x, y := toy(60)
	n, _ := ml.NewMLP(2, []int{8}, 3, 1)
	c := n.Clone()
	if err := c.Fit(context.Background(), x, y, ml.FitOptions{Epochs: 1}); err != nil {
		t.Fatal(err)
	}
	if equalBits(n.Weights(), c.Weights()) || n.Samples() != 0 || c.Samples() != 60 {
		t.Fatal("training the clone changed the original, or did nothing")
	}
	n.SetSamples(-5)
	if n.Samples() != 0 {
		t.Fatal("SetSamples accepted a negative count")
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
