package incremental_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/plugins"
)

// u8 is a row as a camera sends it: one byte per pixel.
func u8(row []float32) []byte {
	out := make([]byte, len(row))
	for i, v := range row {
		out[i] = byte(v*255 + 0.5)
	}
	return out
}

func accuracy(t *testing.T, m *ml.Network, d *datasets.Dataset) float64 {
	t.Helper()
	ev, err := ml.Evaluate(m, d.X, d.Y)
	if err != nil {
		t.Fatal(err)
	}
	return ev.Accuracy
}

// The drift of the example and the tests: the camera moved two pixels
// right and one down, the image is darker with less contrast, and noisy.
var cameraDrift = datasets.Drift{ShiftX: 2, ShiftY: 1, Gain: 0.6, Offset: 0.25, Noise: 0.08}

// TestDriftIsLearntWithoutForgetting is the learning of an incremental
// job under drift, without the plumbing: cycles of a stream judged by the
// built-in CrossEntropy miner (in WASM), its hard examples labelled by an
// oracle and split by trainProb, a candidate trained from the serving
// model with the earlier examples replayed, evaluated against the serving
// model and deployed when its accuracy is higher. One cycle before the
// drift, then the drift: within three cycles of it, the accuracy on the
// drifted data is within 3 points of a model trained offline on all the
// drifted data, and the accuracy on the original data has dropped by at
// most 2 points.
func TestDriftIsLearntWithoutForgetting(t *testing.T) {
	if testing.Short() {
		t.Skip("trains five models")
	}
	ctx := context.Background()
	train, test, err := datasets.FashionSubset()
	if err != nil {
		t.Fatal(err)
	}
	orig, stream, err := train.Split(0.5, 1) // what the base model learnt; what the camera sees
	if err != nil {
		t.Fatal(err)
	}
	drifted, err := stream.Drifted(cameraDrift)
	if err != nil {
		t.Fatal(err)
	}
	driftedTest, _ := test.Drifted(datasets.Drift{ShiftX: 2, ShiftY: 1, Gain: 0.6, Offset: 0.25, Noise: 0.08, Seed: 7})
	fit := ml.FitOptions{Epochs: 10, Optimizer: ml.Adam, Seed: 1}
	base, _ := ml.NewMLP(orig.Cols, []int{128}, 10, 1)
	if err := base.Fit(ctx, orig.X, orig.Y, fit); err != nil {
		t.Fatal(err)
	}
	offline, _ := ml.NewMLP(orig.Cols, []int{128}, 10, 1)
	if err := offline.Fit(ctx, drifted.X, drifted.Y, fit); err != nil {
		t.Fatal(err)
	}
	baseOrig, baseDrift, offDrift := accuracy(t, base, test), accuracy(t, base, driftedTest), accuracy(t, offline, driftedTest)
	t.Logf("base model: %.3f on the original data, %.3f on the drifted; offline on the drifted data: %.3f", baseOrig, baseDrift, offDrift)

	host, err := plugins.New(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = host.Close(ctx) }()
	miner, err := host.Miner("CrossEntropy", map[string]string{"threshold_cross_entropy": "0.9"})
	if err != nil {
		t.Fatal(err)
	}
	serving := base
	var evalSet, newSet, oldSet []incremental.Example
	const perCycle = 2500
	var seq uint64
	recovered := 0
	for cycle := 1; cycle <= 4; cycle++ {
		src := drifted // cycle 1 sees the original data, then the camera drifts
		if cycle == 1 {
			src = stream
		}
		lo := (cycle - 1) * perCycle
		rows := src.X[lo*src.Cols : (lo+perCycle)*src.Cols]
		probs, err := serving.PredictProba(rows)
		if err != nil {
			t.Fatal(err)
		}
		verdicts, err := miner.Mine(ctx, plugins.Batch{Probs: probs, Classes: 10, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		hard := 0
		for i, v := range verdicts {
			if !v.Hard {
				continue
			}
			hard++
			seq++
			e := incremental.Example{Key: fmt.Sprintf("edge1/%d", seq), Seq: seq, Shape: []int{14, 14}, DType: jointinference.DTypeU8,
				Data: u8(src.Row(lo + i)), Label: src.Y[lo+i]}
			if incremental.InTrainSet(e.Key, 0.8) {
				newSet = append(newSet, e)
			} else {
				evalSet = append(evalSet, e)
			}
		}
		set := incremental.TrainSet{Old: oldSet, New: newSet}
		cand, err := incremental.FineTune(ctx, serving, set, incremental.Fit{Epochs: 8, BatchSize: 32, LearningRate: 0.001, Seed: uint64(cycle)})
		if err != nil {
			t.Fatal(err)
		}
		oldSet, newSet = append(oldSet, newSet...), nil
		got, err := incremental.Evaluate(cand, evalSet)
		if err != nil {
			t.Fatal(err)
		}
		was, err := incremental.Evaluate(serving, evalSet)
		if err != nil {
			t.Fatal(err)
		}
		deployed := got["accuracy"][0] > was["accuracy"][0]
		if deployed {
			serving = cand
		}
		o, d := accuracy(t, serving, test), accuracy(t, serving, driftedTest)
		t.Logf("cycle %d: %d of %d samples hard; eval set %d: candidate %.3f, serving %.3f, deployed %v; serving now: %.3f original, %.3f drifted",
			cycle, hard, perCycle, len(evalSet), got["accuracy"][0], was["accuracy"][0], deployed, o, d)
		if cycle > 1 && recovered == 0 && d >= offDrift-0.03 {
			recovered = cycle - 1
			if o < baseOrig-0.02 {
				t.Errorf("cycle %d: %.3f on the original data, more than 2 points below the base model's %.3f", cycle, o, baseOrig)
			}
		}
		if len(probs) != perCycle*10 || hard == 0 || hard == perCycle {
			t.Fatalf("cycle %d: %d hard of %d: the miner does not discriminate", cycle, hard, perCycle)
		}
	}
	if recovered == 0 {
		t.Fatalf("the drifted accuracy never came within 3 points of the offline model's %.3f in 3 cycles", offDrift)
	}
	t.Logf("within 3 points of the offline model after %d cycle(s) of drift", recovered)
}
