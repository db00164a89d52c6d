package abi_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/plugins/abi"
)

func sampleFrame() abi.Frame {
	return abi.Frame{
		Meta: abi.AppendRequest(nil, abi.Request{Plugin: "IBT", Params: []abi.KV{{"threshold_img", "0.5"}, {"threshold_box", "0.4"}}, Seed: math.MaxUint64, Round: -3}),
		Tensors: []abi.Tensor{
			abi.F32Tensor("probs", []float32{0.1, 0.9, 0.5, 0.5, 1, 0}, 3, 2),
			abi.U32Tensor("box_counts", []uint32{0, 2, 1}),
			abi.F64Tensor("counts", []float64{1, 2.5}),
			abi.U8Tensor("hard", []byte{1, 0, 1}),
		},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	f := sampleFrame()
	b := f.AppendTo(nil)
	if len(b) != f.Size() {
		t.Fatalf("encoded %d bytes, Size says %d", len(b), f.Size())
	}
	g, err := abi.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Meta, g.Meta) || len(g.Tensors) != len(f.Tensors) {
		t.Fatalf("decoded %+v", g)
	}
	for i := range f.Tensors {
		a, b := f.Tensors[i], g.Tensors[i]
		if a.Name != b.Name || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || string(a.Data) != string(b.Data) {
			t.Fatalf("tensor %d: %+v, want %+v", i, b, a)
		}
	}
	for _, tt := range g.Tensors { // data start on 8-byte boundaries of the frame
		off := cap(b) - cap(tt.Data)
		if off%8 != 0 {
			t.Fatalf("tensor %s data at offset %d", tt.Name, off)
		}
	}
	p, _ := g.Tensor("probs")
	v, err := p.ViewF32()
	if err != nil || v[1] != 0.9 || len(v) != 6 {
		t.Fatalf("view: %v %v", v, err)
	}
	req, err := abi.ParseRequest(g.Meta)
	if err != nil || req.Plugin != "IBT" || req.Seed != math.MaxUint64 || req.Round != -3 || req.Param("threshold_box") != "0.4" {
		t.Fatalf("request %+v %v", req, err)
	}
}

// The host decodes what guests write with vmihailenco/msgpack; the writers
// here must produce standard msgpack.
func TestMetadataIsStandardMsgpack(t *testing.T) {
	m := abi.Manifest{ABI: 1, Plugins: []abi.PluginInfo{{Name: "X", Kind: abi.KindMiner, Version: "1", Parameters: []abi.Param{{Key: "k", Default: "d"}}, Capabilities: []string{"clock"}}}}
	var back abi.Manifest
	if err := msgpack.Unmarshal(abi.AppendManifest(nil, m), &back); err != nil || !reflect.DeepEqual(m, back) {
		t.Fatalf("manifest: %+v %v", back, err)
	}
	var resp map[string]any
	b := abi.AppendResponse(nil, "", []abi.Reason{{Index: 2, Reason: "no boxes"}}, []abi.KV{{"clients", "3"}})
	if err := msgpack.Unmarshal(b, &resp); err != nil || resp["metadata"].(map[string]any)["clients"] != "3" {
		t.Fatalf("response: %v %v", resp, err)
	}
	// And the reader reads what vmihailenco writes.
	enc, _ := msgpack.Marshal(map[string]any{"plugin": "P", "seed": uint64(1) << 40, "round": int64(-70000), "params": map[string]string{"a": "b"}, "extra": []any{1.5, nil, true, map[string]int{"x": 1}}})
	req, err := abi.ParseRequest(enc)
	if err != nil || req.Plugin != "P" || req.Seed != 1<<40 || req.Round != -70000 || req.Param("a") != "b" {
		t.Fatalf("request from vmihailenco: %+v %v", req, err)
	}
}

func TestDecodeRefusesHostileFrames(t *testing.T) {
	good := sampleFrame()
	b := good.AppendTo(nil)
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"no magic", append([]byte("XXXX"), b[4:]...)},
		{"truncated", b[:len(b)-9]},
		{"huge metadata", append(append([]byte{}, b[:4]...), append([]byte{0xff, 0xff, 0xff, 0x7f}, b[8:]...)...)},
		{"huge tensor count", append(append([]byte{}, b[:8]...), append([]byte{0xff, 0xff, 0xff, 0xff}, b[12:]...)...)},
	} {
		if _, err := abi.Decode(c.b); !errors.Is(err, abi.ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", c.name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good := sampleFrame()
	f.Add(good.AppendTo(nil))
	f.Add([]byte("SPF1\x00\x00\x00\x00\x01\x00\x00\x00"))
	f.Add([]byte("SPF1\x01\x00\x00\x00\x01\x00\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x08"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := abi.Decode(b)
		if err != nil {
			return
		}
		for _, tt := range fr.Tensors {
			if len(tt.Data) != tt.Elems()*tt.DType.Size() {
				t.Fatalf("tensor %q: %d bytes for shape %v", tt.Name, len(tt.Data), tt.Shape)
			}
		}
		_, _ = abi.ParseRequest(fr.Meta)
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add(abi.AppendRequest(nil, abi.Request{Plugin: "X", Params: []abi.KV{{"a", "b"}}, Seed: 7, Round: 2}))
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := abi.ParseRequest(b)
		if err != nil {
			return
		}
		// What parsed re-encodes and parses to the same request.
		again, err := abi.ParseRequest(abi.AppendRequest(nil, req))
		if err != nil || !reflect.DeepEqual(req.Params, again.Params) && len(req.Params)+len(again.Params) > 0 || req.Plugin != again.Plugin || req.Seed != again.Seed || req.Round != again.Round {
			t.Fatalf("round trip: %+v -> %+v (%v)", req, again, err)
		}
	})
}

func TestPartsEncodeLikeData(t *testing.T) {
	a, b := []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8, 9, 10, 11, 12}
	whole := abi.Frame{Tensors: []abi.Tensor{{Name: "w", DType: abi.F32, Shape: []int{3}, Data: append(append([]byte{}, a...), b...)}}}
	parts := abi.Frame{Tensors: []abi.Tensor{{Name: "w", DType: abi.F32, Shape: []int{3}, Parts: [][]byte{a, b}}}}
	if parts.Size() != whole.Size() || string(parts.AppendTo(nil)) != string(whole.AppendTo(nil)) {
		t.Fatal("a tensor given in parts encodes differently from the same bytes given whole")
	}
}
