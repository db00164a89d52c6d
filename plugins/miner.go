package plugins

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/sedna-go/sedna/plugins/abi"
)

// Box is one detection: xmin, ymin, xmax, ymax, score, label.
type Box [6]float32

// Batch is a batch of inference results for a miner: class probabilities
// (Size rows of Classes, row-major), detection boxes per sample, or both.
type Batch struct {
	Probs   []float32
	Classes int
	Boxes   [][]Box
	// Inputs are the raw samples (Size rows of InputCols), for miners that
	// judge a sample before any inference (mining-then-inference).
	Inputs    []float32
	InputCols int
	// Seed, when not zero, fixes the randomness of this call (Random draws
	// from it); else the Miner supplies a fresh seed per call.
	Seed uint64
}

// Size is the number of samples.
func (b *Batch) Size() int {
	if b.Boxes != nil {
		return len(b.Boxes)
	}
	if b.Classes > 0 {
		return len(b.Probs) / b.Classes
	}
	if b.InputCols > 0 {
		return len(b.Inputs) / b.InputCols
	}
	return 0
}

// Verdict is a miner's judgement of one sample. Reason is set when the
// sample's input was invalid, in which case Hard is false.
type Verdict struct {
	Hard   bool    `json:"hard"`
	Score  float32 `json:"score"`
	Reason string  `json:"reason,omitempty"`
}

// Miner is a configured hard-example miner. Safe for concurrent use.
type Miner struct {
	info   Info
	mod    *module
	params []abi.KV
	seed   atomic.Uint64
}

// Miner returns the miner called name with params over its defaults.
func (h *Host) Miner(name string, params map[string]string) (*Miner, error) {
	e, kv, err := h.lookup(name, abi.KindMiner, params)
	if err != nil {
		return nil, err
	}
	m := &Miner{info: e.info, mod: e.mod, params: kv}
	m.seed.Store(randomSeed())
	return m, nil
}

// Info describes the miner.
func (m *Miner) Info() Info { return m.info }

// Params are the parameters in force, defaults filled in.
func (m *Miner) Params() []abi.KV { return m.params }

// Mine judges every sample of b. A batch the plugin cannot read at all
// (shapes that disagree, a missing input) is an error wrapping ErrRejected;
// a sample it cannot judge is "not hard" with a Reason.
func (m *Miner) Mine(ctx context.Context, b Batch) ([]Verdict, error) {
	n := b.Size()
	if b.Classes > 0 && len(b.Probs) != n*b.Classes {
		return nil, fmt.Errorf("plugins: %s: %d probabilities are not %d samples of %d classes", m.info.Name, len(b.Probs), n, b.Classes)
	}
	if b.Inputs != nil && (b.InputCols < 1 || len(b.Inputs) != n*b.InputCols) {
		return nil, fmt.Errorf("plugins: %s: %d input values are not %d samples of %d", m.info.Name, len(b.Inputs), n, b.InputCols)
	}
	if b.Probs != nil && b.Boxes != nil && len(b.Probs) != len(b.Boxes)*b.Classes {
		return nil, fmt.Errorf("plugins: %s: probabilities for %d samples, boxes for %d", m.info.Name, len(b.Probs)/max(b.Classes, 1), len(b.Boxes))
	}
	seed := b.Seed
	if seed == 0 {
		seed = m.seed.Add(0x9e3779b97f4a7c15)
	}
	frame := abi.Frame{Meta: abi.AppendRequest(nil, abi.Request{Plugin: m.info.Name, Params: m.params, Seed: seed})}
	if b.Classes > 0 || b.Probs != nil {
		frame.Tensors = append(frame.Tensors, abi.F32Tensor("probs", b.Probs, n, b.Classes))
	}
	if b.Inputs != nil {
		frame.Tensors = append(frame.Tensors, abi.F32Tensor("inputs", b.Inputs, n, b.InputCols))
	}
	if b.Boxes != nil {
		counts := make([]uint32, len(b.Boxes))
		flat := make([]float32, 0, 6*len(b.Boxes))
		for i, boxes := range b.Boxes {
			counts[i] = uint32(len(boxes))
			for _, bx := range boxes {
				flat = append(flat, bx[:]...)
			}
		}
		frame.Tensors = append(frame.Tensors,
			abi.F32Tensor("boxes", flat, len(flat)/6, 6),
			abi.U32Tensor("box_counts", counts))
	}
	out := make([]Verdict, n)
	err := m.mod.call(ctx, m.info.Name, "mine", &frame, func(f abi.Frame, meta response) error {
		hard, ok1 := f.Tensor("hard")
		score, ok2 := f.Tensor("score")
		if !ok1 || !ok2 || hard.DType != abi.U8 || score.DType != abi.F32 || len(hard.Data) != n || len(score.Data) != 4*n {
			return fmt.Errorf("result lacks hard u8[%d] and score f32[%d]", n, n)
		}
		for i := range out {
			out[i].Hard = hard.Data[i] != 0
			out[i].Score = math.Float32frombits(binary.LittleEndian.Uint32(score.Data[4*i:]))
		}
		for _, r := range meta.Reasons {
			if r.Index < 0 || r.Index >= n {
				return fmt.Errorf("reason for sample %d of %d", r.Index, n)
			}
			out[r.Index].Hard = false
			out[r.Index].Reason = r.Text
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("plugins: %s: %w", m.info.Name, err)
	}
	return out, nil
}
