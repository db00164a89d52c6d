package paradigm_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/onnx"
	"github.com/sedna-go/sedna/ml/onnx/onnxtest"
	"github.com/sedna-go/sedna/paradigm"
)

// TestLoadPredictor checks which bytes each format loads: the learning
// substrate's model under "", "sedna" and "sedna-ml"; ONNX under "onnx"
// and "" (served by this build's runtime, or refused in one line naming
// sedna-onnx); any other format refused with ErrFormat, as is garbage.
func TestLoadPredictor(t *testing.T) {
	if lib := onnxtest.Library(); lib != "" {
		t.Setenv(onnx.LibraryEnv, lib)
	}
	n, err := ml.NewSoftmax(4, 3)
	if err != nil {
		t.Fatal(err)
	}
	sedna, err := n.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"", api.FormatSedna, api.FormatSednaML} {
		if p, err := paradigm.LoadPredictor(sedna, paradigm.ModelInfo{Format: f}); err != nil || p.Inputs() != 4 {
			t.Fatalf("format %q: %v", f, err)
		}
	}
	if _, err := paradigm.LoadPredictor(sedna, paradigm.ModelInfo{Format: "pb"}); !errors.Is(err, paradigm.ErrFormat) || !strings.Contains(err.Error(), `"pb"`) {
		t.Fatalf("format pb: %v", err)
	}
	if _, err := paradigm.LoadPredictor([]byte("garbage"), paradigm.ModelInfo{}); err == nil || !strings.Contains(err.Error(), "not a sedna model") {
		t.Fatalf("garbage: %v", err)
	}
	model := onnxtest.Dense{W: [][]float32{{1, 0}, {0, 1}}, B: []float32{0, 0}}.Bytes()
	for _, f := range []string{"", api.FormatONNX} {
		p, err := paradigm.LoadPredictor(model, paradigm.ModelInfo{Format: f})
		switch {
		case onnx.Built && onnxtest.Library() != "":
			if err != nil || p.Classes() != 2 {
				t.Fatalf("onnx as %q: %v", f, err)
			}
		default:
			if !errors.Is(err, onnx.ErrNoRuntime) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("onnx as %q without the runtime: %v", f, err)
			}
		}
	}
}

// TestONNXOptions checks how a Model's declarations become ml/onnx's
// options: the input's shape loses its batch axis, names and
// preprocessing pass, postprocess none turns the softmax off.
func TestONNXOptions(t *testing.T) {
	o := paradigm.ONNXOptions(api.ModelIO{
		Inputs:      []api.TensorSpec{{Name: "image", Shape: []int64{-1, 1, 14, 14}}},
		Outputs:     []api.TensorSpec{{Name: "probs"}},
		Preprocess:  &api.Preprocess{Scale: 0.5, Mean: []float32{0.1}, Std: []float32{0.2}, Layout: "NHWC"},
		Postprocess: "none",
	})
	if o.Input != "image" || o.Output != "probs" || !slices.Equal(o.Shape, []int64{1, 14, 14}) || o.Pre.Scale != 0.5 ||
		o.Pre.Mean[0] != 0.1 || o.Pre.Std[0] != 0.2 || o.Pre.Layout != "NHWC" || o.Softmax == nil || *o.Softmax {
		t.Fatalf("got %+v", o)
	}
	if o := paradigm.ONNXOptions(api.ModelIO{}); o.Softmax != nil || o.Shape != nil {
		t.Fatalf("nothing declared: %+v", o)
	}
}

// TestFormatOf checks the format a version is told by: its Model's when it
// gives one, else the learning substrate's magic (or no bytes) or ONNX.
func TestFormatOf(t *testing.T) {
	n, _ := ml.NewSoftmax(2, 2)
	sedna, _ := n.MarshalBinary()
	for _, c := range []struct {
		data   []byte
		format string
		want   string
	}{
		{sedna, "", api.FormatSedna},
		{nil, "", api.FormatSedna},
		{[]byte{0x08, 0x08}, "", api.FormatONNX},
		{sedna, "pb", "pb"},
		{sedna, api.FormatSednaML, api.FormatSednaML},
	} {
		if got := paradigm.FormatOf(c.data, paradigm.ModelInfo{Format: c.format}); got != c.want {
			t.Errorf("FormatOf(%.4q, %q) = %q, want %q", c.data, c.format, got, c.want)
		}
	}
}
