package plugins

import (
	"context"
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/sedna-go/sedna/plugins/abi"
)

// Update is one client's contribution to a round.
type Update struct {
	Weights []float32 `json:"weights"`
	Samples float64   `json:"samples"`
}

// Round is the input of an aggregation.
type Round struct {
	Number  int64
	Updates []Update
	// Global is the model the round started from (FedAvgM needs it).
	Global []float32
	// State is what the aggregator returned last round (FedAvgM's
	// velocity); nil at the first round.
	State []float32
}

// Result is an aggregation's output. Keep State for the next round.
type Result struct {
	Weights  []float32         `json:"weights"`
	State    []float32         `json:"state,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Aggregator is a configured aggregator. Safe for concurrent use; it holds no
// state between rounds (the caller keeps Result.State), so a restarted job
// resumes from what it persisted.
type Aggregator struct {
	info   Info
	mod    *module
	params []abi.KV
}

// Aggregator returns the aggregator called name with params over its
// defaults.
func (h *Host) Aggregator(name string, params map[string]string) (*Aggregator, error) {
	e, kv, err := h.lookup(name, abi.KindAggregator, params)
	if err != nil {
		return nil, err
	}
	return &Aggregator{info: e.info, mod: e.mod, params: kv}, nil
}

// Info describes the aggregator.
func (a *Aggregator) Info() Info { return a.info }

// Aggregate combines a round's updates. Updates with no samples or with
// non-finite weights are left out by the built-ins and named in
// Metadata["excluded"].
func (a *Aggregator) Aggregate(ctx context.Context, r Round) (Result, error) {
	if len(r.Updates) == 0 {
		return Result{}, fmt.Errorf("plugins: %s: %w: a round needs at least one update", a.info.Name, ErrRejected)
	}
	n := len(r.Updates[0].Weights)
	counts := make([]float64, len(r.Updates))
	stacked := make([][]byte, 0, len(r.Updates))
	for i, u := range r.Updates {
		if len(u.Weights) != n {
			return Result{}, fmt.Errorf("plugins: %s: update %d has %d weights, update 0 has %d", a.info.Name, i, len(u.Weights), n)
		}
		counts[i] = u.Samples
		stacked = append(stacked, f32Bytes(u.Weights))
	}
	frame := abi.Frame{
		Meta: abi.AppendRequest(nil, abi.Request{Plugin: a.info.Name, Params: a.params, Round: r.Number}),
		Tensors: []abi.Tensor{
			{Name: "weights", DType: abi.F32, Shape: []int{len(r.Updates), n}, Parts: stacked},
			abi.F64Tensor("counts", counts),
		},
	}
	for _, opt := range []struct {
		name string
		v    []float32
	}{{"global", r.Global}, {"state", r.State}} {
		if opt.v == nil {
			continue
		}
		if len(opt.v) != n {
			return Result{}, fmt.Errorf("plugins: %s: %s has %d weights, updates have %d", a.info.Name, opt.name, len(opt.v), n)
		}
		frame.Tensors = append(frame.Tensors, abi.Tensor{Name: opt.name, DType: abi.F32, Shape: []int{n}, Data: f32Bytes(opt.v)})
	}
	var res Result
	err := a.mod.call(ctx, a.info.Name, "aggregate", &frame, func(f abi.Frame, meta response) error {
		w, ok := f.Tensor("weights")
		if !ok || w.DType != abi.F32 || w.Elems() != n {
			return fmt.Errorf("result lacks weights f32[%d]", n)
		}
		var err error
		if res.Weights, err = w.F32(); err != nil {
			return err
		}
		if s, ok := f.Tensor("state"); ok {
			if res.State, err = s.F32(); err != nil {
				return err
			}
		}
		res.Metadata = meta.Metadata
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("plugins: %s: %w", a.info.Name, err)
	}
	return res, nil
}

// f32Bytes views float32s as their little-endian bytes without a copy on little-endian
// machines.
func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return abi.F32Tensor("", v).Data
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}
