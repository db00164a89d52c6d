package abi_test

import (
	"fmt"

	"github.com/sedna-go/sedna/plugins/abi"
)

// A call's input is a frame: msgpack metadata and raw little-endian tensors.
func Example() {
	in := abi.Frame{
		Meta:    abi.AppendRequest(nil, abi.Request{Plugin: "CrossEntropy", Params: []abi.KV{{Key: "threshold_cross_entropy", Value: "0.5"}}}),
		Tensors: []abi.Tensor{abi.F32Tensor("probs", []float32{0.5, 0.5, 0.9, 0.1}, 2, 2)},
	}
	wire := in.AppendTo(nil)
	out, _ := abi.Decode(wire)
	req, _ := abi.ParseRequest(out.Meta)
	probs, _ := out.Tensors[0].F32()
	fmt.Println(len(wire), req.Plugin, req.Param("threshold_cross_entropy"), out.Tensors[0].Shape, probs)
	// Output: 128 CrossEntropy 0.5 [2 2] [0.5 0.5 0.9 0.1]
}
