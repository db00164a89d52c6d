package onnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// RuntimeVersion is the ONNX Runtime release this package's binding pairs
// with (github.com/yalue/onnxruntime_go v1.27.0 carries its C API headers);
// make onnxruntime installs that release's library.
const RuntimeVersion = "1.24.3"

// LibraryEnv names the environment variable that gives the path of the
// ONNX Runtime shared library, overriding the search of Library.
const LibraryEnv = "SEDNA_ONNXRUNTIME"

// LibraryName is the file name of the ONNX Runtime shared library on Linux.
const LibraryName = "libonnxruntime.so.1"

// Errors of this package, for errors.Is.
var (
	// ErrNoRuntime: this binary was built without ONNX Runtime.
	ErrNoRuntime = errors.New("this sedna is built without ONNX Runtime: ONNX models are served by sedna-onnx (make onnx), or export the model to the sedna format")
	// ErrRuntime: the ONNX Runtime library could not be loaded.
	ErrRuntime = errors.New("ONNX Runtime not loaded")
	// ErrModel: the bytes are not an ONNX model ONNX Runtime can run
	// (truncated, corrupt, an operator or opset it lacks).
	ErrModel = errors.New("not an ONNX model ONNX Runtime can run")
	// ErrDeclared: the model does not match what its Model declares, or
	// what a classifier needs (one float32 input, a [batch, classes]
	// output).
	ErrDeclared = errors.New("model does not match its declaration")
	// ErrInput: a sample that does not fit the model.
	ErrInput = errors.New("sample does not fit the model")
)

// Layouts of an image input: where its channel axis is.
const (
	LayoutNCHW = "NCHW" // [batch, channels, height, width]: PyTorch, Paddle, MindSpore
	LayoutNHWC = "NHWC" // [batch, height, width, channels]: TensorFlow, Keras
)

// Options is what a Model declares about its ONNX file (the Model
// resource's inputs, outputs, preprocess and postprocess); every field may
// be left out, to be read from the graph or to take its default.
type Options struct {
	// Input is the name of the graph's input to feed; "" for a graph with
	// one input.
	Input string
	// Output is the name of the output holding the class scores; "" for
	// the graph's first output.
	Output string
	// Shape is one sample's shape, without the batch axis ([1, 14, 14],
	// say); nil takes it from the graph, whose dimensions but the batch
	// must then be fixed.
	Shape []int64
	// Pre is the preprocessing the model expects.
	Pre Preprocess
	// Softmax turns the output into probabilities: Load's default (nil)
	// is true, since frameworks export logits; false for a model whose
	// last operator is already a softmax.
	Softmax *bool
	// Threads is ONNX Runtime's number of threads within an operator; 0
	// means 1, which keeps an edge node's other work responsive (a worker
	// serves batches from several goroutines anyway).
	Threads int
	// Library is the shared library's path; "" searches as Library does.
	Library string
}

// Preprocess turns a sample as devices send it into the model's input:
// each value is multiplied by Scale, then (v - Mean[c]) / Std[c] for its
// channel c, and an image of several channels, sent height × width ×
// channels as images are stored, is reordered to channels first for an
// NCHW model.
type Preprocess struct {
	// Scale multiplies every value first; 0 means 1 (samples of the
	// project's data sets are already in [0, 1]; 1/255 for raw bytes).
	Scale float32
	// Mean and Std are per channel, or one value for every channel; empty
	// means 0 and 1.
	Mean, Std []float32
	// Layout is LayoutNCHW (the default) or LayoutNHWC.
	Layout string
}

// Check returns an error wrapping ErrDeclared for declarations that cannot
// be right whatever the graph: a zero or non-finite Std, a negative
// dimension, an unknown layout.
func (o Options) Check() error {
	if l := o.Pre.Layout; l != "" && l != LayoutNCHW && l != LayoutNHWC {
		return fmt.Errorf("onnx: %w: layout %q: want %s or %s", ErrDeclared, l, LayoutNCHW, LayoutNHWC)
	}
	for _, d := range o.Shape {
		if d < 1 {
			return fmt.Errorf("onnx: %w: shape %v: a sample's dimensions are at least 1 (leave out the batch axis)", ErrDeclared, o.Shape)
		}
	}
	if !finite(o.Pre.Scale) {
		return fmt.Errorf("onnx: %w: scale %v is not finite", ErrDeclared, o.Pre.Scale)
	}
	for _, m := range o.Pre.Mean {
		if !finite(m) {
			return fmt.Errorf("onnx: %w: mean %v is not finite", ErrDeclared, o.Pre.Mean)
		}
	}
	for _, s := range o.Pre.Std {
		if s == 0 || !finite(s) {
			return fmt.Errorf("onnx: %w: std %v: each must be finite and not 0", ErrDeclared, o.Pre.Std)
		}
	}
	if o.Threads < 0 || o.Threads > 256 {
		return fmt.Errorf("onnx: %w: threads %d: want 0 to 256", ErrDeclared, o.Threads)
	}
	return nil
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

// channels is the channel count of a sample of shape (without the batch
// axis) in layout: the first dimension for NCHW, the last for NHWC, 1 for
// a shape of fewer than 3 dimensions.
func channels(shape []int64, layout string) int {
	if len(shape) < 3 {
		return 1
	}
	if layout == LayoutNHWC {
		return int(shape[len(shape)-1])
	}
	return int(shape[0])
}

// prep is a Preprocess fitted to a sample shape: per-channel factors and
// the reordering, computed once.
type prep struct {
	chans     int
	mul, add  []float32 // v' = v*mul[c] + add[c]
	transpose bool      // HWC -> CHW
	plane     int       // height × width
	identity  bool
}

// newPrep fits p to shape (one sample, no batch axis).
func newPrep(p Preprocess, shape []int64) (*prep, error) {
	c := channels(shape, p.Layout)
	for _, v := range [][]float32{p.Mean, p.Std} {
		if len(v) > 1 && len(v) != c {
			return nil, fmt.Errorf("onnx: %w: mean and std have one value, or one per channel (%d); got %d", ErrDeclared, c, len(v))
		}
	}
	scale := p.Scale
	if scale == 0 {
		scale = 1
	}
	q := &prep{chans: c, mul: make([]float32, c), add: make([]float32, c), identity: true}
	total := int64(1)
	for _, d := range shape {
		total *= d
	}
	q.plane = int(total) / c
	q.transpose = c > 1 && p.Layout != LayoutNHWC
	if q.transpose {
		q.identity = false
	}
	for i := range c {
		mean, std := float32(0), float32(1)
		if len(p.Mean) == 1 {
			mean = p.Mean[0]
		} else if len(p.Mean) == c {
			mean = p.Mean[i]
		}
		if len(p.Std) == 1 {
			std = p.Std[0]
		} else if len(p.Std) == c {
			std = p.Std[i]
		}
		q.mul[i], q.add[i] = scale/std, -mean/std
		if q.mul[i] != 1 || q.add[i] != 0 {
			q.identity = false
		}
	}
	return q, nil
}

// apply writes the preprocessed sample x (height × width × channels, or
// the model's own order for a single channel) into dst, of the same length.
func (q *prep) apply(x, dst []float32) {
	if q.identity {
		copy(dst, x)
		return
	}
	if !q.transpose {
		for i, v := range x {
			c := i % q.chans
			dst[i] = v*q.mul[c] + q.add[c]
		}
		return
	}
	for p := range q.plane {
		for c := range q.chans {
			dst[c*q.plane+p] = x[p*q.chans+c]*q.mul[c] + q.add[c]
		}
	}
}

// Library returns the path of the ONNX Runtime shared library to load:
// the environment variable LibraryEnv when set; else LibraryName beside
// the running executable, or in ../lib/sedna from it (a package's
// layout), when there; else the bare name, which the dynamic loader
// searches for (LD_LIBRARY_PATH, the system's directories).
func Library() string {
	if p := os.Getenv(LibraryEnv); p != "" {
		return p
	}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		for _, p := range []string{filepath.Join(dir, LibraryName), filepath.Join(dir, "..", "lib", "sedna", LibraryName)} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return LibraryName
}

// oneLine keeps the first line of an ONNX Runtime message, drops the
// binding's "Error creating ...:" prefixes and the runtime's source
// location and C++ signature ("/onnxruntime_src/...:46 void f(...) "),
// which say nothing to a user, and cuts it at 400 bytes.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	for strings.HasPrefix(s, "Error ") {
		i := strings.Index(s, ": ")
		if i < 0 {
			break
		}
		s = s[i+2:]
	}
	if strings.HasPrefix(s, "/") {
		if open := strings.IndexByte(s, '('); open > 0 {
			depth := 0
			for i := open; i < len(s); i++ {
				switch s[i] {
				case '(':
					depth++
				case ')':
					depth--
				}
				if depth == 0 {
					s = s[i+1:]
					break
				}
			}
		}
	}
	s = strings.TrimSpace(s)
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// Tensor is a graph's input or output: its name, shape (-1 for a dynamic
// dimension) and element type.
type Tensor struct {
	Name  string
	Shape []int64
	Type  string
}

// String is "name [? 1 14 14] type".
func (t Tensor) String() string { return t.Name + " " + dims(t.Shape) + " " + t.Type }
