// Command go-margin is an example third-party hard-example miner written in
// Go with the guest SDK: a sample is hard when the two most likely classes
// are close (a small margin means the model hesitates).
//
// Build it with `sedna plugin build examples/plugins/go-margin` and load it
// with `sedna plugin run` or from a plugin directory.
package main

import (
	"errors"
	"math"

	"github.com/sedna-go/sedna/plugins/guest"
)

func init() {
	guest.Miner(guest.Info{
		Name:        "Margin",
		Version:     "1.0.0",
		Description: "hard when the top two class probabilities are within threshold_margin",
		Parameters:  []guest.Param{{Key: "threshold_margin", Default: "0.2", Description: "largest margin still judged hard"}},
	}, margin)
}

func margin(s guest.Sample, p guest.Params) (bool, float32, error) {
	th, err := p.Float("threshold_margin")
	if err != nil {
		return false, 0, err
	}
	if len(s.Probs) < 2 {
		return false, 0, errors.New("needs at least two classes")
	}
	first, second := float32(math.Inf(-1)), float32(math.Inf(-1))
	for _, q := range s.Probs {
		if q != q {
			return false, 0, errors.New("probability is NaN")
		}
		switch {
		case q > first:
			first, second = q, first
		case q > second:
			second = q
		}
	}
	m := first - second
	return float64(m) < th, m, nil
}

func main() {}
