package ml

import (
	"context"
	"encoding"
	"errors"
	"fmt"
)

// Model is what every learning paradigm trains, ships and serves. *Network
// implements it; later models (for example one served by another process)
// implement it too.
//
// Inputs are row-major float32 matrices: x holds n rows of Inputs() values
// each, and n is len(x)/Inputs(). Labels are class indices in [0, Classes()).
type Model interface {
	// Kind names the family of the model.
	Kind() Kind
	// Inputs is the number of features of one sample.
	Inputs() int
	// Classes is the number of classes the model predicts.
	Classes() int

	// Fit trains the model on the rows of x with labels y, starting from
	// its current weights. It stops early, returning an error wrapping
	// ctx.Err(), when ctx is cancelled; the weights are then those after the
	// last completed mini-batch.
	Fit(ctx context.Context, x []float32, y []int, opts FitOptions) error
	// PredictProba returns n×Classes() class probabilities, row-major.
	PredictProba(x []float32) ([]float32, error)
	// Predict returns the most probable class of each row.
	Predict(x []float32) ([]int, error)

	// Weights returns a copy of all parameters as one flat vector, the
	// form federated averaging works on.
	Weights() []float32
	// SetWeights replaces all parameters; w must have NumWeights() finite
	// values. The model keeps a copy.
	SetWeights(w []float32) error
	// NumWeights is the length of the flat weight vector.
	NumWeights() int
	// Samples is the number of samples the weights were last fitted on,
	// the weight of this model in a federated average.
	Samples() int
	// Clone returns an independent deep copy.
	Clone() Model

	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// Predictor is the serving half of a Model: what a worker that only infers
// needs. A Model is a Predictor; so is a model of another framework served
// by its runtime (package ml/onnx), which cannot be trained here.
type Predictor interface {
	// Inputs is the number of features of one sample.
	Inputs() int
	// Classes is the number of classes the model predicts.
	Classes() int
	// PredictProba returns n×Classes() class probabilities, row-major, for
	// the n rows of x (Inputs() values each).
	PredictProba(x []float32) ([]float32, error)
}

// IsSedna says whether b starts as a model of this package's binary format
// (its magic), whatever else is wrong with it.
func IsSedna(b []byte) bool {
	return len(b) >= len(formatMagic) && string(b[:len(formatMagic)]) == formatMagic
}

// Kind is the family of a model; it is recorded in the binary format.
type Kind uint8

// The model families of this package.
const (
	// KindSoftmax is multinomial logistic (softmax) regression: one dense
	// layer followed by a softmax.
	KindSoftmax Kind = 1
	// KindMLP is a multilayer perceptron with one or two ReLU hidden
	// layers and a softmax output.
	KindMLP Kind = 2
)

// String returns "softmax", "mlp" or "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindSoftmax:
		return "softmax"
	case KindMLP:
		return "mlp"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Optimizer selects the update rule of Fit.
type Optimizer uint8

// The optimizers of Fit.
const (
	// SGD is mini-batch stochastic gradient descent, with classical
	// momentum when FitOptions.Momentum > 0.
	SGD Optimizer = iota
	// Adam is Kingma and Ba's Adam (β1 0.9, β2 0.999, ε 1e-8) with bias
	// correction. Its moment estimates start at zero on each call of Fit.
	Adam
)

// String returns "sgd" or "adam".
func (o Optimizer) String() string {
	switch o {
	case SGD:
		return "sgd"
	case Adam:
		return "adam"
	}
	return fmt.Sprintf("optimizer(%d)", uint8(o))
}

// FitOptions configures one call of Fit. The zero value trains 10 epochs of
// plain SGD with batches of 32 and learning rate 0.05, seed 0.
type FitOptions struct {
	// Epochs is the number of passes over the data; 0 means 10.
	Epochs int
	// BatchSize is the number of samples per update; 0 means 32.
	BatchSize int
	// LearningRate is the step size; 0 means 0.05 for SGD and 0.001 for
	// Adam.
	LearningRate float32
	// Optimizer is SGD (the zero value) or Adam.
	Optimizer Optimizer
	// Momentum is SGD's momentum in [0, 1); 0 is plain SGD. Adam ignores it.
	Momentum float32
	// L2 adds L2·w to the gradient of every weight (not of the biases).
	L2 float32
	// Anneal lowers the learning rate along a half cosine, from
	// LearningRate at the first update to zero after the last, which makes
	// the final weights less sensitive to the last few mini-batches.
	Anneal bool
	// Seed drives the shuffling of the samples before each epoch: the same
	// seed, data and starting weights give the same weights, bit for bit.
	Seed uint64
	// Progress, if set, is called after each epoch, on the caller's
	// goroutine.
	Progress func(Progress)
}

// Progress reports one finished epoch of Fit.
type Progress struct {
	Epoch   int     // 1-based number of the epoch just finished
	Epochs  int     // epochs in this call of Fit
	Loss    float64 // mean cross-entropy over the epoch's mini-batches, in nats
	Samples int     // samples per epoch
}

// Errors of this package, for errors.Is. Every error returned wraps one of
// them and says in one line what was wrong.
var (
	// ErrInvalidInput: shapes that do not match, labels out of range, NaN
	// or infinite values, empty data, or options out of range.
	ErrInvalidInput = errors.New("invalid input")

	// ErrBadMagic: the blob is not a model of this package at all.
	ErrBadMagic = errors.New("not a sedna model (bad magic)")
	// ErrUnsupportedVersion: the blob is a model of a format version this
	// build does not read.
	ErrUnsupportedVersion = errors.New("unsupported model format version")
	// ErrTruncated: the blob ends before the data its header announces.
	ErrTruncated = errors.New("truncated model")
	// ErrChecksum: the CRC-32 of the blob does not match its contents.
	ErrChecksum = errors.New("model checksum mismatch")
	// ErrMalformed: the header is inconsistent (unknown kind, impossible
	// shapes, trailing bytes) or a weight is not finite.
	ErrMalformed = errors.New("malformed model")
)

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("ml: %s: %w: %s", op, ErrInvalidInput, fmt.Sprintf(format, args...))
}
