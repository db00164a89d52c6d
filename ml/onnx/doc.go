// Package onnx serves ONNX models, the format PyTorch, TensorFlow, Paddle
// and MindSpore export, through ONNX Runtime: a Model loaded here is an
// ml.Predictor, so every paradigm's built-in inference serves it as it
// serves the project's own models.
//
// ONNX Runtime is a C++ library. It is loaded at run time (dlopen, by
// github.com/yalue/onnxruntime_go), which needs cgo; the default sedna
// binary is pure Go (CGO_ENABLED=0, cross-built for ARM boards without a C
// toolchain), so this package's runtime is behind the build tag "onnx":
//
//	CGO_ENABLED=1 go build -tags onnx ./cmd/sedna   # make onnx: bin/sedna-onnx
//
// A build without the tag compiles everything else of this package (the
// options, the preprocessing, the checks of a Model's declarations) and
// Load returns ErrNoRuntime, one line that says which binary to run
// instead. A build with the tag finds the shared library as Library says
// (make onnxruntime takes it from npm's onnxruntime-node, which ships it
// for linux x64 and arm64).
//
// The preprocessing a framework's model expects (scaling, per-channel mean
// and standard deviation, the layout of channels) is declared with the
// model (Options, from the Model resource) and applied here, so devices
// keep sending the samples they send to every other model. What the graph
// says itself (input and output names, shapes) is read from it.
package onnx
