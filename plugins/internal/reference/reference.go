// Package reference holds native Go twins of the built-in WASM plugins. The
// tests hold every built-in to its twin, and the benchmarks compare the two;
// the arithmetic mirrors builtins.c operation for operation (float32 where it
// uses float, explicit conversions so that no platform fuses a multiply-add).
package reference

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Box is xmin, ymin, xmax, ymax, score, label.
type Box = [6]float32

// Verdict mirrors plugins.Verdict.
type Verdict struct {
	Hard   bool
	Score  float32
	Reason string
}

func param(p map[string]string, key string, def float64) (float64, error) {
	s, ok := p[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("parameter %s is not a number", key)
	}
	return v, nil
}

// Threshold: hard when the mean box score is below threshold.
func Threshold(boxes [][]Box, p map[string]string) ([]Verdict, error) {
	th, err := param(p, "threshold", 0.5)
	if err != nil {
		return nil, err
	}
	out := make([]Verdict, len(boxes))
	for i, bs := range boxes {
		if len(bs) == 0 {
			out[i].Reason = "no boxes"
			continue
		}
		sum, bad := 0.0, false
		for _, b := range bs {
			if b[4] != b[4] {
				bad = true
			}
			sum += float64(b[4])
		}
		if bad {
			out[i].Reason = "box score is NaN"
			continue
		}
		mean := sum / float64(len(bs))
		out[i] = Verdict{Hard: mean < th, Score: float32(mean)}
	}
	return out, nil
}

// IBT: hard when the share of boxes scoring at most threshold_box is at
// least 1 - threshold_img.
func IBT(boxes [][]Box, p map[string]string) ([]Verdict, error) {
	ti, err := param(p, "threshold_img", 0.5)
	if err != nil {
		return nil, err
	}
	tb, err := param(p, "threshold_box", 0.5)
	if err != nil {
		return nil, err
	}
	out := make([]Verdict, len(boxes))
	for i, bs := range boxes {
		if len(bs) == 0 {
			out[i].Reason = "no boxes"
			continue
		}
		low, bad := 0, false
		for _, b := range bs {
			if b[4] != b[4] {
				bad = true
			}
			if float64(b[4]) <= tb {
				low++
			}
		}
		if bad {
			out[i].Reason = "box score is NaN"
			continue
		}
		share := float64(low) / float64(len(bs))
		out[i] = Verdict{Hard: share >= 1-ti, Score: float32(share)}
	}
	return out, nil
}

// CrossEntropy: hard when 1 + sum(p ln p)/ln N is below
// threshold_cross_entropy.
func CrossEntropy(probs []float32, classes int, p map[string]string) ([]Verdict, error) {
	th, err := param(p, "threshold_cross_entropy", 0.5)
	if err != nil {
		return nil, err
	}
	if classes <= 0 {
		return nil, errors.New("no classes")
	}
	n := len(probs) / classes
	out := make([]Verdict, n)
	for i := range n {
		if classes < 2 {
			out[i].Reason = "needs at least two classes"
			continue
		}
		row := probs[i*classes : (i+1)*classes]
		sum, bad := 0.0, false
		for _, x := range row {
			q := float64(x)
			if !(q >= 0 && q <= 1) {
				bad = true
				break
			}
			if q > 0 {
				sum += float64(q * math.Log(q))
			}
		}
		if bad {
			out[i].Reason = "probability outside [0, 1] or NaN"
			continue
		}
		conf := 1 + sum/math.Log(float64(classes))
		out[i] = Verdict{Hard: conf < th, Score: float32(conf)}
	}
	return out, nil
}

// SplitMix64 is the generator Random draws from: sample i of a call with
// seed s gets SplitMix64(s + i).
func SplitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Random: hard with probability random_ratio.
func Random(n int, seed uint64, p map[string]string) ([]Verdict, error) {
	r, err := param(p, "random_ratio", 0.3)
	if err != nil {
		return nil, err
	}
	out := make([]Verdict, n)
	for i := range out {
		u := float64(SplitMix64(seed+uint64(i))>>11) * 0x1p-53
		out[i] = Verdict{Hard: u < r, Score: float32(u)}
	}
	return out, nil
}

// Update mirrors plugins.Update.
type Update struct {
	Weights []float32
	Samples float64
}

func usable(us []Update) ([]int, float64, error) {
	var use []int
	total := 0.0
	for i, u := range us {
		ok := u.Samples > 0 && !math.IsInf(u.Samples, 0)
		for _, w := range u.Weights {
			if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
				ok = false
				break
			}
		}
		if ok {
			use = append(use, i)
			total += u.Samples
		}
	}
	if len(use) == 0 {
		return nil, 0, errors.New("no usable update")
	}
	return use, total, nil
}

// FedAvg is the sample-weighted mean.
func FedAvg(us []Update) ([]float32, error) {
	use, total, err := usable(us)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(us[0].Weights))
	for _, i := range use {
		coef := float32(us[i].Samples / total)
		for j, w := range us[i].Weights {
			out[j] += float32(coef * w)
		}
	}
	return out, nil
}

// FedAvgM is FedAvg with server momentum: v = momentum*v + (global - avg);
// new = global - server_lr*v. It returns the new weights and v.
func FedAvgM(us []Update, global, state []float32, p map[string]string) ([]float32, []float32, error) {
	lr, err := param(p, "server_lr", 1)
	if err != nil {
		return nil, nil, err
	}
	mom, err := param(p, "momentum", 0.9)
	if err != nil {
		return nil, nil, err
	}
	avg, err := FedAvg(us)
	if err != nil {
		return nil, nil, err
	}
	m, l := float32(mom), float32(lr)
	v := make([]float32, len(avg))
	for j := range avg {
		var prev float32
		if state != nil {
			prev = state[j]
		}
		vj := float32(m*prev) + (global[j] - avg[j])
		v[j] = vj
		avg[j] = global[j] - float32(l*vj)
	}
	return avg, v, nil
}

func columns(us []Update, rule func([]float32) float32) ([]float32, error) {
	use, _, err := usable(us)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(us[0].Weights))
	col := make([]float32, len(use))
	for j := range out {
		for k, i := range use {
			col[k] = us[i].Weights[j]
		}
		slices.Sort(col)
		out[j] = rule(col)
	}
	return out, nil
}

// Median is the coordinate-wise median of the usable updates.
func Median(us []Update) ([]float32, error) {
	return columns(us, func(c []float32) float32 {
		m := len(c)
		if m%2 == 1 {
			return c[m/2]
		}
		return (c[m/2-1] + c[m/2]) / 2
	})
}

// TrimmedMean drops floor(trim_ratio*n) values at each end of every
// coordinate and averages the rest.
func TrimmedMean(us []Update, p map[string]string) ([]float32, error) {
	r, err := param(p, "trim_ratio", 0.1)
	if err != nil {
		return nil, err
	}
	use, _, err := usable(us)
	if err != nil {
		return nil, err
	}
	trim := int(math.Floor(r * float64(len(use))))
	return columns(us, func(c []float32) float32 {
		var s float32
		for _, x := range c[trim : len(c)-trim] {
			s += x
		}
		return s / float32(len(c)-2*trim)
	})
}
