package guest_test

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/plugins/abi"
	"github.com/sedna-go/sedna/plugins/guest"
)

func init() {
	guest.Miner(guest.Info{Name: "TestMiner", Version: "1", Parameters: []guest.Param{{Key: "t", Default: "0.5"}}},
		func(s guest.Sample, p guest.Params) (bool, float32, error) {
			t, err := p.Float("t")
			if err != nil {
				return false, 0, err
			}
			if len(s.Probs) == 0 {
				return false, 0, errors.New("no probabilities")
			}
			if s.Probs[0] < 0 {
				panic("negative")
			}
			return float64(s.Probs[0]) < t, float32(len(s.Boxes)), nil
		})
	guest.Aggregator(guest.Info{Name: "Sum", Version: "1"},
		func(r guest.Round, p guest.Params) ([]float32, []float32, map[string]string, error) {
			out := make([]float32, len(r.Weights[0]))
			for _, w := range r.Weights {
				for j, x := range w {
					out[j] += x
				}
			}
			return out, nil, map[string]string{"round": "seen"}, nil
		})
}

type response struct {
	Error    string            `msgpack:"error"`
	Reasons  [][]any           `msgpack:"reasons"`
	Metadata map[string]string `msgpack:"metadata"`
}

func decode(t *testing.T, b []byte) (abi.Frame, response) {
	t.Helper()
	f, err := abi.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var r response
	if err := msgpack.Unmarshal(f.Meta, &r); err != nil {
		t.Fatal(err)
	}
	return f, r
}

func TestHandleMine(t *testing.T) {
	in := abi.Frame{
		Meta: abi.AppendRequest(nil, abi.Request{Plugin: "TestMiner", Params: []abi.KV{{Key: "t", Value: "0.5"}}}),
		Tensors: []abi.Tensor{
			abi.F32Tensor("probs", []float32{0.2, 0.8, 0.9, 0.1}, 2, 2),
			abi.F32Tensor("boxes", make([]float32, 18), 3, 6),
			abi.U32Tensor("box_counts", []uint32{1, 2}),
		},
	}
	f, r := decode(t, guest.HandleMine(in.AppendTo(nil)))
	hard, _ := f.Tensor("hard")
	score, _ := f.Tensor("score")
	s, _ := score.F32()
	if r.Error != "" || string(hard.Data) != "\x01\x00" || s[0] != 1 || s[1] != 2 {
		t.Fatalf("result %+v hard=%v score=%v", r, hard.Data, s)
	}

	in.Meta = abi.AppendRequest(nil, abi.Request{Plugin: "TestMiner", Params: []abi.KV{{Key: "t", Value: "x"}}})
	_, r = decode(t, guest.HandleMine(in.AppendTo(nil)))
	if len(r.Reasons) != 2 || r.Reasons[0][1] != `parameter t="x" is not a number` {
		t.Fatalf("per-sample errors: %+v", r)
	}

	in.Tensors[0] = abi.F32Tensor("probs", []float32{-1, 0, 0.9, 0.1}, 2, 2)
	in.Meta = abi.AppendRequest(nil, abi.Request{Plugin: "TestMiner"})
	_, r = decode(t, guest.HandleMine(in.AppendTo(nil)))
	if r.Error != "plugin panicked: negative" {
		t.Fatalf("panic: %+v", r)
	}

	in.Meta = abi.AppendRequest(nil, abi.Request{Plugin: "Nope"})
	if _, r = decode(t, guest.HandleMine(in.AppendTo(nil))); r.Error != `no miner "Nope" in this module` {
		t.Fatalf("unknown: %+v", r)
	}
	if _, r = decode(t, guest.HandleMine([]byte("junk"))); r.Error == "" {
		t.Fatal("junk input accepted")
	}
}

func TestHandleAggregateAndManifest(t *testing.T) {
	in := abi.Frame{
		Meta: abi.AppendRequest(nil, abi.Request{Plugin: "Sum", Round: 4}),
		Tensors: []abi.Tensor{
			abi.F32Tensor("weights", []float32{1, 2, 3, 4}, 2, 2),
			abi.F64Tensor("counts", []float64{1, 1}),
		},
	}
	f, r := decode(t, guest.HandleAggregate(in.AppendTo(nil)))
	w, _ := f.Tensor("weights")
	v, _ := w.F32()
	if r.Error != "" || v[0] != 4 || v[1] != 6 || r.Metadata["round"] != "seen" {
		t.Fatalf("aggregate: %+v %v", r, v)
	}
	var m abi.Manifest
	if err := msgpack.Unmarshal(guest.ManifestBytes(), &m); err != nil || len(m.Plugins) != 2 || m.Plugins[0].Kind != abi.KindMiner || m.Plugins[1].Kind != abi.KindAggregator {
		t.Fatalf("manifest %+v %v", m, err)
	}
}

// Whatever bytes arrive, a handler answers with a frame, never a crash.
func FuzzHandleMine(f *testing.F) {
	in := abi.Frame{
		Meta:    abi.AppendRequest(nil, abi.Request{Plugin: "TestMiner"}),
		Tensors: []abi.Tensor{abi.F32Tensor("probs", []float32{0.2, 0.8}, 1, 2)},
	}
	f.Add(in.AppendTo(nil))
	f.Add([]byte("SPF1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := abi.Decode(guest.HandleMine(b)); err != nil {
			t.Fatal(err)
		}
		if _, err := abi.Decode(guest.HandleAggregate(b)); err != nil {
			t.Fatal(err)
		}
	})
}
