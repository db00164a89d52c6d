package onnx

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/ml"
)

// TestPrep checks the preprocessing on samples as devices send them: scale
// then per-channel (v-mean)/std, and an HWC image reordered to CHW for an
// NCHW model (kept as is for NHWC).
func TestPrep(t *testing.T) {
	for _, c := range []struct {
		name  string
		p     Preprocess
		shape []int64
		x     []float32
		want  []float32
	}{
		{"identity", Preprocess{}, []int64{1, 2, 2}, []float32{1, 2, 3, 4}, []float32{1, 2, 3, 4}},
		{"scale", Preprocess{Scale: 0.5}, []int64{4}, []float32{1, 2, 3, 4}, []float32{0.5, 1, 1.5, 2}},
		{"one mean and std", Preprocess{Mean: []float32{1}, Std: []float32{2}}, []int64{1, 2, 2}, []float32{1, 3, 5, 7}, []float32{0, 1, 2, 3}},
		// 2×2 pixels of 3 channels, HWC: (r,g,b) per pixel.
		{"hwc to chw", Preprocess{}, []int64{3, 2, 2},
			[]float32{1, 10, 100, 2, 20, 200, 3, 30, 300, 4, 40, 400},
			[]float32{1, 2, 3, 4, 10, 20, 30, 40, 100, 200, 300, 400}},
		{"per channel, nchw", Preprocess{Scale: 1, Mean: []float32{0, 10, 100}, Std: []float32{1, 10, 100}}, []int64{3, 1, 2},
			[]float32{1, 20, 300, 2, 30, 400},
			[]float32{1, 2, 1, 2, 2, 3}},
		{"per channel, nhwc", Preprocess{Layout: LayoutNHWC, Mean: []float32{0, 10}, Std: []float32{1, 10}}, []int64{1, 2, 2},
			[]float32{1, 20, 2, 30},
			[]float32{1, 1, 2, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := newPrep(c.p, c.shape)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(c.x))
			q.apply(c.x, got)
			for i := range got {
				if math.Abs(float64(got[i]-c.want[i])) > 1e-6 {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

// TestDeclarationsRefused checks that declarations that cannot be right
// are refused with an error wrapping ErrDeclared, in one line, before any
// runtime is needed.
func TestDeclarationsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"layout", Options{Pre: Preprocess{Layout: "CHWN"}}, "layout"},
		{"zero std", Options{Pre: Preprocess{Std: []float32{0}}}, "std"},
		{"nan mean", Options{Pre: Preprocess{Mean: []float32{float32(math.NaN())}}}, "mean"},
		{"batch in shape", Options{Shape: []int64{-1, 14, 14}}, "shape"},
		{"threads", Options{Threads: -1}, "threads"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.Check()
			if !errors.Is(err, ErrDeclared) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Check: %v; want one line wrapping ErrDeclared about %s", err, c.want)
			}
			if _, err := Load([]byte("x"), c.o); !errors.Is(err, ErrDeclared) {
				t.Fatalf("Load: %v; want the declaration refused first", err)
			}
		})
	}
	if _, err := newPrep(Preprocess{Mean: []float32{1, 2}}, []int64{3, 2, 2}); !errors.Is(err, ErrDeclared) {
		t.Fatalf("two means for three channels: %v", err)
	}
}

// TestFit checks the graph's shapes against the declaration: a declared
// shape fills dynamic dimensions and must agree with fixed ones; dynamic
// dimensions left undeclared and outputs that are not [batch, classes]
// are refused.
func TestFit(t *testing.T) {
	m, err := fit(Options{}, "image", []int64{-1, 1, 14, 14}, "logits", []int64{-1, 10})
	if err != nil || m.Inputs() != 196 || m.Classes() != 10 || !slices.Equal(m.Shape(), []int64{1, 14, 14}) || !m.softmax {
		t.Fatalf("fixed graph: %v, %+v", err, m)
	}
	no := false
	if m, err = fit(Options{Shape: []int64{3, 8, 8}, Softmax: &no}, "x", []int64{-1, 3, -1, -1}, "y", []int64{-1, 4}); err != nil || m.Inputs() != 192 || m.softmax {
		t.Fatalf("dynamic graph, declared shape: %v, %+v", err, m)
	}
	for _, c := range []struct {
		name    string
		o       Options
		in, out []int64
		want    string
	}{
		{"wrong shape", Options{Shape: []int64{1, 28, 28}}, []int64{-1, 1, 14, 14}, []int64{-1, 10}, "declares [1 28 28]"},
		{"wrong rank", Options{Shape: []int64{196}}, []int64{-1, 1, 14, 14}, []int64{-1, 10}, "declares [196]"},
		{"dynamic undeclared", Options{}, []int64{-1, 3, -1, -1}, []int64{-1, 10}, "declare the sample's shape"},
		{"no batch", Options{}, []int64{196}, []int64{-1, 10}, "batch axis"},
		{"scalar output", Options{}, []int64{-1, 196}, []int64{-1}, "want [batch, classes]"},
		{"dynamic output", Options{}, []int64{-1, 196}, []int64{-1, -1}, "dynamic"},
		{"one class", Options{}, []int64{-1, 196}, []int64{-1, 1}, "at least 2 classes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := fit(c.o, "x", c.in, "y", c.out)
			if !errors.Is(err, ErrDeclared) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want ErrDeclared saying %q", err, c.want)
			}
		})
	}
}

// TestSoftmaxRows checks the softmax applied to a model's logits (the
// learning substrate's): each row becomes probabilities in the
// logits' order, without overflow for large logits.
func TestSoftmaxRows(t *testing.T) {
	z := []float32{1000, 1001, 0, 0}
	ml.SoftmaxRows(z, 2)
	if !(z[1] > z[0]) || math.Abs(float64(z[0]+z[1]-1)) > 1e-6 || z[2] != 0.5 || z[3] != 0.5 {
		t.Fatalf("got %v", z)
	}
}

// TestOneLine checks how the runtime's messages are cut down: the
// binding's prefixes, the source location and signature, later lines.
func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"Error creating C session: Error creating session: Protobuf parsing failed.":                                                               "Protobuf parsing failed.",
		"/onnxruntime_src/onnxruntime/core/graph/model_load_utils.h:46 void f(const std::map<a, (b)>&, int) Opset 999 is under development.\nmore": "Opset 999 is under development.",
		"plain": "plain",
	} {
		if got := oneLine(errors.New(in)); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
	if got := oneLine(errors.New(strings.Repeat("x", 500))); len(got) != 403 {
		t.Errorf("a 500-byte message kept %d bytes", len(got))
	}
}
