// Package onnxtest writes small ONNX models for tests, byte by byte (the
// ONNX protobuf schema's field numbers, with protowire), so tests need
// neither a framework nor Python: a dense classifier with known weights,
// and graphs that ONNX Runtime must refuse.
package onnxtest

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"

	"google.golang.org/protobuf/encoding/protowire"
)

// Dense is a model of one dense layer: input "x" of shape [batch, Inputs],
// output "y" = x·Wᵀ + B of shape [batch, len(B)] (Gemm with transB), then
// a Softmax when Softmax is set. Op, when set, replaces Gemm's operator
// type (an operator ONNX Runtime lacks, say).
type Dense struct {
	W       [][]float32 // len(B) rows of Inputs values
	B       []float32
	Softmax bool
	Op      string
	// Shape, when set, is the input's shape instead of [batch, Inputs]
	// (-1 for a dynamic dimension); the graph reshapes it to rows first.
	Shape []int64
	// Opset is the default domain's opset; 0 means 13.
	Opset int64
}

// Bytes encodes the model.
func (d Dense) Bytes() []byte {
	k, in := len(d.W), len(d.W[0])
	var g []byte
	inShape := []int64{-1, int64(in)}
	x := "x"
	if d.Shape != nil {
		inShape = d.Shape
		g = field(g, 5, tensor("shape", []int64{2}, nil, []int64{-1, int64(in)}))
		g = field(g, 1, node("Reshape", "", []string{"x", "shape"}, []string{"rows"}, nil))
		x = "rows"
	}
	var w []float32
	for _, r := range d.W {
		w = append(w, r...)
	}
	g = field(g, 5, tensor("W", []int64{int64(k), int64(in)}, w, nil))
	g = field(g, 5, tensor("B", []int64{int64(k)}, d.B, nil))
	op := "Gemm"
	if d.Op != "" {
		op = d.Op
	}
	out := "y"
	if d.Softmax {
		out = "z"
	}
	g = field(g, 1, node(op, "", []string{x, "W", "B"}, []string{out}, map[string]int64{"transB": 1}))
	if d.Softmax {
		g = field(g, 1, node("Softmax", "", []string{"z"}, []string{"y"}, map[string]int64{"axis": 1}))
	}
	g = protowire.AppendTag(g, 2, protowire.BytesType)
	g = protowire.AppendString(g, "dense")
	g = field(g, 11, valueInfo("x", inShape))
	g = field(g, 12, valueInfo("y", []int64{-1, int64(k)}))

	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 8) // IR version 8
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendString(m, "onnxtest")
	opset := d.Opset
	if opset == 0 {
		opset = 13
	}
	var opsetID []byte
	opsetID = protowire.AppendTag(opsetID, 2, protowire.VarintType)
	opsetID = protowire.AppendVarint(opsetID, uint64(opset))
	m = field(m, 8, opsetID)
	m = field(m, 7, g)
	return m
}

func field(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// tensor is a TensorProto of float32 values (raw little-endian), or of
// int64 ones when ints is set.
func tensor(name string, dims []int64, f []float32, ints []int64) []byte {
	var t []byte
	for _, d := range dims {
		t = protowire.AppendTag(t, 1, protowire.VarintType)
		t = protowire.AppendVarint(t, uint64(d))
	}
	typ := uint64(1) // FLOAT
	var raw []byte
	if ints != nil {
		typ = 7 // INT64
		for _, v := range ints {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
		}
	} else {
		for _, v := range f {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	}
	t = protowire.AppendTag(t, 2, protowire.VarintType)
	t = protowire.AppendVarint(t, typ)
	t = protowire.AppendTag(t, 8, protowire.BytesType)
	t = protowire.AppendString(t, name)
	t = protowire.AppendTag(t, 9, protowire.BytesType)
	return protowire.AppendBytes(t, raw)
}

func node(op, domain string, in, out []string, ints map[string]int64) []byte {
	var n []byte
	for _, s := range in {
		n = protowire.AppendTag(n, 1, protowire.BytesType)
		n = protowire.AppendString(n, s)
	}
	for _, s := range out {
		n = protowire.AppendTag(n, 2, protowire.BytesType)
		n = protowire.AppendString(n, s)
	}
	n = protowire.AppendTag(n, 4, protowire.BytesType)
	n = protowire.AppendString(n, op)
	for name, v := range ints {
		var a []byte
		a = protowire.AppendTag(a, 1, protowire.BytesType)
		a = protowire.AppendString(a, name)
		a = protowire.AppendTag(a, 3, protowire.VarintType)
		a = protowire.AppendVarint(a, uint64(v))
		a = protowire.AppendTag(a, 20, protowire.VarintType)
		a = protowire.AppendVarint(a, 2) // INT
		n = field(n, 5, a)
	}
	if domain != "" {
		n = protowire.AppendTag(n, 7, protowire.BytesType)
		n = protowire.AppendString(n, domain)
	}
	return n
}

// valueInfo is a float32 tensor's ValueInfoProto; a dimension below 1 is
// dynamic (named "batch").
func valueInfo(name string, shape []int64) []byte {
	var sh []byte
	for _, d := range shape {
		var dim []byte
		if d > 0 {
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d))
		} else {
			dim = protowire.AppendTag(dim, 2, protowire.BytesType)
			dim = protowire.AppendString(dim, "batch")
		}
		sh = field(sh, 1, dim)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, 1) // FLOAT
	tt = field(tt, 2, sh)
	var v []byte
	v = protowire.AppendTag(v, 1, protowire.BytesType)
	v = protowire.AppendString(v, name)
	return field(v, 2, field(nil, 1, tt))
}

// Library returns the ONNX Runtime library make onnxruntime installs in
// the module's bin/ (found from this file's directory), "" when there is
// none; tests set it as Options.Library when SEDNA_ONNXRUNTIME is unset.
func Library() string {
	if p := os.Getenv("SEDNA_ONNXRUNTIME"); p != "" {
		return p
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "libonnxruntime.so.1")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// CNN is the path of the committed example model: the PyTorch CNN of
// examples/onnx (fashion-cnn.onnx), found from this file's directory.
func CNN() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "examples", "onnx", "fashion-cnn.onnx")
}
