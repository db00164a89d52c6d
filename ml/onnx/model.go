package onnx

import (
	"fmt"
	"math"
	"sync"

	"github.com/sedna-go/sedna/ml"
)

// session runs a batch through a loaded graph: n samples of x, already
// preprocessed, give n × classes scores.
type session interface {
	run(x []float32, n int) ([]float32, error)
	close()
}

// Model is an ONNX classifier loaded by ONNX Runtime: an ml.Predictor. It
// is safe for concurrent use; Close frees the runtime's session (a Model
// no longer reachable is freed anyway, later).
type Model struct {
	input, output string
	shape         []int64 // one sample, without the batch axis
	inputs        int
	classes       int
	pre           *prep
	softmax       bool

	mu     sync.RWMutex
	sess   session
	closed bool
}

// Inputs is the number of values of one sample: the product of Shape.
func (m *Model) Inputs() int { return m.inputs }

// Classes is the number of scores the output gives per sample.
func (m *Model) Classes() int { return m.classes }

// Input and Output are the names of the graph's tensors the model feeds
// and reads.
func (m *Model) Input() string { return m.input }

// Output is the name of the output the class scores are read from.
func (m *Model) Output() string { return m.output }

// Shape is one sample's shape, without the batch axis.
func (m *Model) Shape() []int64 { return append([]int64(nil), m.shape...) }

// String describes the model in one line: input, shape, output, classes.
func (m *Model) String() string {
	return fmt.Sprintf("onnx %s %v -> %s [%d]", m.input, m.shape, m.output, m.classes)
}

// PredictProba returns n×Classes() class probabilities, row-major, for the
// n rows of x, each Inputs() values as devices send them (Preprocess is
// applied here). The scores are the model's output, through a softmax
// unless the Model declared it has its own.
func (m *Model) PredictProba(x []float32) ([]float32, error) {
	if len(x) == 0 || len(x)%m.inputs != 0 {
		return nil, fmt.Errorf("onnx: %w: %d values are not whole samples of %d (shape %v)", ErrInput, len(x), m.inputs, m.shape)
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("onnx: %w: value %d is %v", ErrInput, i, v)
		}
	}
	n := len(x) / m.inputs
	in := make([]float32, len(x))
	for r := range n {
		m.pre.apply(x[r*m.inputs:(r+1)*m.inputs], in[r*m.inputs:(r+1)*m.inputs])
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, fmt.Errorf("onnx: model %s is closed", m.input)
	}
	out, err := m.sess.run(in, n)
	if err != nil {
		return nil, err
	}
	if len(out) != n*m.classes {
		return nil, fmt.Errorf("onnx: %w: output %s gave %d values for %d samples of %d classes", ErrDeclared, m.output, len(out), n, m.classes)
	}
	if m.softmax {
		ml.SoftmaxRows(out, m.classes)
	}
	return out, nil
}

// Predict returns the most probable class of each row of x.
func (m *Model) Predict(x []float32) ([]int, error) {
	p, err := m.PredictProba(x)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(p)/m.classes)
	for r := range out {
		row := p[r*m.classes : (r+1)*m.classes]
		best := 0
		for i, v := range row {
			if v > row[best] {
				best = i
			}
		}
		out[r] = best
	}
	return out, nil
}

// Close frees the runtime's session, once inferences under way end; the
// model answers no more.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.sess.close()
	}
	return nil
}

// fit checks the graph's input and output against o and builds the Model
// around s (the runtime's half of Load). in and out are the graph's input
// and output dimensions, the batch axis first (-1 or 0 when dynamic).
func fit(o Options, input string, in []int64, output string, out []int64) (*Model, error) {
	if len(in) < 2 {
		return nil, fmt.Errorf("onnx: %w: input %s has shape %v: want a batch axis and a sample's", ErrDeclared, input, in)
	}
	shape := append([]int64(nil), in[1:]...)
	if o.Shape != nil {
		if len(o.Shape) != len(shape) {
			return nil, fmt.Errorf("onnx: %w: input %s takes samples of shape %v; the Model declares %v", ErrDeclared, input, dims(shape), o.Shape)
		}
		for i, d := range shape {
			if d > 0 && d != o.Shape[i] {
				return nil, fmt.Errorf("onnx: %w: input %s takes samples of shape %v; the Model declares %v", ErrDeclared, input, dims(shape), o.Shape)
			}
		}
		shape = append([]int64(nil), o.Shape...)
	}
	inputs := int64(1)
	for _, d := range shape {
		if d < 1 {
			return nil, fmt.Errorf("onnx: %w: input %s has dynamic sample dimensions %v: declare the sample's shape in the Model", ErrDeclared, input, dims(shape))
		}
		inputs *= d
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("onnx: %w: output %s has shape %v: want [batch, classes]", ErrDeclared, output, dims(out))
	}
	classes := int64(1)
	for _, d := range out[1:] {
		if d < 1 {
			return nil, fmt.Errorf("onnx: %w: output %s has dynamic dimensions %v: a classifier's are fixed", ErrDeclared, output, dims(out))
		}
		classes *= d
	}
	if classes < 2 || inputs > 1<<26 {
		return nil, fmt.Errorf("onnx: %w: %s [%d] -> %s [%d]: want at least 2 classes and at most 2^26 inputs", ErrDeclared, input, inputs, output, classes)
	}
	p, err := newPrep(o.Pre, shape)
	if err != nil {
		return nil, err
	}
	return &Model{input: input, output: output, shape: shape, inputs: int(inputs), classes: int(classes), pre: p,
		softmax: o.Softmax == nil || *o.Softmax}, nil
}

// dims prints dynamic dimensions as "?".
func dims(d []int64) string {
	s := "["
	for i, v := range d {
		if i > 0 {
			s += " "
		}
		if v < 1 {
			s += "?"
		} else {
			s += fmt.Sprint(v)
		}
	}
	return s + "]"
}
