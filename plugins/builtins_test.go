package plugins_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/plugins/internal/reference"
)

func TestBuiltinsAreListedWithSednaDefaults(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	want := map[string]map[string]string{
		"Threshold":    {"threshold": "0.5"},
		"CrossEntropy": {"threshold_cross_entropy": "0.5"},
		"IBT":          {"threshold_img": "0.5", "threshold_box": "0.5"},
		"Random":       {"random_ratio": "0.3"},
		"EdgeOnly":     {},
		"CloudOnly":    {},
		"FedAvg":       {},
		"FedAvgM":      {"server_lr": "1.0", "momentum": "0.9"},
		"Median":       {},
		"TrimmedMean":  {"trim_ratio": "0.1"},
	}
	got := h.Plugins()
	if len(got) != len(want) {
		t.Fatalf("%d plugins listed, want %d: %+v", len(got), len(want), got)
	}
	for _, p := range got {
		params, ok := want[p.Name]
		if !ok || p.Source != "builtin" {
			t.Errorf("unexpected plugin %s from %s", p.Name, p.Source)
			continue
		}
		if len(p.Parameters) != len(params) {
			t.Errorf("%s: parameters %+v, want %v", p.Name, p.Parameters, params)
		}
		for _, q := range p.Parameters {
			if params[q.Key] != q.Default {
				t.Errorf("%s: %s defaults to %q, want %q", p.Name, q.Key, q.Default, params[q.Key])
			}
		}
	}
}

// sameVerdicts compares a plugin's verdicts with the native twin's. Scores
// from a logarithm may differ in the last bit between libm and Go's math, so
// they are compared to 1e-6, and a decision may differ only for a score that
// close to the threshold.
func sameVerdicts(t *testing.T, label string, got []plugins.Verdict, want []reference.Verdict, threshold float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d verdicts, want %d", label, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Reason != w.Reason {
			t.Fatalf("%s: sample %d reason %q, want %q", label, i, g.Reason, w.Reason)
		}
		if math.Abs(float64(g.Score-w.Score)) > 1e-6 {
			t.Fatalf("%s: sample %d score %v, want %v", label, i, g.Score, w.Score)
		}
		if g.Hard != w.Hard && math.Abs(float64(w.Score)-threshold) > 1e-6 {
			t.Fatalf("%s: sample %d hard=%v, want %v (score %v)", label, i, g.Hard, w.Hard, w.Score)
		}
	}
}

func TestMinersTableCases(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	ctx := context.Background()
	box := func(score float32) plugins.Box { return plugins.Box{0, 0, 1, 1, score, 0} }
	nan := float32(math.NaN())
	cases := []struct {
		miner  string
		params map[string]string
		batch  plugins.Batch
		hard   []bool
		reason []string
	}{
		{"Threshold", nil, plugins.Batch{Boxes: [][]plugins.Box{{box(0.9), box(0.8)}, {box(0.2), box(0.6)}, {}, {box(nan)}}},
			[]bool{false, true, false, false}, []string{"", "", "no boxes", "box score is NaN"}},
		{"Threshold", map[string]string{"threshold": "0.95"}, plugins.Batch{Boxes: [][]plugins.Box{{box(0.9)}}},
			[]bool{true}, []string{""}},
		// IBT: 2 of 3 boxes at or below 0.5 is a share of 0.67 >= 1-0.5.
		{"IBT", nil, plugins.Batch{Boxes: [][]plugins.Box{{box(0.1), box(0.5), box(0.9)}, {box(0.9), box(0.8), box(0.2)}, {}}},
			[]bool{true, false, false}, []string{"", "", "no boxes"}},
		{"IBT", map[string]string{"threshold_img": "0.9"}, plugins.Batch{Boxes: [][]plugins.Box{{box(0.9), box(0.8), box(0.2)}}},
			[]bool{true}, []string{""}},
		// CrossEntropy: uniform over 2 classes has confidence 0; one-hot 1.
		{"CrossEntropy", nil, plugins.Batch{Classes: 2, Probs: []float32{0.5, 0.5, 1, 0, 0.9, 0.1, nan, 0.5, 1.5, -0.5}},
			[]bool{true, false, false, false, false}, []string{"", "", "", "probability outside [0, 1] or NaN", "probability outside [0, 1] or NaN"}},
		{"CrossEntropy", nil, plugins.Batch{Classes: 1, Probs: []float32{1, 1}},
			[]bool{false, false}, []string{"needs at least two classes", "needs at least two classes"}},
		{"EdgeOnly", nil, plugins.Batch{Classes: 2, Probs: []float32{0.5, 0.5, 1, 0}}, []bool{false, false}, []string{"", ""}},
		{"CloudOnly", nil, plugins.Batch{Classes: 2, Probs: []float32{0.5, 0.5, 1, 0}}, []bool{true, true}, []string{"", ""}},
		{"CloudOnly", nil, plugins.Batch{Classes: 2, Probs: []float32{}}, []bool{}, []string{}},
		{"Threshold", nil, plugins.Batch{Boxes: [][]plugins.Box{}}, []bool{}, []string{}},
	}
	for i, c := range cases {
		m, err := h.Miner(c.miner, c.params)
		if err != nil {
			t.Fatal(err)
		}
		v, err := m.Mine(ctx, c.batch)
		if err != nil {
			t.Fatalf("case %d %s: %v", i, c.miner, err)
		}
		if len(v) != len(c.hard) {
			t.Fatalf("case %d %s: %d verdicts, want %d", i, c.miner, len(v), len(c.hard))
		}
		for j := range v {
			if v[j].Hard != c.hard[j] || v[j].Reason != c.reason[j] {
				t.Errorf("case %d %s sample %d: %+v, want hard=%v reason=%q", i, c.miner, j, v[j], c.hard[j], c.reason[j])
			}
		}
	}
}

func TestMinersRefuseWhatTheyCannotRead(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	ctx := context.Background()
	ce, _ := h.Miner("CrossEntropy", nil)
	if _, err := ce.Mine(ctx, plugins.Batch{Boxes: [][]plugins.Box{{{0, 0, 1, 1, 0.5, 0}}}}); !errors.Is(err, plugins.ErrRejected) {
		t.Errorf("CrossEntropy on boxes only: %v, want ErrRejected", err)
	}
	th, _ := h.Miner("Threshold", map[string]string{"threshold": "high"})
	_, err := th.Mine(ctx, plugins.Batch{Boxes: [][]plugins.Box{{{0, 0, 1, 1, 0.5, 0}}}})
	if !errors.Is(err, plugins.ErrRejected) {
		t.Errorf("threshold=high: %v, want ErrRejected", err)
	}
	t.Logf("a non-numeric parameter: %v", err)
	if _, err := ce.Mine(ctx, plugins.Batch{}); !errors.Is(err, plugins.ErrRejected) {
		t.Errorf("empty input: %v, want ErrRejected", err)
	}
}

// randomProbs makes rows of probabilities, some degenerate.
func randomProbs(r *rand.Rand, n, classes int) []float32 {
	p := make([]float32, n*classes)
	for i := range n {
		row := p[i*classes : (i+1)*classes]
		switch r.IntN(10) {
		case 0: // one-hot
			row[r.IntN(classes)] = 1
		case 1: // a NaN
			row[r.IntN(classes)] = float32(math.NaN())
		case 2: // out of range
			row[r.IntN(classes)] = 1 + r.Float32()
		default:
			sum := float32(0)
			for j := range row {
				row[j] = r.Float32() * r.Float32()
				sum += row[j]
			}
			for j := range row {
				row[j] /= sum
			}
		}
	}
	return p
}

func randomBoxes(r *rand.Rand, n int) [][]plugins.Box {
	out := make([][]plugins.Box, n)
	for i := range out {
		k := r.IntN(8) // 0 boxes sometimes
		for range k {
			s := r.Float32()
			if r.IntN(40) == 0 {
				s = float32(math.NaN())
			}
			if r.IntN(5) == 0 {
				s = float32(r.IntN(3)) / 4 // exact ties with thresholds
			}
			out[i] = append(out[i], plugins.Box{0, 0, 10, 10, s, float32(r.IntN(3))})
		}
	}
	return out
}

func toRef(b [][]plugins.Box) [][]reference.Box {
	out := make([][]reference.Box, len(b))
	for i, bs := range b {
		for _, x := range bs {
			out[i] = append(out[i], reference.Box(x))
		}
	}
	return out
}

func TestMinersMatchTheNativeReferenceOnRandomInputs(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		n := r.IntN(70) // includes 0: the empty batch
		classes := 1 + r.IntN(12)
		params := map[string]string{}
		th := math.Round(r.Float64()*100) / 100
		params["threshold_cross_entropy"] = strconv.FormatFloat(th, 'f', -1, 64)
		probs := randomProbs(r, n, classes)
		ce, err := h.Miner("CrossEntropy", params)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ce.Mine(ctx, plugins.Batch{Probs: probs, Classes: classes})
		if err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		want, _ := reference.CrossEntropy(probs, classes, params)
		sameVerdicts(t, "CrossEntropy", got, want, th)

		boxes := randomBoxes(r, n)
		tp := map[string]string{"threshold": strconv.FormatFloat(th, 'f', -1, 64)}
		m, _ := h.Miner("Threshold", tp)
		got, err = m.Mine(ctx, plugins.Batch{Boxes: boxes})
		if err != nil {
			t.Fatal(err)
		}
		want, _ = reference.Threshold(toRef(boxes), tp)
		sameVerdicts(t, "Threshold", got, want, th)

		ip := map[string]string{"threshold_img": strconv.FormatFloat(float64(r.IntN(5))/4, 'f', -1, 64), "threshold_box": tp["threshold"]}
		m, _ = h.Miner("IBT", ip)
		got, err = m.Mine(ctx, plugins.Batch{Boxes: boxes})
		if err != nil {
			t.Fatal(err)
		}
		want, _ = reference.IBT(toRef(boxes), ip)
		for i := range got { // IBT has no logarithm: exact
			if got[i] != (plugins.Verdict(want[i])) {
				t.Fatalf("IBT %v sample %d: %+v, want %+v", ip, i, got[i], want[i])
			}
		}

		seed := r.Uint64() | 1
		rp := map[string]string{"random_ratio": strconv.FormatFloat(r.Float64(), 'f', -1, 64)}
		m, _ = h.Miner("Random", rp)
		got, err = m.Mine(ctx, plugins.Batch{Probs: probs, Classes: classes, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		want, _ = reference.Random(n, seed, rp)
		for i := range got {
			if got[i] != (plugins.Verdict(want[i])) {
				t.Fatalf("Random sample %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	}
}

func TestRandomMinerDrawsAFreshSeedPerCall(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	m, _ := h.Miner("Random", nil)
	b := plugins.Batch{Classes: 2, Probs: make([]float32, 2*1000)}
	a, _ := m.Mine(context.Background(), b)
	c, _ := m.Mine(context.Background(), b)
	same, hard := 0, 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
		if a[i].Hard {
			hard++
		}
	}
	if same == len(a) {
		t.Fatal("two calls drew the same numbers: the seed did not change")
	}
	if hard < 240 || hard > 360 { // 300 expected, binomial sd 14.5
		t.Fatalf("%d of 1000 hard at random_ratio 0.3", hard)
	}
}

func randomUpdates(r *rand.Rand, k, n int) []plugins.Update {
	us := make([]plugins.Update, k)
	for i := range us {
		w := make([]float32, n)
		for j := range w {
			w[j] = float32(r.NormFloat64())
		}
		s := float64(1 + r.IntN(500))
		switch r.IntN(12) {
		case 0:
			s = 0 // nothing trained
		case 1:
			w[r.IntN(n)] = float32(math.NaN())
		case 2:
			w[r.IntN(n)] = float32(math.Inf(1))
		}
		us[i] = plugins.Update{Weights: w, Samples: s}
	}
	return us
}

func refUpdates(us []plugins.Update) []reference.Update {
	out := make([]reference.Update, len(us))
	for i, u := range us {
		out[i] = reference.Update(u)
	}
	return out
}

func equalF32(t *testing.T, label string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d weights, want %d", label, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: weight %d is %v, want %v (bit for bit)", label, i, got[i], want[i])
		}
	}
}

func TestAggregatorsMatchTheNativeReference(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 150 {
		k, n := 1+r.IntN(12), 1+r.IntN(300)
		us := randomUpdates(r, k, n)
		ref := refUpdates(us)
		_, usableErr := reference.FedAvg(ref)

		for _, name := range []string{"FedAvg", "Median", "TrimmedMean"} {
			params := map[string]string{}
			if name == "TrimmedMean" {
				params["trim_ratio"] = strconv.FormatFloat(float64(r.IntN(5))/10, 'f', -1, 64)
			}
			a, err := h.Aggregator(name, params)
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Aggregate(ctx, plugins.Round{Number: int64(iter), Updates: us})
			if usableErr != nil {
				if !errors.Is(err, plugins.ErrRejected) {
					t.Fatalf("%s with no usable update: %v, want ErrRejected", name, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var want []float32
			switch name {
			case "FedAvg":
				want, _ = reference.FedAvg(ref)
			case "Median":
				want, _ = reference.Median(ref)
			case "TrimmedMean":
				want, _ = reference.TrimmedMean(ref, params)
			}
			equalF32(t, name, res.Weights, want)
		}

		if usableErr != nil {
			continue
		}
		global := randomUpdates(r, 1, n)[0].Weights
		for j := range global {
			if math.IsNaN(float64(global[j])) || math.IsInf(float64(global[j]), 0) {
				global[j] = 0
			}
		}
		var state []float32
		a, _ := h.Aggregator("FedAvgM", map[string]string{"momentum": "0.5"})
		for round := range 3 { // momentum carries over through State
			res, err := a.Aggregate(ctx, plugins.Round{Number: int64(round), Updates: us, Global: global, State: state})
			if err != nil {
				t.Fatal(err)
			}
			want, v, _ := reference.FedAvgM(ref, global, state, map[string]string{"momentum": "0.5"})
			equalF32(t, "FedAvgM weights", res.Weights, want)
			equalF32(t, "FedAvgM state", res.State, v)
			state, global = res.State, res.Weights
		}
	}
}

func TestAggregatorsReportExcludedUpdates(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	a, _ := h.Aggregator("FedAvg", nil)
	res, err := a.Aggregate(context.Background(), plugins.Round{Updates: []plugins.Update{
		{Weights: []float32{1, 1}, Samples: 10},
		{Weights: []float32{100, 100}, Samples: 0},
		{Weights: []float32{float32(math.NaN()), 1}, Samples: 5},
		{Weights: []float32{3, 3}, Samples: 30},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Weights[0] != 2.5 || res.Metadata["excluded"] != "1,2" || res.Metadata["clients"] != "2" || res.Metadata["samples"] != "40" {
		t.Fatalf("got %+v", res)
	}
	_, err = a.Aggregate(context.Background(), plugins.Round{Updates: []plugins.Update{{Weights: []float32{1}, Samples: 0}}})
	if !errors.Is(err, plugins.ErrRejected) {
		t.Fatalf("zero samples in all: %v, want ErrRejected", err)
	}
	m, _ := h.Aggregator("FedAvgM", nil)
	if _, err := m.Aggregate(context.Background(), plugins.Round{Updates: []plugins.Update{{Weights: []float32{1}, Samples: 1}}}); !errors.Is(err, plugins.ErrRejected) {
		t.Fatalf("FedAvgM without global weights: %v, want ErrRejected", err)
	}
	tm, _ := h.Aggregator("TrimmedMean", map[string]string{"trim_ratio": "0.5"})
	if _, err := tm.Aggregate(context.Background(), plugins.Round{Updates: []plugins.Update{{Weights: []float32{1}, Samples: 1}}}); !errors.Is(err, plugins.ErrRejected) {
		t.Fatalf("trim_ratio 0.5: %v, want ErrRejected", err)
	}
}

// Median and TrimmedMean hold when one of ten clients is poisoned; FedAvg
// does not.
func TestRobustAggregatorsResistAPoisonedClient(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	r := rand.New(rand.NewPCG(5, 6))
	const n = 1000
	truth := make([]float32, n)
	for j := range truth {
		truth[j] = float32(r.NormFloat64())
	}
	var us []plugins.Update
	for i := range 10 {
		w := make([]float32, n)
		for j := range w {
			w[j] = truth[j] + float32(0.05*r.NormFloat64())
			if i == 7 {
				w[j] = -50 * truth[j] // sign-flipped and scaled
			}
		}
		us = append(us, plugins.Update{Weights: w, Samples: 100})
	}
	dist := func(w []float32) float64 {
		s := 0.0
		for j := range w {
			d := float64(w[j] - truth[j])
			s += d * d
		}
		return math.Sqrt(s / n)
	}
	errs := map[string]float64{}
	for _, name := range []string{"FedAvg", "Median", "TrimmedMean"} {
		a, _ := h.Aggregator(name, nil)
		res, err := a.Aggregate(context.Background(), plugins.Round{Updates: us})
		if err != nil {
			t.Fatal(err)
		}
		errs[name] = dist(res.Weights)
	}
	t.Logf("RMS distance from the clean weights with 1 of 10 poisoned: %v", errs)
	if errs["FedAvg"] < 1 || errs["Median"] > 0.1 || errs["TrimmedMean"] > 0.1 {
		t.Fatalf("robustness: %v", errs)
	}
}

// Mining-then-inference gives miners the raw samples only: the miners that
// need no inference result judge them, the others say what they need.
func TestMinersOfRawInputs(t *testing.T) {
	h, _ := newHost(t, plugins.Config{})
	ctx := context.Background()
	inputs := make([]float32, 5*3)
	for name, want := range map[string]int{"CloudOnly": 5, "EdgeOnly": 0} {
		m, err := h.Miner(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := m.Mine(ctx, plugins.Batch{Inputs: inputs, InputCols: 3})
		if err != nil || len(v) != 5 {
			t.Fatalf("%s on inputs: %v, %d verdicts", name, err, len(v))
		}
		hard := 0
		for _, x := range v {
			if x.Hard {
				hard++
			}
		}
		if hard != want {
			t.Errorf("%s: %d of 5 hard, want %d", name, hard, want)
		}
	}
	r, _ := h.Miner("Random", map[string]string{"random_ratio": "0.5"})
	if v, err := r.Mine(ctx, plugins.Batch{Inputs: make([]float32, 400), InputCols: 4, Seed: 7}); err != nil || len(v) != 100 {
		t.Fatalf("Random on inputs: %v", err)
	}
	ce, _ := h.Miner("CrossEntropy", nil)
	if _, err := ce.Mine(ctx, plugins.Batch{Inputs: inputs, InputCols: 3}); err == nil || !strings.Contains(err.Error(), "needs class probabilities") {
		t.Fatalf("CrossEntropy on raw inputs: %v", err)
	}
	if _, err := ce.Mine(ctx, plugins.Batch{Inputs: inputs[:4], InputCols: 3}); err == nil {
		t.Fatal("4 input values in rows of 3 accepted")
	}
}
