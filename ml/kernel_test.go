package ml

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Every kernel must give the same bits as the reference kernel, since the
// race build uses other kernels than the normal build and the weights must
// not depend on the build.
func TestKernelsAgreeBitForBit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name    string
		m, n, k int
	}{
		{"one", 1, 1, 1},
		{"remainders", 7, 10, 13},
		{"forward 14x14", 32, 128, 196},
		{"weight gradient", 128, 196, 16},
		{"longer than a panel", 9, 6, panel + 37},
		{"A too big for the stack", 80, 5, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := randSlice(rng, tc.m*tc.k)
			b := randSlice(rng, tc.n*tc.k)
			want := make([]float32, tc.m*tc.n)
			for i := 0; i < tc.m; i++ {
				for j := 0; j < tc.n; j++ {
					want[i*tc.n+j] = dot(a[i*tc.k:(i+1)*tc.k], b[j*tc.k:(j+1)*tc.k])
				}
			}
			kernels := map[string]func(m, n, k int, a, b, c []float32){
				"1x4": mulABt1x4, "stack": mulABtStack, "dispatch": mulABt,
			}
			if tc.m*tc.k <= stackFloats {
				kernels["whole"] = mulABtWhole
			}
			for name, kern := range kernels {
				got := make([]float32, tc.m*tc.n)
				kern(tc.m, tc.n, tc.k, a, b, got)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: C[%d] = %v, want %v", name, i, got[i], want[i])
					}
				}
			}
		})
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func TestTranspose(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5, 6} // 2×3
	got := make([]float32, 6)
	transpose(2, 3, a, got)
	want := []float32{1, 4, 2, 5, 3, 6}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("transpose = %v, want %v", got, want)
		}
	}
}

// The analytic gradient of backpropagation must match central finite
// differences of the loss, for softmax regression and both MLP depths.
func TestGradientMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name   string
		hidden []int
	}{{"softmax", nil}, {"mlp one hidden", []int{6}}, {"mlp two hidden", []int{6, 5}}} {
		t.Run(tc.name, func(t *testing.T) {
			var n *Network
			var err error
			if tc.hidden == nil {
				n, err = NewSoftmax(4, 3)
				for i := range n.params {
					n.params[i] = float32(rng.NormFloat64() * 0.5)
				}
			} else {
				n, err = NewMLP(4, tc.hidden, 3, 9)
			}
			if err != nil {
				t.Fatal(err)
			}
			const rows = 10 // splits into two shards
			x := randSlice(rng, rows*4)
			y := make([]int, rows)
			idx := make([]int, rows)
			for i := range y {
				y[i], idx[i] = rng.IntN(3), i
			}
			o, _ := FitOptions{BatchSize: rows}.withDefaults()
			tr := newTrainer(n, o)
			scale := float32(1) / rows
			s := tr.shards[0]
			tr.transposeWeights()
			s.gradient(tr, x, y, idx, scale)
			loss := func() float64 {
				p, err := n.PredictProba(x)
				if err != nil {
					t.Fatal(err)
				}
				var sum float64
				for r, c := range y {
					sum -= math.Log(float64(p[r*3+c]))
				}
				return sum / rows
			}
			const h = 1e-3
			for i := range n.params {
				orig := n.params[i]
				n.params[i] = orig + h
				up := loss()
				n.params[i] = orig - h
				down := loss()
				n.params[i] = orig
				num := (up - down) / (2 * h)
				if diff := math.Abs(num - float64(s.grad[i])); diff > 2e-3+2e-2*math.Abs(num) {
					t.Errorf("parameter %d: backprop %.5f, finite difference %.5f", i, s.grad[i], num)
				}
			}
		})
	}
}
