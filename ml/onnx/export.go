package onnx

import (
	"fmt"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/onnx/internal/onnxpb"
)

// Export writes n, a model of the learning substrate, as an ONNX graph
// (opset 13) that any ONNX runtime serves with the same answers: input
// "input" of shape [batch, Inputs], a Gemm per layer with a Relu between
// them, a Softmax, output "probabilities" of shape [batch, Classes]. Its
// Model declares postprocess none (the graph ends in its own softmax).
// Pure Go: it needs no runtime.
func Export(n *ml.Network) ([]byte, error) {
	sizes, params := n.Sizes(), n.Weights()
	var g []byte
	x, off := "input", 0
	for l := 1; l < len(sizes); l++ {
		in, out := sizes[l-1], sizes[l]
		if off+in*out+out > len(params) {
			return nil, fmt.Errorf("onnx: export: %d weights for layer widths %v", len(params), sizes)
		}
		w, b := fmt.Sprintf("W%d", l), fmt.Sprintf("B%d", l)
		g = onnxpb.Field(g, onnxpb.GraphInitializer, onnxpb.Tensor(w, []int64{int64(out), int64(in)}, params[off:off+in*out], nil))
		g = onnxpb.Field(g, onnxpb.GraphInitializer, onnxpb.Tensor(b, []int64{int64(out)}, params[off+in*out:off+in*out+out], nil))
		off += in*out + out
		z := fmt.Sprintf("z%d", l)
		g = onnxpb.Field(g, onnxpb.GraphNode, onnxpb.Node("Gemm", "", []string{x, w, b}, []string{z}, map[string]int64{"transB": 1}))
		x = z
		if l < len(sizes)-1 {
			a := fmt.Sprintf("a%d", l)
			g = onnxpb.Field(g, onnxpb.GraphNode, onnxpb.Node("Relu", "", []string{z}, []string{a}, nil))
			x = a
		}
	}
	g = onnxpb.Field(g, onnxpb.GraphNode, onnxpb.Node("Softmax", "", []string{x}, []string{"probabilities"}, map[string]int64{"axis": 1}))
	g = onnxpb.Name(g, n.Kind().String())
	g = onnxpb.Field(g, onnxpb.GraphInput, onnxpb.ValueInfo("input", []int64{-1, int64(n.Inputs())}))
	g = onnxpb.Field(g, onnxpb.GraphOutput, onnxpb.ValueInfo("probabilities", []int64{-1, int64(n.Classes())}))
	return onnxpb.Model("sedna-go", 13, g), nil
}
