package ml

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Fit trains the network with mini-batch SGD (with momentum) or Adam on the
// cross-entropy loss, starting from the current weights. See Model.Fit.
//
// Each mini-batch is split into two fixed halves whose gradients are
// computed on two goroutines (or one after the other on one CPU) and added
// in a fixed order, so the result depends on the seed, the data and the
// starting weights only, not on the number of CPUs.
func (n *Network) Fit(ctx context.Context, x []float32, y []int, opts FitOptions) error {
	rows, err := n.checkRows("fit", x)
	if err != nil {
		return err
	}
	if len(y) != rows {
		return invalid("fit", "%d labels for %d rows", len(y), rows)
	}
	classes := n.Classes()
	for i, c := range y {
		if c < 0 || c >= classes {
			return invalid("fit", "label %d of row %d is not in [0, %d)", c, i, classes)
		}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}

	t := newTrainer(n, o)
	t.total = o.Epochs * ((rows + o.BatchSize - 1) / o.BatchSize)
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	order := make([]int, rows)
	for i := range order {
		order[i] = i
	}
	for epoch := 1; epoch <= o.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var loss float64
		batches := 0
		for start := 0; start < rows; start += o.BatchSize {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("ml: fit: stopped in epoch %d of %d: %w", epoch, o.Epochs, err)
			}
			idx := order[start:min(start+o.BatchSize, rows)]
			loss += t.step(x, y, idx)
			batches++
		}
		if o.Progress != nil {
			o.Progress(Progress{Epoch: epoch, Epochs: o.Epochs, Loss: loss / float64(batches), Samples: rows})
		}
	}
	n.samples = rows
	return nil
}

func (o FitOptions) withDefaults() (FitOptions, error) {
	switch {
	case o.Epochs < 0:
		return o, invalid("fit", "%d epochs", o.Epochs)
	case o.BatchSize < 0:
		return o, invalid("fit", "batch size %d", o.BatchSize)
	case !(o.LearningRate >= 0) || math.IsInf(float64(o.LearningRate), 0):
		return o, invalid("fit", "learning rate %v", o.LearningRate)
	case !(o.Momentum >= 0 && o.Momentum < 1):
		return o, invalid("fit", "momentum %v, want [0, 1)", o.Momentum)
	case !(o.L2 >= 0) || math.IsInf(float64(o.L2), 0):
		return o, invalid("fit", "L2 %v", o.L2)
	case o.Optimizer != SGD && o.Optimizer != Adam:
		return o, invalid("fit", "unknown %v", o.Optimizer)
	}
	if o.Epochs == 0 {
		o.Epochs = 10
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.LearningRate == 0 {
		o.LearningRate = 0.05
		if o.Optimizer == Adam {
			o.LearningRate = 0.001
		}
	}
	return o, nil
}

// trainer holds the scratch state of one call of Fit.
type trainer struct {
	net      *Network
	opts     FitOptions
	shards   [2]*shard
	wt       [][]float32 // transposed weights of layers 2.. (in×out), per step
	vel      []float32   // SGD momentum, or Adam's first moment
	sq       []float32   // Adam's second moment
	steps    int         // updates done
	total    int         // updates planned, for Anneal
	segments []segment   // the parameters, layer by layer: weights, then biases
}

// segment is a run of parameters; decay is set for weights (L2 applies)
// and unset for biases.
type segment struct {
	lo, hi int
	decay  bool
}

// shard is the forward and backward state of one half of a mini-batch.
type shard struct {
	act   [][]float32 // act[0]: inputs; act[l]: layer l's outputs (ReLU, or probabilities at the top)
	delta [][]float32 // delta[l]: gradient of the loss at layer l's pre-activations
	tA    []float32   // transpose scratch: delta[l]ᵀ
	tB    []float32   // transpose scratch: act[l-1]ᵀ
	grad  []float32
	loss  float64
}

func newTrainer(n *Network, o FitOptions) *trainer {
	t := &trainer{net: n, opts: o, vel: make([]float32, len(n.params))}
	if o.Optimizer == Adam {
		t.sq = make([]float32, len(n.params))
	}
	widest := 0
	for _, s := range n.sizes {
		widest = max(widest, s)
	}
	// Shard 0 takes whole batches smaller than minShardRows and the larger
	// half of the others; shard 1 the smaller half.
	for i, rows := range [2]int{o.BatchSize, o.BatchSize / 2} {
		s := &shard{grad: make([]float32, len(n.params))}
		s.act = make([][]float32, len(n.sizes))
		s.delta = make([][]float32, len(n.sizes))
		for l, w := range n.sizes {
			s.act[l] = make([]float32, rows*w)
			s.delta[l] = make([]float32, rows*w)
		}
		s.tA = make([]float32, rows*widest)
		s.tB = make([]float32, rows*widest)
		t.shards[i] = s
	}
	t.wt = make([][]float32, len(n.sizes))
	for l := 2; l < len(n.sizes); l++ {
		t.wt[l] = make([]float32, n.sizes[l-1]*n.sizes[l])
	}
	off := 0
	for l := 1; l < len(n.sizes); l++ {
		nw := n.sizes[l-1] * n.sizes[l]
		t.segments = append(t.segments, segment{off, off + nw, true}, segment{off + nw, off + nw + n.sizes[l], false})
		off += nw + n.sizes[l]
	}
	return t
}

// minShardRows is the smallest batch that is split between two goroutines.
const minShardRows = 8

// step does one update on the samples idx and returns their mean loss.
func (t *trainer) step(x []float32, y []int, idx []int) float64 {
	t.transposeWeights()
	scale := 1 / float32(len(idx))
	if len(idx) < minShardRows {
		t.shards[0].gradient(t, x, y, idx, scale)
		t.update(1)
		return t.shards[0].loss / float64(len(idx))
	}
	half := (len(idx) + 1) / 2
	if runtime.GOMAXPROCS(0) > 1 {
		var wg sync.WaitGroup
		wg.Go(func() { t.shards[1].gradient(t, x, y, idx[half:], scale) })
		t.shards[0].gradient(t, x, y, idx[:half], scale)
		wg.Wait()
	} else {
		t.shards[0].gradient(t, x, y, idx[:half], scale)
		t.shards[1].gradient(t, x, y, idx[half:], scale)
	}
	t.update(2)
	return (t.shards[0].loss + t.shards[1].loss) / float64(len(idx))
}

// transposeWeights refreshes t.wt, the transposed weights the backward
// pass multiplies by.
func (t *trainer) transposeWeights() {
	n := t.net
	for l := 2; l < len(n.sizes); l++ {
		w, _ := n.layer(l)
		transpose(n.sizes[l], n.sizes[l-1], w, t.wt[l])
	}
}

// gradient computes into s.grad the gradient of the summed loss of the
// samples idx, multiplied by scale, and into s.loss their summed loss.
func (s *shard) gradient(t *trainer, x []float32, y []int, idx []int, scale float32) {
	n := t.net
	sizes := n.sizes
	top := len(sizes) - 1
	m := len(idx)
	in := sizes[0]
	a0 := s.act[0][:m*in]
	for r, i := range idx {
		copy(a0[r*in:r*in+in], x[i*in:i*in+in])
	}
	for l := 1; l <= top; l++ {
		w, b := n.layer(l)
		denseForward(m, sizes[l-1], sizes[l], s.act[l-1][:m*sizes[l-1]], w, b, s.act[l][:m*sizes[l]], l < top)
	}
	classes := sizes[top]
	p := s.act[top][:m*classes]
	softmaxRows(p, classes)

	// Cross-entropy with softmax: the gradient at the logits is p - onehot.
	s.loss = 0
	d := s.delta[top][:m*classes]
	for r, i := range idx {
		pr := p[r*classes : r*classes+classes]
		dr := d[r*classes : r*classes+classes]
		s.loss -= math.Log(math.Max(float64(pr[y[i]]), 1e-12))
		for j, v := range pr {
			dr[j] = v * scale
		}
		dr[y[i]] -= scale
	}

	for l := top; l >= 1; l-- {
		out, inW := sizes[l], sizes[l-1]
		gw, gb := layerOf(sizes, s.grad, l)
		dl := s.delta[l][:m*out]
		al := s.act[l-1][:m*inW]
		// gW (out×in) = delta[l]ᵀ (out×m) · act[l-1] (m×in)
		transpose(m, out, dl, s.tA)
		transpose(m, inW, al, s.tB)
		mulABt(out, inW, m, s.tA[:out*m], s.tB[:inW*m], gw)
		for j := range gb {
			var sum float32
			for r := 0; r < m; r++ {
				sum += dl[r*out+j]
			}
			gb[j] = sum
		}
		if l == 1 {
			break
		}
		// delta[l-1] (m×in) = delta[l] (m×out) · W (out×in), masked by ReLU.
		dn := s.delta[l-1][:m*inW]
		mulABt(m, inW, out, dl, t.wt[l], dn)
		for i, a := range al {
			if a <= 0 {
				dn[i] = 0
			}
		}
	}
}

// update applies the gradient, the sum of the shards' gradients, to the
// weights. The two halves of every segment are updated on two goroutines;
// each parameter's update depends on that parameter only, so the split does
// not change the result.
func (t *trainer) update(shards int) {
	lr := t.opts.LearningRate
	if t.opts.Anneal && t.total > 0 {
		lr = float32(float64(lr) * 0.5 * (1 + math.Cos(math.Pi*float64(t.steps)/float64(t.total))))
	}
	t.steps++
	u := stepParams{lr: lr, shards: shards}
	if t.opts.Optimizer == Adam {
		const b1, b2 = 0.9, 0.999
		// w -= lr·m̂/(√v̂+ε) with m̂ = m/c1 and v̂ = v/c2.
		c1 := 1 - math.Pow(b1, float64(t.steps))
		c2 := 1 - math.Pow(b2, float64(t.steps))
		u.step = float32(float64(lr) / c1)
		u.sc2 = float32(1 / math.Sqrt(c2))
	}
	if runtime.GOMAXPROCS(0) < 2 || len(t.net.params) < 4096 {
		t.updateRange(u, 0, 1)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { t.updateRange(u, 1, 2) })
	t.updateRange(u, 0, 2)
	wg.Wait()
}

type stepParams struct {
	lr, step, sc2 float32
	shards        int
}

// updateRange updates part k of parts of every segment of the parameters.
func (t *trainer) updateRange(u stepParams, k, parts int) {
	for _, seg := range t.segments {
		n := seg.hi - seg.lo
		lo, hi := seg.lo+n*k/parts, seg.lo+n*(k+1)/parts
		for c := lo; c < hi; c += chunk {
			t.updateChunk(u, c, min(c+chunk, hi), seg.decay)
		}
	}
}

// chunk is the number of parameters updateChunk works on at once.
const chunk = 512

// updateChunk updates the parameters [lo, hi), at most chunk of them. It
// works on copies in arrays on its stack, which costs little and lets a
// race-detector build check each slice once, as a range, instead of once
// per element.
func (t *trainer) updateChunk(u stepParams, lo, hi int, decay bool) {
	var w, g, v, sq [chunk]float32
	n := hi - lo
	copy(w[:n], t.net.params[lo:hi])
	copy(g[:n], t.shards[0].grad[lo:hi])
	if u.shards == 2 {
		var g1 [chunk]float32
		copy(g1[:n], t.shards[1].grad[lo:hi])
		for i := 0; i < n; i++ {
			g[i] += g1[i]
		}
	}
	if decay && t.opts.L2 > 0 {
		l2 := t.opts.L2
		for i := 0; i < n; i++ {
			g[i] += l2 * w[i]
		}
	}
	switch t.opts.Optimizer {
	case SGD:
		mu := t.opts.Momentum
		if mu == 0 {
			for i := 0; i < n; i++ {
				w[i] -= u.lr * g[i]
			}
			break
		}
		copy(v[:n], t.vel[lo:hi])
		for i := 0; i < n; i++ {
			v[i] = mu*v[i] + g[i]
			w[i] -= u.lr * v[i]
		}
		copy(t.vel[lo:hi], v[:n])
	case Adam:
		const b1, b2, eps = 0.9, 0.999, 1e-8
		copy(v[:n], t.vel[lo:hi])
		copy(sq[:n], t.sq[lo:hi])
		for i := 0; i < n; i++ {
			gi := g[i]
			v[i] = b1*v[i] + (1-b1)*gi
			sq[i] = b2*sq[i] + (1-b2)*gi*gi
			w[i] -= u.step * v[i] / (sqrt32(sq[i])*u.sc2 + eps)
		}
		copy(t.vel[lo:hi], v[:n])
		copy(t.sq[lo:hi], sq[:n])
	}
	copy(t.net.params[lo:hi], w[:n])
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
