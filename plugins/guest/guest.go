// Package guest is the Go SDK for writing Sedna-Go plugins: a plugin author
// writes one function, registers it in init, and builds the package with
// `sedna plugin build DIR` (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared).
//
//	package main
//
//	import "github.com/sedna-go/sedna/plugins/guest"
//
//	func init() {
//		guest.Miner(guest.Info{Name: "Margin", Version: "1.0.0",
//			Parameters: []guest.Param{{Key: "threshold_margin", Default: "0.2"}}},
//			func(s guest.Sample, p guest.Params) (bool, float32, error) { ... })
//	}
//
//	func main() {}
//
// The package provides the ABI's exports (abi_version, alloc, free, manifest,
// mine, aggregate) with //go:wasmexport; every export recovers a panic into an
// error result, so a bug in a plugin is reported, not a crash of the host.
// Tensors are read in place in guest memory; metadata is decoded without
// reflection (reflection msgpack costs ~90 µs a call in a guest).
//
// The handlers are plain Go (HandleMine, HandleAggregate, ManifestBytes) and
// run natively too, which is how a plugin is unit-tested without WASM.
package guest

import (
	"fmt"
	"strconv"
	"unsafe"

	"github.com/sedna-go/sedna/plugins/abi"
)

// Info describes a plugin; Kind is set by Miner or Aggregator.
type Info = abi.PluginInfo

// Param is a parameter with its default.
type Param = abi.Param

// Box is one detection: xmin, ymin, xmax, ymax, score, label.
type Box = [6]float32

// Sample is one inference result: class probabilities and/or boxes. The
// slices alias the call's input: copy what outlives the call.
type Sample struct {
	Probs []float32
	Boxes []Box
	// Inputs is the raw sample, when the host sends it (a miner that runs
	// before inference: mining-then-inference).
	Inputs []float32
}

// Params are a call's parameters: the host fills in the manifest's
// defaults, and so does the SDK for a caller that did not.
type Params struct {
	kv       []abi.KV
	defaults []abi.Param
}

// String returns the value of key, its default, or "".
func (p Params) String(key string) string {
	for _, kv := range p.kv {
		if kv.Key == key {
			return kv.Value
		}
	}
	for _, d := range p.defaults {
		if d.Key == key {
			return d.Default
		}
	}
	return ""
}

func paramsOf(name string, kv []abi.KV) Params {
	for _, in := range infos {
		if in.Name == name {
			return Params{kv: kv, defaults: in.Parameters}
		}
	}
	return Params{kv: kv}
}

// Float parses the value of key as a number.
func (p Params) Float(key string) (float64, error) {
	v, err := strconv.ParseFloat(p.String(key), 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q is not a number", key, p.String(key))
	}
	return v, nil
}

// MineFunc judges one sample. An error marks the sample "not hard" with the
// error as its reason; the rest of the batch goes on.
type MineFunc func(s Sample, p Params) (hard bool, score float32, err error)

// Round is an aggregation's input. Weights alias the call's input.
type Round struct {
	Number  int64
	Weights [][]float32
	Samples []float64
	Global  []float32 // nil when the host sent none
	State   []float32 // nil at the first round
}

// AggregateFunc combines a round's updates into new weights, an optional
// state for the next round, and string metadata.
type AggregateFunc func(r Round, p Params) (weights, state []float32, meta map[string]string, err error)

var (
	infos      []Info
	miners     = map[string]MineFunc{}
	aggregates = map[string]AggregateFunc{}
)

// Miner registers a hard-example miner. Call it from init.
func Miner(info Info, fn MineFunc) {
	info.Kind = abi.KindMiner
	infos = append(infos, info)
	miners[info.Name] = fn
}

// Aggregator registers an aggregator. Call it from init.
func Aggregator(info Info, fn AggregateFunc) {
	info.Kind = abi.KindAggregator
	infos = append(infos, info)
	aggregates[info.Name] = fn
}

// ManifestBytes is the manifest export's result.
func ManifestBytes() []byte {
	return abi.AppendManifest(nil, abi.Manifest{ABI: abi.Version, Plugins: infos})
}

func result(errText string, reasons []abi.Reason, meta []abi.KV, tensors ...abi.Tensor) []byte {
	f := abi.Frame{Meta: abi.AppendResponse(nil, errText, reasons, meta)}
	if errText == "" {
		f.Tensors = tensors
	}
	return f.AppendTo(make([]byte, 0, f.Size()))
}

func fail(format string, args ...any) []byte {
	return result(fmt.Sprintf(format, args...), nil, nil)
}

// recovered turns a panic into an error result.
func recovered(out *[]byte) {
	if r := recover(); r != nil {
		*out = fail("plugin panicked: %v", r)
	}
}

// decodeCall reads a call's frame and request metadata.
func decodeCall(in []byte) (abi.Frame, abi.Request, error) {
	f, err := abi.Decode(in)
	if err != nil {
		return f, abi.Request{}, err
	}
	req, err := abi.ParseRequest(f.Meta)
	return f, req, err
}

// HandleMine runs a mine call on an input frame and returns the result frame.
func HandleMine(in []byte) (out []byte) {
	defer recovered(&out)
	f, req, err := decodeCall(in)
	if err != nil {
		return fail("%v", err)
	}
	fn, ok := miners[req.Plugin]
	if !ok {
		return fail("no miner %q in this module", req.Plugin)
	}
	var probs []float32
	classes, batch := 0, -1
	if t, ok := f.Tensor("probs"); ok {
		if t.DType != abi.F32 || len(t.Shape) != 2 {
			return fail("probs must be f32 [batch, classes]")
		}
		if probs, err = t.ViewF32(); err != nil {
			return fail("%v", err)
		}
		batch, classes = t.Shape[0], t.Shape[1]
	}
	var boxes []Box
	var counts []uint32
	if t, ok := f.Tensor("boxes"); ok {
		c, ok := f.Tensor("box_counts")
		if !ok || c.DType != abi.U32 || t.DType != abi.F32 || len(t.Shape) != 2 || t.Shape[1] != 6 {
			return fail("boxes must be f32 [n, 6] with box_counts u32 [batch]")
		}
		v, err := t.ViewF32()
		if err != nil {
			return fail("%v", err)
		}
		if len(v) > 0 {
			boxes = unsafe.Slice((*Box)(unsafe.Pointer(&v[0])), len(v)/6)
		}
		if counts, err = c.U32(); err != nil {
			return fail("%v", err)
		}
		if batch >= 0 && len(counts) != batch {
			return fail("probs and box_counts disagree on the batch size")
		}
		batch = len(counts)
		total := 0
		for _, n := range counts {
			total += int(n)
		}
		if total != len(boxes) {
			return fail("box_counts do not add up to the number of boxes")
		}
	}
	var inputs []float32
	cols := 0
	if t, ok := f.Tensor("inputs"); ok {
		if t.DType != abi.F32 || len(t.Shape) != 2 {
			return fail("inputs must be f32 [batch, features]")
		}
		if inputs, err = t.ViewF32(); err != nil {
			return fail("%v", err)
		}
		if batch >= 0 && t.Shape[0] != batch {
			return fail("inputs and inference results disagree on the batch size")
		}
		batch, cols = t.Shape[0], t.Shape[1]
	}
	if batch < 0 {
		return fail("no inference results: send probs and/or boxes with box_counts, or inputs")
	}
	hard := make([]byte, batch)
	score := make([]float32, batch)
	var reasons []abi.Reason
	p := paramsOf(req.Plugin, req.Params)
	off := 0
	for i := range batch {
		var s Sample
		if probs != nil {
			s.Probs = probs[i*classes : (i+1)*classes]
		}
		if counts != nil {
			s.Boxes = boxes[off : off+int(counts[i])]
			off += int(counts[i])
		}
		if inputs != nil {
			s.Inputs = inputs[i*cols : (i+1)*cols]
		}
		h, sc, err := fn(s, p)
		if err != nil {
			reasons = append(reasons, abi.Reason{Index: i, Reason: err.Error()})
			continue
		}
		if h {
			hard[i] = 1
		}
		score[i] = sc
	}
	return result("", reasons, nil, abi.U8Tensor("hard", hard), abi.F32Tensor("score", score))
}

// HandleAggregate runs an aggregate call on an input frame.
func HandleAggregate(in []byte) (out []byte) {
	defer recovered(&out)
	f, req, err := decodeCall(in)
	if err != nil {
		return fail("%v", err)
	}
	fn, ok := aggregates[req.Plugin]
	if !ok {
		return fail("no aggregator %q in this module", req.Plugin)
	}
	w, ok := f.Tensor("weights")
	c, ok2 := f.Tensor("counts")
	if !ok || !ok2 || w.DType != abi.F32 || len(w.Shape) != 2 {
		return fail("weights must be f32 [updates, parameters] with counts f64 [updates]")
	}
	flat, err := w.ViewF32()
	if err != nil {
		return fail("%v", err)
	}
	r := Round{Number: req.Round}
	if r.Samples, err = c.F64(); err != nil || len(r.Samples) != w.Shape[0] {
		return fail("counts must be f64 [updates]")
	}
	k, n := w.Shape[0], w.Shape[1]
	for i := range k {
		r.Weights = append(r.Weights, flat[i*n:(i+1)*n])
	}
	if t, ok := f.Tensor("global"); ok {
		if r.Global, err = t.ViewF32(); err != nil {
			return fail("%v", err)
		}
	}
	if t, ok := f.Tensor("state"); ok {
		if r.State, err = t.ViewF32(); err != nil {
			return fail("%v", err)
		}
	}
	weights, state, meta, err := fn(r, paramsOf(req.Plugin, req.Params))
	if err != nil {
		return fail("%v", err)
	}
	var kv []abi.KV
	for key, v := range meta {
		kv = append(kv, abi.KV{Key: key, Value: v})
	}
	tensors := []abi.Tensor{abi.F32Tensor("weights", weights)}
	if state != nil {
		tensors = append(tensors, abi.F32Tensor("state", state))
	}
	return result("", nil, kv, tensors...)
}
