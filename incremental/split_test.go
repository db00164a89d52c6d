package incremental

import (
	"fmt"
	"math"
	"testing"
)

// The split follows trainProb (within 1.5 points over 20,000 keys), gives
// a key the set it was given when this test was written (a changed hash
// would move samples between sets across versions), and sends all to one
// set at 0 and 1.
func TestInTrainSet(t *testing.T) {
	for _, p := range []float64{0.1, 0.5, 0.8} {
		n, train := 20000, 0
		for i := range n {
			if InTrainSet(fmt.Sprintf("edge1/%d", i), p) {
				train++
			}
		}
		if got := float64(train) / float64(n); math.Abs(got-p) > 0.015 {
			t.Errorf("trainProb %.1f: %.3f of the keys in the train set", p, got)
		}
	}
	const golden = "TTeeeeTTeeTTeeeeTTeeTeeT" // hard-0 .. hard-23 at 0.5
	got := ""
	for i := range len(golden) {
		if InTrainSet(fmt.Sprintf("hard-%d", i), 0.5) {
			got += "T"
		} else {
			got += "e"
		}
	}
	if got != golden {
		t.Fatalf("sets %s, were %s", got, golden)
	}
	for i := range 100 {
		k := fmt.Sprintf("hard-%d", i)
		if InTrainSet(k, 0) || !InTrainSet(k, 1) || InTrainSet(k, -1) || !InTrainSet(k, 2) {
			t.Fatalf("%s: trainProb 0 or 1 not honoured", k)
		}
	}
}
