//go:build onnx && cgo

package onnx_test

import (
	"fmt"

	"github.com/sedna-go/sedna/ml/onnx"
	"github.com/sedna-go/sedna/ml/onnx/onnxtest"
)

// Load an ONNX classifier (here a dense layer written by onnxtest; a
// framework's export in practice) and ask it for class probabilities. The
// graph gives logits; Load applies the softmax.
func ExampleLoad() {
	model := onnxtest.Dense{W: [][]float32{{1, 0}, {0, 1}}, B: []float32{0, 0}}.Bytes()
	m, err := onnx.Load(model, onnx.Options{Library: onnxtest.Library()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	p, err := m.PredictProba([]float32{2, 0})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m)
	fmt.Printf("%.3f\n", p)
	// Output:
	// onnx x [2] -> y [2]
	// [0.881 0.119]
}
