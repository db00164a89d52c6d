package plugins_test

import (
	"context"
	"fmt"

	"github.com/sedna-go/sedna/plugins"
)

// A host serves the built-in miners and aggregators by name, with Sedna's
// parameters.
func Example() {
	ctx := context.Background()
	h, err := plugins.New(ctx, plugins.Config{})
	if err != nil {
		panic(err)
	}
	defer h.Close(ctx)

	miner, _ := h.Miner("CrossEntropy", map[string]string{"threshold_cross_entropy": "0.5"})
	verdicts, _ := miner.Mine(ctx, plugins.Batch{Classes: 2, Probs: []float32{
		0.55, 0.45, // unsure: hard
		0.99, 0.01, // sure: not hard
	}})
	fmt.Println(verdicts[0].Hard, verdicts[1].Hard)

	fedavg, _ := h.Aggregator("FedAvg", nil)
	res, _ := fedavg.Aggregate(ctx, plugins.Round{Updates: []plugins.Update{
		{Weights: []float32{1, 2}, Samples: 1},
		{Weights: []float32{3, 4}, Samples: 3},
	}})
	fmt.Println(res.Weights)
	// Output:
	// true false
	// [2.5 3.5]
}
