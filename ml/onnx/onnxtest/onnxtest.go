// Package onnxtest writes small ONNX models for tests, byte by byte (the
// ONNX protobuf schema's field numbers, with protowire), so tests need
// neither a framework nor Python: a dense classifier with known weights,
// and graphs that ONNX Runtime must refuse.
package onnxtest

import (
	"os"
	"path/filepath"
	"runtime"

	"github.com/sedna-go/sedna/ml/onnx/internal/onnxpb"
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
		g = onnxpb.Field(g, onnxpb.GraphInitializer, onnxpb.Tensor("shape", []int64{2}, nil, []int64{-1, int64(in)}))
		g = onnxpb.Field(g, onnxpb.GraphNode, onnxpb.Node("Reshape", "", []string{"x", "shape"}, []string{"rows"}, nil))
		x = "rows"
	}
	var w []float32
	for _, r := range d.W {
		w = append(w, r...)
	}
	g = onnxpb.Field(g, onnxpb.GraphInitializer, onnxpb.Tensor("W", []int64{int64(k), int64(in)}, w, nil))
	g = onnxpb.Field(g, onnxpb.GraphInitializer, onnxpb.Tensor("B", []int64{int64(k)}, d.B, nil))
	op := "Gemm"
	if d.Op != "" {
		op = d.Op
	}
	out := "y"
	if d.Softmax {
		out = "z"
	}
	g = onnxpb.Field(g, onnxpb.GraphNode, onnxpb.Node(op, "", []string{x, "W", "B"}, []string{out}, map[string]int64{"transB": 1}))
	if d.Softmax {
		g = onnxpb.Field(g, onnxpb.GraphNode, onnxpb.Node("Softmax", "", []string{"z"}, []string{"y"}, map[string]int64{"axis": 1}))
	}
	g = onnxpb.Name(g, "dense")
	g = onnxpb.Field(g, onnxpb.GraphInput, onnxpb.ValueInfo("x", inShape))
	g = onnxpb.Field(g, onnxpb.GraphOutput, onnxpb.ValueInfo("y", []int64{-1, int64(k)}))
	opset := d.Opset
	if opset == 0 {
		opset = 13
	}
	return onnxpb.Model("onnxtest", opset, g)
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
