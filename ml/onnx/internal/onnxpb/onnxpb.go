// Package onnxpb writes the parts of the ONNX protobuf schema (onnx.proto,
// by field number) that ml/onnx's exporter and its tests need: a model, a
// graph's nodes, initializers and value infos. Decoding is ONNX Runtime's.
package onnxpb

import (
	"encoding/binary"
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Model is a ModelProto of IR version 8 around graph, importing the
// default domain's opset.
func Model(producer string, opset int64, graph []byte) []byte {
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 8)
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendString(m, producer)
	var opsetID []byte
	opsetID = protowire.AppendTag(opsetID, 2, protowire.VarintType)
	opsetID = protowire.AppendVarint(opsetID, uint64(opset))
	m = Field(m, 8, opsetID)
	return Field(m, 7, graph)
}

// Graph field numbers: nodes, the name, initializers, inputs, outputs.
const (
	GraphNode        = 1
	GraphName        = 2
	GraphInitializer = 5
	GraphInput       = 11
	GraphOutput      = 12
)

// Name appends a graph's name.
func Name(g []byte, name string) []byte {
	g = protowire.AppendTag(g, GraphName, protowire.BytesType)
	return protowire.AppendString(g, name)
}

// Field appends msg as field num.
func Field(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// Tensor is a TensorProto of float32 values (raw little-endian), or of
// int64 ones when ints is set.
func Tensor(name string, dims []int64, f []float32, ints []int64) []byte {
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

// Node is a NodeProto of op in domain ("" the default) with integer
// attributes.
func Node(op, domain string, in, out []string, ints map[string]int64) []byte {
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
	for _, name := range slices.Sorted(maps.Keys(ints)) {
		v := ints[name]
		var a []byte
		a = protowire.AppendTag(a, 1, protowire.BytesType)
		a = protowire.AppendString(a, name)
		a = protowire.AppendTag(a, 3, protowire.VarintType)
		a = protowire.AppendVarint(a, uint64(v))
		a = protowire.AppendTag(a, 20, protowire.VarintType)
		a = protowire.AppendVarint(a, 2) // INT
		n = Field(n, 5, a)
	}
	if domain != "" {
		n = protowire.AppendTag(n, 7, protowire.BytesType)
		n = protowire.AppendString(n, domain)
	}
	return n
}

// ValueInfo is a float32 tensor's ValueInfoProto; a dimension below 1 is
// dynamic (named "batch").
func ValueInfo(name string, shape []int64) []byte {
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
		sh = Field(sh, 1, dim)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, 1) // FLOAT
	tt = Field(tt, 2, sh)
	var v []byte
	v = protowire.AppendTag(v, 1, protowire.BytesType)
	v = protowire.AppendString(v, name)
	return Field(v, 2, Field(nil, 1, tt))
}
