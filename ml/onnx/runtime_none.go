//go:build !onnx || !cgo

package onnx

// Built reports whether this binary has ONNX Runtime's binding (the build
// tag onnx, with cgo).
const Built = false

// Load would load an ONNX model; this build has no ONNX Runtime, so it
// checks o and returns an error wrapping ErrNoRuntime.
func Load(data []byte, o Options) (*Model, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	return nil, ErrNoRuntime
}

// Available says whether ONNX models can be served: never in this build.
func Available() error { return ErrNoRuntime }

// Inspect would list the graph's tensors; this build has no ONNX Runtime.
func Inspect(data []byte, library string) (inputs, outputs []Tensor, err error) {
	return nil, nil, ErrNoRuntime
}

// Version is the loaded ONNX Runtime's version: none in this build.
func Version() string { return "" }
