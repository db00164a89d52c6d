//go:build onnx && cgo

package onnx_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/onnx"
	"github.com/sedna-go/sedna/ml/onnx/onnxtest"
)

// lib is the ONNX Runtime library make onnxruntime installs; a test of
// this build fails without it (make test installs it).
func lib(t testing.TB) string {
	p := onnxtest.Library()
	if p == "" {
		t.Fatal("no ONNX Runtime library: run make onnxruntime, or set SEDNA_ONNXRUNTIME")
	}
	return p
}

func dense(rng *rand.Rand, in, k int) onnxtest.Dense {
	d := onnxtest.Dense{W: make([][]float32, k), B: make([]float32, k)}
	for i := range d.W {
		d.W[i] = make([]float32, in)
		for j := range d.W[i] {
			d.W[i][j] = float32(rng.NormFloat64())
		}
		d.B[i] = float32(rng.NormFloat64())
	}
	return d
}

// want is softmax(x·Wᵀ + b) of one row, computed in Go.
func want(d onnxtest.Dense, x []float32) []float32 {
	z := make([]float64, len(d.B))
	mx := math.Inf(-1)
	for i, row := range d.W {
		z[i] = float64(d.B[i])
		for j, w := range row {
			z[i] += float64(w) * float64(x[j])
		}
		mx = math.Max(mx, z[i])
	}
	var sum float64
	for i := range z {
		z[i] = math.Exp(z[i] - mx)
		sum += z[i]
	}
	out := make([]float32, len(z))
	for i := range z {
		out[i] = float32(z[i] / sum)
	}
	return out
}

// TestDenseMatchesGo checks ONNX Runtime's answers for a dense layer with
// known weights against the same arithmetic in Go, within 1e-5: for a
// graph of logits (the softmax applied here) and for one that ends in its
// own Softmax (declared, so not applied twice), a batch at a time.
func TestDenseMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, own := range []bool{false, true} {
		d := dense(rng, 6, 4)
		d.Softmax = own
		soft := !own
		m, err := onnx.Load(d.Bytes(), onnx.Options{Library: lib(t), Softmax: &soft})
		if err != nil {
			t.Fatal(err)
		}
		if m.Inputs() != 6 || m.Classes() != 4 || m.Input() != "x" || m.Output() != "y" {
			t.Fatalf("loaded %s", m)
		}
		x := make([]float32, 5*6)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		p, err := m.PredictProba(x)
		if err != nil {
			t.Fatal(err)
		}
		for r := range 5 {
			w := want(d, x[r*6:(r+1)*6])
			for i := range w {
				if math.Abs(float64(p[r*4+i]-w[i])) > 1e-5 {
					t.Fatalf("own softmax %v, row %d: got %v, want %v", own, r, p[r*4:(r+1)*4], w)
				}
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.PredictProba(x); err == nil {
			t.Fatal("a closed model answered")
		}
	}
}

// TestRefusedModels checks that a model ONNX Runtime cannot run, or that
// does not fit its declaration, is refused at Load with an error wrapping
// the right sentinel, in one line that says what is wrong: garbage, a
// truncated file, an operator the runtime lacks, an opset newer than it
// knows, a shape the Model declares wrongly, an input name the graph lacks;
// and that a sample of the wrong size is refused at inference.
func TestRefusedModels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	good := dense(rng, 4, 3).Bytes()
	unknownOp := dense(rng, 4, 3)
	unknownOp.Op = "Frobnicate"
	newOpset := dense(rng, 4, 3)
	newOpset.Opset = 999
	for _, c := range []struct {
		name string
		data []byte
		o    onnx.Options
		is   error
		says string
	}{
		{"garbage", []byte("this is not a model at all"), onnx.Options{}, onnx.ErrModel, "not an ONNX model"},
		{"truncated", good[:len(good)/2], onnx.Options{}, onnx.ErrModel, "not an ONNX model"},
		{"empty", nil, onnx.Options{}, onnx.ErrModel, "empty"},
		{"operator the runtime lacks", unknownOp.Bytes(), onnx.Options{}, onnx.ErrModel, "Frobnicate"},
		{"opset too new", newOpset.Bytes(), onnx.Options{}, onnx.ErrModel, "999"},
		{"declared shape", good, onnx.Options{Shape: []int64{2, 2, 2}}, onnx.ErrDeclared, "declares [2 2 2]"},
		{"declared input", good, onnx.Options{Input: "image"}, onnx.ErrDeclared, `"image"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.Library = lib(t)
			_, err := onnx.Load(c.data, c.o)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v; want one line wrapping %v saying %q", err, c.is, c.says)
			}
		})
	}
	m, err := onnx.Load(good, onnx.Options{Library: lib(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.PredictProba(make([]float32, 6)); !errors.Is(err, onnx.ErrInput) {
		t.Fatalf("6 values for samples of 4: %v", err)
	}
	if _, err := m.PredictProba([]float32{1, 2, float32(math.NaN()), 4}); !errors.Is(err, onnx.ErrInput) {
		t.Fatalf("NaN: %v", err)
	}
}

// TestDynamicShapeDeclared checks a graph whose input dimensions are
// dynamic: refused until the Model declares the sample's shape, then
// served with it.
func TestDynamicShapeDeclared(t *testing.T) {
	d := dense(rand.New(rand.NewPCG(5, 6)), 4, 2)
	d.Shape = []int64{-1, 1, -1, -1}
	if _, err := onnx.Load(d.Bytes(), onnx.Options{Library: lib(t)}); !errors.Is(err, onnx.ErrDeclared) {
		t.Fatalf("undeclared dynamic shape: %v", err)
	}
	m, err := onnx.Load(d.Bytes(), onnx.Options{Library: lib(t), Shape: []int64{1, 2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.PredictProba([]float32{1, 2, 3, 4, 0, 0, 0, 0})
	if err != nil || len(p) != 4 {
		t.Fatalf("got %v, %v", p, err)
	}
}

// TestConcurrentPredict checks that one model serves many goroutines at
// once (the race detector watches) with the answers of one at a time.
func TestConcurrentPredict(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	d := dense(rng, 8, 3)
	m, err := onnx.Load(d.Bytes(), onnx.Options{Library: lib(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	x := make([]float32, 8)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	first, err := m.PredictProba(x)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				p, err := m.PredictProba(x)
				if err != nil {
					errs <- err
					return
				}
				for i := range p {
					if p[i] != first[i] {
						errs <- errors.New("answers differ between goroutines")
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// cnnAccuracy loads an export of examples/onnx/train_cnn.py with the
// preprocessing its Model declares and scores it on the Fashion subset's
// test set.
func cnnAccuracy(t *testing.T, path string) float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Load(data, onnx.Options{Library: lib(t), Pre: onnx.Preprocess{Mean: []float32{0.2860}, Std: []float32{0.3530}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, test, err := datasets.FashionSubset()
	if err != nil {
		t.Fatal(err)
	}
	pred, err := m.Predict(test.X)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := ml.Accuracy(test.Y, pred)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

// TestCommittedCNN checks the committed PyTorch CNN under ONNX Runtime:
// its accuracy on the Fashion subset's test set is the 87.6% PyTorch
// measured when exporting it (within 0.5 point: another runtime's
// arithmetic).
func TestCommittedCNN(t *testing.T) {
	if acc := cnnAccuracy(t, onnxtest.CNN()); math.Abs(acc-0.876) > 0.005 {
		t.Fatalf("accuracy %.4f, PyTorch measured 0.876", acc)
	}
}

// TestCNNScriptReproduces runs examples/onnx/train_cnn.py with Debian's
// PyTorch (make deps installs python3-torch) and checks that the model it
// exports scores within a point of the committed one under ONNX Runtime,
// as wasm-check does for the WASM modules (the bytes are the same on this
// machine; another CPU's kernels may round differently).
func TestCNNScriptReproduces(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cnn.onnx")
	script := filepath.Join(filepath.Dir(onnxtest.CNN()), "train_cnn.py")
	raw, err := exec.Command("/usr/bin/python3", script, "--out", out).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: %v\n%s(python3-torch is installed by make deps)", script, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var said struct{ Accuracy float64 }
	if err := json.Unmarshal(raw, &said); err != nil {
		t.Fatalf("%s printed %q: %v", script, raw, err)
	}
	got, committed := cnnAccuracy(t, out), cnnAccuracy(t, onnxtest.CNN())
	if math.Abs(got-committed) > 0.01 || math.Abs(got-said.Accuracy) > 0.005 {
		t.Fatalf("the script's model scores %.4f (PyTorch said %.4f), the committed one %.4f: run it and commit examples/onnx/fashion-cnn.onnx", got, said.Accuracy, committed)
	}
}

// twin is an MLP of the joint inference example's cloud shape (196 → 128
// → 10, random weights) and its ONNX export loaded by ONNX Runtime.
func twin(t testing.TB) (*ml.Network, *onnx.Model) {
	n, err := ml.NewMLP(196, []int{128}, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := onnx.Export(n)
	if err != nil {
		t.Fatal(err)
	}
	no := false
	m, err := onnx.Load(data, onnx.Options{Library: lib(t), Softmax: &no})
	if err != nil {
		t.Fatal(err)
	}
	return n, m
}

// TestExportTwin checks that a network exported to ONNX answers as the
// network does, within 1e-5, and names its tensors as Export says.
func TestExportTwin(t *testing.T) {
	n, m := twin(t)
	defer m.Close()
	if m.Input() != "input" || m.Output() != "probabilities" || m.Inputs() != 196 || m.Classes() != 10 {
		t.Fatalf("exported %s", m)
	}
	_, test, err := datasets.FashionSubset()
	if err != nil {
		t.Fatal(err)
	}
	x := test.X[:100*196]
	want, err := n.PredictProba(x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.PredictProba(x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("value %d: ONNX %v, Go %v", i, got[i], want[i])
		}
	}
}

// BenchmarkTwin compares the same MLP served by the pure-Go network and
// by ONNX Runtime (one thread), a batch of 1 and of 64 Fashion images per
// call: go test -tags onnx -run '^$' -bench Twin ./ml/onnx
func BenchmarkTwin(b *testing.B) {
	n, m := twin(b)
	defer m.Close()
	_, test, err := datasets.FashionSubset()
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 64} {
		x := test.X[:batch*196]
		for _, c := range []struct {
			name string
			p    ml.Predictor
		}{{"go", n}, {"onnx", m}} {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, c.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := c.p.PredictProba(x); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
			})
		}
	}
}

// BenchmarkCNN is the committed PyTorch CNN under ONNX Runtime, a batch
// of 1 and of 64: go test -tags onnx -run '^$' -bench CNN ./ml/onnx
func BenchmarkCNN(b *testing.B) {
	data, err := os.ReadFile(onnxtest.CNN())
	if err != nil {
		b.Fatal(err)
	}
	m, err := onnx.Load(data, onnx.Options{Library: lib(b), Pre: onnx.Preprocess{Mean: []float32{0.2860}, Std: []float32{0.3530}}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	_, test, err := datasets.FashionSubset()
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 64} {
		x := test.X[:batch*196]
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			for b.Loop() {
				if _, err := m.PredictProba(x); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
