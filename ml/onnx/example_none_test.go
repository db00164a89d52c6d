//go:build !onnx || !cgo

package onnx_test

import (
	"errors"
	"fmt"

	"github.com/sedna-go/sedna/ml/onnx"
)

// A pure-Go build refuses ONNX models in one line that names the binary
// serving them.
func ExampleLoad() {
	_, err := onnx.Load([]byte{0x08, 0x08}, onnx.Options{})
	fmt.Println(errors.Is(err, onnx.ErrNoRuntime))
	// Output: true
}
