package guest_test

import (
	"fmt"

	"github.com/sedna-go/sedna/plugins/abi"
	"github.com/sedna-go/sedna/plugins/guest"
)

// A plugin registers one function in init; the same handler that runs in
// WASM runs natively for tests.
func Example() {
	guest.Miner(guest.Info{Name: "TopBelow", Version: "1.0.0",
		Parameters: []guest.Param{{Key: "threshold", Default: "0.7"}}},
		func(s guest.Sample, p guest.Params) (bool, float32, error) {
			t, err := p.Float("threshold")
			if err != nil {
				return false, 0, err
			}
			top := float32(0)
			for _, q := range s.Probs {
				top = max(top, q)
			}
			return float64(top) < t, top, nil
		})

	in := abi.Frame{
		Meta:    abi.AppendRequest(nil, abi.Request{Plugin: "TopBelow", Params: []abi.KV{{Key: "threshold", Value: "0.7"}}}),
		Tensors: []abi.Tensor{abi.F32Tensor("probs", []float32{0.6, 0.4, 0.95, 0.05}, 2, 2)},
	}
	out, _ := abi.Decode(guest.HandleMine(in.AppendTo(nil)))
	hard, _ := out.Tensor("hard")
	fmt.Println(hard.Data)
	// Output: [1 0]
}
