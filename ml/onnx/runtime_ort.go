//go:build onnx && cgo

package onnx

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Built reports whether this binary has ONNX Runtime's binding (the build
// tag onnx, with cgo).
const Built = true

var env struct {
	sync.Mutex
	lib string
	err error
	ok  bool
}

// start loads the shared library once per process; a failure is kept, so
// each model says the same line rather than retrying dlopen.
func start(lib string) error {
	env.Lock()
	defer env.Unlock()
	if env.ok || env.err != nil {
		if env.ok && lib != env.lib {
			return fmt.Errorf("onnx: %w: %s is loaded already; one library per process, not %s", ErrRuntime, env.lib, lib)
		}
		return env.err
	}
	env.lib = lib
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		env.err = fmt.Errorf("onnx: %w from %s (set %s to the path of %s, release %s; make onnxruntime installs it): %s",
			ErrRuntime, lib, LibraryEnv, LibraryName, RuntimeVersion, oneLine(err))
		return env.err
	}
	env.ok = true
	return nil
}

// Available says whether ONNX models can be served: nil once ONNX Runtime
// loads from Library().
func Available() error { return start(Library()) }

// Version is the loaded ONNX Runtime's version ("" before it loads).
func Version() string {
	env.Lock()
	defer env.Unlock()
	if !env.ok {
		return ""
	}
	return ort.GetVersion()
}

// Load loads the ONNX model in data as a classifier, checking it against
// what its Model declares (o). Bytes ONNX Runtime cannot run (truncated,
// corrupt, an operator it lacks) give an error wrapping ErrModel, a graph
// that does not fit the declaration one wrapping ErrDeclared; either says
// in one line what is wrong.
func Load(data []byte, o Options) (*Model, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	lib := o.Library
	if lib == "" {
		lib = Library()
	}
	if err := start(lib); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("onnx: %w: the file is empty", ErrModel)
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w (%d bytes): %s", ErrModel, len(data), oneLine(err))
	}
	in, err := pick("input", o.Input, ins)
	if err != nil {
		return nil, err
	}
	out, err := pick("output", o.Output, outs)
	if err != nil {
		return nil, err
	}
	m, err := fit(o, in.Name, in.Dimensions, out.Name, out.Dimensions)
	if err != nil {
		return nil, err
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: %w: %s", ErrRuntime, oneLine(err))
	}
	defer opts.Destroy()
	threads := max(o.Threads, 1)
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("onnx: %w: %s", ErrRuntime, oneLine(err))
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("onnx: %w: %s", ErrRuntime, oneLine(err))
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{in.Name}, []string{out.Name}, opts)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w (%d bytes): %s", ErrModel, len(data), oneLine(err))
	}
	rs := &ortSession{s: s, shape: m.shape, batch: in.Dimensions[0]}
	m.sess = rs
	runtime.AddCleanup(m, func(rs *ortSession) { rs.close() }, rs)
	return m, nil
}

// pick finds the tensor named want among infos (the only input, or the
// first output, when want is ""), of float32 elements.
func pick(what, want string, infos []ort.InputOutputInfo) (ort.InputOutputInfo, error) {
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	var found *ort.InputOutputInfo
	switch {
	case want != "":
		for i := range infos {
			if infos[i].Name == want {
				found = &infos[i]
			}
		}
		if found == nil {
			return ort.InputOutputInfo{}, fmt.Errorf("onnx: %w: the Model names %s %q; the graph's are %q", ErrDeclared, what, want, names)
		}
	case len(infos) == 0:
		return ort.InputOutputInfo{}, fmt.Errorf("onnx: %w: the graph has no %s", ErrDeclared, what)
	case what == "input" && len(infos) > 1:
		return ort.InputOutputInfo{}, fmt.Errorf("onnx: %w: the graph has inputs %q: name the one to feed in the Model", ErrDeclared, names)
	default:
		found = &infos[0]
	}
	if found.OrtValueType != ort.ONNXTypeTensor || found.DataType != ort.TensorElementDataTypeFloat {
		return ort.InputOutputInfo{}, fmt.Errorf("onnx: %w: %s %q is %s: want a tensor of float32", ErrDeclared, what, found.Name, found.String())
	}
	return *found, nil
}

// ortSession is a session of ONNX Runtime; batch is the graph's batch
// dimension (a fixed one is served in runs of that size).
type ortSession struct {
	mu    sync.Mutex
	s     *ort.DynamicAdvancedSession
	shape []int64
	batch int64
}

func (o *ortSession) run(x []float32, n int) ([]float32, error) {
	step := n
	if o.batch > 0 {
		step = int(o.batch)
		if n%step != 0 {
			return nil, fmt.Errorf("onnx: %w: the graph takes batches of exactly %d, not %d samples", ErrInput, step, n)
		}
	}
	per := len(x) / n
	var out []float32
	for r := 0; r < n; r += step {
		got, err := o.runOnce(x[r*per:(r+step)*per], step)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (o *ortSession) runOnce(x []float32, n int) ([]float32, error) {
	shape := ort.NewShape(append([]int64{int64(n)}, o.shape...)...)
	t, err := ort.NewTensor(shape, x)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w: %s", ErrInput, oneLine(err))
	}
	defer t.Destroy()
	outs := []ort.Value{nil}
	if err := o.s.Run([]ort.Value{t}, outs); err != nil {
		return nil, fmt.Errorf("onnx: inference failed: %s", oneLine(err))
	}
	defer outs[0].Destroy()
	ft, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("onnx: %w: the output is %T, not float32", ErrDeclared, outs[0])
	}
	return append([]float32(nil), ft.GetData()...), nil
}

func (o *ortSession) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.s != nil {
		_ = o.s.Destroy()
		o.s = nil
	}
}

// Inspect lists the graph's inputs and outputs as ONNX Runtime reads them
// (a dynamic dimension is -1).
func Inspect(data []byte, library string) (inputs, outputs []Tensor, err error) {
	if library == "" {
		library = Library()
	}
	if err := start(library); err != nil {
		return nil, nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, nil, fmt.Errorf("onnx: %w (%d bytes): %s", ErrModel, len(data), oneLine(err))
	}
	conv := func(infos []ort.InputOutputInfo) []Tensor {
		var out []Tensor
		for _, i := range infos {
			out = append(out, Tensor{Name: i.Name, Shape: append([]int64(nil), i.Dimensions...), Type: strings.ToLower(strings.TrimPrefix(i.DataType.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_"))})
		}
		return out
	}
	return conv(ins), conv(outs), nil
}
