package plugins

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/sedna-go/sedna/plugins/abi"
)

// Engine says how this build runs plugins: wazero compiles WASM to machine
// code on amd64 and arm64 and interprets it elsewhere (armv7, 386).
func Engine() string {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return "compiler"
	}
	return "interpreter"
}

// CallTimes are one plugin's timed calls (Host.Time).
type CallTimes struct {
	Plugin string `json:"plugin"`
	Kind   string `json:"kind"`
	Calls  int    `json:"calls"`
	// Size is what each call took: a miner's samples, an aggregator's
	// updates × weights.
	Size int           `json:"size"`
	P50  time.Duration `json:"p50Nanos"`
	P99  time.Duration `json:"p99Nanos"`
}

// TimeOptions size the synthetic inputs of Host.Time.
type TimeOptions struct {
	Calls   int // default 20
	Batch   int // a miner's samples per call (10 classes, 3 boxes each); default 64
	Updates int // an aggregator's updates per call; default 10
	Weights int // float32 per update; default 10,000
}

// Time calls the plugin named (its default parameters) on synthetic input
// and times each call: what a miner or an aggregator costs on this
// machine, sandbox included. The input is the same for every call and
// every run (fixed seed), so runs on two boards compare.
func (h *Host) Time(ctx context.Context, name string, o TimeOptions) (CallTimes, error) {
	if o.Calls <= 0 {
		o.Calls = 20
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.Updates <= 0 {
		o.Updates = 10
	}
	if o.Weights <= 0 {
		o.Weights = 10_000
	}
	var kind string
	for _, p := range h.Plugins() {
		if p.Name == name {
			kind = p.Kind
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	var call func() error
	ct := CallTimes{Plugin: name, Kind: kind, Calls: o.Calls}
	switch kind {
	case abi.KindMiner:
		m, err := h.Miner(name, nil)
		if err != nil {
			return ct, err
		}
		const classes = 10
		b := Batch{Classes: classes, Probs: make([]float32, o.Batch*classes), Boxes: make([][]Box, o.Batch), Seed: 1}
		for i := range o.Batch {
			var sum float32
			row := b.Probs[i*classes : (i+1)*classes]
			for j := range row {
				row[j] = r.Float32() + 1e-3
				sum += row[j]
			}
			for j := range row {
				row[j] /= sum
			}
			for range 3 {
				x, y := r.Float32()*0.8, r.Float32()*0.8
				b.Boxes[i] = append(b.Boxes[i], Box{x, y, x + 0.2, y + 0.2, r.Float32(), float32(r.IntN(classes))})
			}
		}
		ct.Size = o.Batch
		call = func() error { _, err := m.Mine(ctx, b); return err }
	case abi.KindAggregator:
		a, err := h.Aggregator(name, nil)
		if err != nil {
			return ct, err
		}
		rd := Round{Number: 1, Global: make([]float32, o.Weights)}
		for range o.Updates {
			w := make([]float32, o.Weights)
			for j := range w {
				w[j] = float32(r.NormFloat64())
			}
			rd.Updates = append(rd.Updates, Update{Weights: w, Samples: float64(1 + r.IntN(100))})
		}
		ct.Size = o.Updates * o.Weights
		call = func() error { _, err := a.Aggregate(ctx, rd); return err }
	case "":
		return ct, fmt.Errorf("plugins: no plugin %q", name)
	default:
		return ct, fmt.Errorf("plugins: %s is a %s: only miners and aggregators are timed", name, kind)
	}
	if err := call(); err != nil { // the first call instantiates the module: not timed
		return ct, fmt.Errorf("plugins: %s: %w", name, err)
	}
	took := make([]time.Duration, o.Calls)
	for i := range took {
		t0 := time.Now()
		if err := call(); err != nil {
			return ct, fmt.Errorf("plugins: %s: %w", name, err)
		}
		took[i] = time.Since(t0)
	}
	slices.Sort(took)
	ct.P50, ct.P99 = took[len(took)/2], took[(len(took)-1)*99/100]
	return ct, nil
}
