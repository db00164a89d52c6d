package incremental

import (
	"context"
	"fmt"
	"strconv"

	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
)

// Example is a labelled sample of a job's train or eval set: a hard
// example a node mined, as the device sent it, with the label it got.
type Example struct {
	// Key names it in the job (node/seq): the train/eval split hashes it.
	Key   string `msgpack:"key"`
	Shape []int  `msgpack:"shape,omitempty"`
	// DType is jointinference.DTypeU8 ("" too) or DTypeF32.
	DType string `msgpack:"dtype,omitempty"`
	Data  []byte `msgpack:"data"`
	Label int    `msgpack:"label"`
	// Boxes are a detection example's objects: xmin, ymin, xmax, ymax,
	// score (ignored), class.
	Boxes [][6]float32 `msgpack:"boxes,omitempty"`
	// Seq is its place in the job's labelled examples, in the order they
	// were labelled.
	Seq uint64 `msgpack:"seq"`
	// Attr is its task attribute (lifelong jobs).
	Attr string `msgpack:"attr,omitempty"`
}

// Values returns the example's values as floats, as the inference worker
// read them.
func (e Example) Values() ([]float32, error) {
	r := jointinference.Request{Shape: e.Shape, DType: e.DType, Data: e.Data}
	return r.Floats()
}

// Fit is how a training fits the serving model to the train set: Sedna's
// template env names (epochs, batch_size, learning_rate) are read.
type Fit struct {
	Epochs       int
	BatchSize    int
	LearningRate float32
	Seed         uint64
}

// FitOf reads a worker's parameters; what is not set has a default that
// fine-tunes (8 epochs of Adam at 0.001, batches of 32).
func FitOf(params map[string]string) (Fit, error) {
	f := Fit{Epochs: 8, BatchSize: 32, LearningRate: 0.001, Seed: 1}
	for _, p := range []struct {
		key    string
		lo, hi int
		dst    *int
	}{{"epochs", 1, 1000, &f.Epochs}, {"batch_size", 1, 4096, &f.BatchSize}} {
		if v := params[p.key]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < p.lo || n > p.hi {
				return f, fmt.Errorf("incremental: %s=%q: want %d to %d", p.key, v, p.lo, p.hi)
			}
			*p.dst = n
		}
	}
	if v := params["learning_rate"]; v != "" {
		x, err := strconv.ParseFloat(v, 32)
		if err != nil || !(x > 0 && x <= 1) {
			return f, fmt.Errorf("incremental: learning_rate=%q: want a number in (0, 1]", v)
		}
		f.LearningRate = float32(x)
	}
	return f, nil
}

// TrainSet is what a training learns from: the examples labelled since
// the last training that succeeded, and the earlier ones.
type TrainSet struct {
	New, Old []Example
}

// FineTune fine-tunes a copy of base on set and returns it. The earlier
// examples are replayed: they are repeated until they count as many as
// all the examples together, so a cycle of new data (a drift) does not
// make the model forget what the earlier cycles taught.
func FineTune(ctx context.Context, base *ml.Network, set TrainSet, fit Fit) (*ml.Network, error) {
	nx, ny, err := matrix(base, set.New)
	if err != nil {
		return nil, err
	}
	ox, oy, err := matrix(base, set.Old)
	if err != nil {
		return nil, err
	}
	return fineTuneRows(ctx, base, nx, ny, ox, oy, fit)
}

// fineTuneRows fine-tunes a copy of base on the new rows and the old ones,
// the old replayed until they weigh as much as all together.
func fineTuneRows(ctx context.Context, base *ml.Network, nx []float32, ny []int, ox []float32, oy []int, fit Fit) (*ml.Network, error) {
	x := append(append([]float32(nil), nx...), ox...)
	y := append(append([]int(nil), ny...), oy...)
	if len(y) == 0 {
		return nil, fmt.Errorf("incremental: nothing to train on")
	}
	// Replay: the earlier examples again, until they weigh as much as all.
	if n := len(oy); n > 0 {
		in, total := base.Inputs(), len(y)
		for k := range total {
			j := len(ny) + k%n
			x, y = append(x, x[j*in:(j+1)*in]...), append(y, y[j])
		}
	}
	m := base.Clone().(*ml.Network)
	err := m.Fit(ctx, x, y, ml.FitOptions{Epochs: fit.Epochs, BatchSize: fit.BatchSize, LearningRate: fit.LearningRate,
		Optimizer: ml.Adam, Seed: fit.Seed})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Evaluate scores m on examples: accuracy (one value), and precision and
// recall (one value per class; a trigger on the bare name reads their
// mean over the classes).
func Evaluate(m ml.Predictor, examples []Example) (Metrics, error) {
	if len(examples) == 0 {
		return nil, fmt.Errorf("incremental: the eval set is empty")
	}
	x, y, err := matrix(m, examples)
	if err != nil {
		return nil, err
	}
	ev, err := ml.Evaluate(m, x, y)
	if err != nil {
		return nil, err
	}
	out := Metrics{"accuracy": {ev.Accuracy}}
	for _, s := range ev.Confusion.PerClass() {
		out["precision"] = append(out["precision"], s.Precision)
		out["recall"] = append(out["recall"], s.Recall)
	}
	return out, nil
}

// matrix is examples as rows and labels for m, each checked to fit it.
func matrix(m ml.Predictor, examples []Example) ([]float32, []int, error) {
	in := m.Inputs()
	x := make([]float32, 0, len(examples)*in)
	y := make([]int, 0, len(examples))
	for _, e := range examples {
		v, err := e.Values()
		if err != nil {
			return nil, nil, fmt.Errorf("incremental: example %s: %w", e.Key, err)
		}
		if len(v) != in {
			return nil, nil, fmt.Errorf("incremental: example %s has %d values; the model takes %d", e.Key, len(v), in)
		}
		if e.Label < 0 || e.Label >= m.Classes() {
			return nil, nil, fmt.Errorf("incremental: example %s is labelled %d; the model has %d classes", e.Key, e.Label, m.Classes())
		}
		x, y = append(x, v...), append(y, e.Label)
	}
	return x, y, nil
}
