package ml

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Limits on shapes, so that a hostile blob or a typo cannot ask for
// gigabytes.
const (
	maxWidth   = 1 << 20 // units in one layer
	maxWeights = 1 << 27 // parameters in one model (512 MiB of float32)
)

// Network is a feed-forward classifier: dense layers, ReLU between them, a
// softmax at the end. With no hidden layer it is softmax regression
// (KindSoftmax); with one or two it is an MLP (KindMLP).
//
// The flat weight vector (Weights, SetWeights, the binary format) holds,
// layer after layer from the input, the weight matrix with one row per
// output unit (out×in, row-major) followed by the bias vector (out).
//
// PredictProba and Predict may be called from several goroutines at once;
// Fit, SetWeights and UnmarshalBinary must not overlap any other call.
type Network struct {
	kind    Kind
	sizes   []int     // inputs, hidden widths..., classes
	params  []float32 // see the type's comment
	samples int
}

// NewSoftmax returns a softmax regression of inputs features over classes
// classes, its weights at zero (its loss is convex, so no random start is
// needed).
func NewSoftmax(inputs, classes int) (*Network, error) {
	sizes := []int{inputs, classes}
	if err := checkSizes("new softmax", sizes); err != nil {
		return nil, err
	}
	return &Network{kind: KindSoftmax, sizes: sizes, params: make([]float32, countWeights(sizes))}, nil
}

// NewMLP returns a multilayer perceptron with one or two ReLU hidden layers
// of the given widths. Weights start from He's normal initialisation
// (standard deviation √(2/fan-in)) drawn from seed; biases start at zero.
func NewMLP(inputs int, hidden []int, classes int, seed uint64) (*Network, error) {
	if len(hidden) < 1 || len(hidden) > 2 {
		return nil, invalid("new mlp", "%d hidden layers, want 1 or 2", len(hidden))
	}
	sizes := append(append([]int{inputs}, hidden...), classes)
	if err := checkSizes("new mlp", sizes); err != nil {
		return nil, err
	}
	n := &Network{kind: KindMLP, sizes: sizes, params: make([]float32, countWeights(sizes))}
	rng := rand.New(rand.NewPCG(seed, seed^0x5ed4a11ea7e5))
	for l := 1; l < len(sizes); l++ {
		w, _ := n.layer(l)
		std := math.Sqrt(2 / float64(sizes[l-1]))
		for i := range w {
			w[i] = float32(rng.NormFloat64() * std)
		}
	}
	return n, nil
}

func checkSizes(op string, sizes []int) error {
	total := 0
	for i, s := range sizes {
		if s < 1 || s > maxWidth {
			return invalid(op, "layer %d has %d units, want 1..%d", i, s, maxWidth)
		}
		if i > 0 {
			total += (sizes[i-1] + 1) * s
			if total > maxWeights {
				return invalid(op, "more than %d weights", maxWeights)
			}
		}
	}
	if sizes[len(sizes)-1] < 2 {
		return invalid(op, "%d classes, want at least 2", sizes[len(sizes)-1])
	}
	return nil
}

func countWeights(sizes []int) int {
	total := 0
	for l := 1; l < len(sizes); l++ {
		total += (sizes[l-1] + 1) * sizes[l]
	}
	return total
}

// layer returns views of the weights (out×in) and biases (out) of layer l,
// numbered from 1.
func (n *Network) layer(l int) (w, b []float32) {
	return layerOf(n.sizes, n.params, l)
}

func layerOf(sizes []int, params []float32, l int) (w, b []float32) {
	off := 0
	for i := 1; i < l; i++ {
		off += (sizes[i-1] + 1) * sizes[i]
	}
	in, out := sizes[l-1], sizes[l]
	return params[off : off+in*out], params[off+in*out : off+in*out+out]
}

// Kind returns KindSoftmax or KindMLP.
func (n *Network) Kind() Kind { return n.kind }

// Inputs returns the number of features of one sample (0 for the zero
// Network, which has no layers until UnmarshalBinary gives it some).
func (n *Network) Inputs() int {
	if len(n.sizes) == 0 {
		return 0
	}
	return n.sizes[0]
}

// Classes returns the number of classes (0 for the zero Network).
func (n *Network) Classes() int {
	if len(n.sizes) == 0 {
		return 0
	}
	return n.sizes[len(n.sizes)-1]
}

// Sizes returns the widths of all layers, from the inputs to the classes.
func (n *Network) Sizes() []int { return append([]int(nil), n.sizes...) }

// NumWeights returns the length of the flat weight vector.
func (n *Network) NumWeights() int { return len(n.params) }

// Samples returns the number of samples of the last completed Fit (or of
// the model that was unmarshalled); 0 for a new model.
func (n *Network) Samples() int { return n.samples }

// SetSamples records the number of samples the current weights stand for,
// for example the total of the clients after a federated average.
func (n *Network) SetSamples(count int) {
	n.samples = max(count, 0)
}

// Weights returns a copy of the flat weight vector.
func (n *Network) Weights() []float32 { return append([]float32(nil), n.params...) }

// SetWeights copies w into the model; w must have NumWeights() finite values.
func (n *Network) SetWeights(w []float32) error {
	if len(w) != len(n.params) {
		return invalid("set weights", "%d values, want %d", len(w), len(n.params))
	}
	if i := firstNonFinite(w); i >= 0 {
		return invalid("set weights", "value %d is %v", i, w[i])
	}
	copy(n.params, w)
	return nil
}

// Clone returns an independent deep copy of the network.
func (n *Network) Clone() Model { return n.clone() }

func (n *Network) clone() *Network {
	return &Network{kind: n.kind, sizes: n.Sizes(), params: n.Weights(), samples: n.samples}
}

func firstNonFinite(x []float32) int {
	for i, v := range x {
		if v != v || v > math.MaxFloat32 || v < -math.MaxFloat32 {
			return i
		}
	}
	return -1
}

// checkRows validates a feature matrix and returns its number of rows.
func (n *Network) checkRows(op string, x []float32) (int, error) {
	if len(n.sizes) < 2 {
		return 0, invalid(op, "the network has no layers: make it with NewSoftmax, NewMLP or Unmarshal")
	}
	in := n.sizes[0]
	if len(x) == 0 {
		return 0, invalid(op, "no samples")
	}
	if len(x)%in != 0 {
		return 0, invalid(op, "%d values is not a whole number of rows of %d inputs", len(x), in)
	}
	if i := firstNonFinite(x); i >= 0 {
		return 0, invalid(op, "row %d, feature %d is %v", i/in, i%in, x[i])
	}
	return len(x) / in, nil
}

// predictChunk is the number of rows one pass of the forward kernel works on.
const predictChunk = 64

// PredictProba returns the class probabilities of each row of x,
// row-major (rows × Classes()). Large inputs are split between two
// goroutines; each row's result does not depend on the split.
func (n *Network) PredictProba(x []float32) ([]float32, error) {
	rows, err := n.checkRows("predict", x)
	if err != nil {
		return nil, err
	}
	out := make([]float32, rows*n.Classes())
	in, classes := n.Inputs(), n.Classes()
	if rows < 2*predictChunk || runtime.GOMAXPROCS(0) < 2 {
		n.forwardRows(x, out)
		return out, nil
	}
	half := (rows / 2 / predictChunk) * predictChunk
	var wg sync.WaitGroup
	wg.Go(func() { n.forwardRows(x[half*in:], out[half*classes:]) })
	n.forwardRows(x[:half*in], out[:half*classes])
	wg.Wait()
	return out, nil
}

// Predict returns the most probable class of each row of x.
func (n *Network) Predict(x []float32) ([]int, error) {
	p, err := n.PredictProba(x)
	if err != nil {
		return nil, err
	}
	return Argmax(p, n.Classes()), nil
}

// forwardRows computes the probabilities of all rows of x into out, in
// chunks of predictChunk rows.
func (n *Network) forwardRows(x, out []float32) {
	in, classes := n.Inputs(), n.Classes()
	rows := len(x) / in
	widest := 0
	for _, s := range n.sizes[1:] {
		widest = max(widest, s)
	}
	chunk := min(rows, predictChunk)
	bufA := make([]float32, chunk*widest)
	bufB := make([]float32, chunk*widest)
	for r := 0; r < rows; r += predictChunk {
		m := min(predictChunk, rows-r)
		src := x[r*in : (r+m)*in]
		for l := 1; l < len(n.sizes); l++ {
			w, b := n.layer(l)
			dst := bufA[:m*n.sizes[l]]
			if l == len(n.sizes)-1 {
				dst = out[r*classes : (r+m)*classes]
			}
			denseForward(m, n.sizes[l-1], n.sizes[l], src, w, b, dst, l < len(n.sizes)-1)
			src = dst
			bufA, bufB = bufB, bufA
		}
		softmaxRows(out[r*classes:(r+m)*classes], classes)
	}
}

// denseForward sets dst (m×out) to src (m×in) times wᵀ plus b, then applies
// ReLU when relu is set.
func denseForward(m, in, out int, src, w, b, dst []float32, relu bool) {
	mulABt(m, out, in, src, w, dst)
	for i := 0; i < m; i++ {
		row := dst[i*out : i*out+out]
		for j, bj := range b[:len(row)] {
			v := row[j] + bj
			if relu && v < 0 {
				v = 0
			}
			row[j] = v
		}
	}
}

// SoftmaxRows turns each row of logits (classes wide) into probabilities,
// in place, without overflow for large logits: what the networks'
// PredictProba does, for models served by another runtime (ml/onnx).
func SoftmaxRows(z []float32, classes int) { softmaxRows(z, classes) }

// softmaxRows turns each row of logits (classes wide) into probabilities.
func softmaxRows(z []float32, classes int) {
	for r := 0; r+classes <= len(z); r += classes {
		row := z[r : r+classes]
		hi := row[0]
		for _, v := range row[1:] {
			hi = max(hi, v)
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v - hi))
			row[j] = float32(e)
			sum += e
		}
		inv := 1 / sum
		for j, v := range row {
			row[j] = float32(float64(v) * inv)
		}
	}
}
