package ml_test

import (
	"context"
	"fmt"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
)

// Train softmax regression on the digits, evaluate it on held-out images,
// and ship it as bytes.
func Example() {
	digits, err := datasets.Digits()
	if err != nil {
		fmt.Println(err)
		return
	}
	train, test, _ := digits.Split(0.25, 1)

	model, _ := ml.NewSoftmax(train.Cols, len(train.Classes))
	err = model.Fit(context.Background(), train.X, train.Y, ml.FitOptions{
		Epochs: 30, Optimizer: ml.SGD, Momentum: 0.9, LearningRate: 0.05, Seed: 1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, _ := ml.Evaluate(model, test.X, test.Y)
	fmt.Println("accuracy above 95%:", ev.Accuracy > 0.95)

	blob, _ := model.MarshalBinary()
	again, _ := ml.Unmarshal(blob)
	fmt.Println(again.Kind(), again.Sizes(), "trained on", again.Samples(), "samples,", len(blob), "bytes")
	// Output:
	// accuracy above 95%: true
	// softmax [64 10] trained on 1346 samples, 2632 bytes
}

// Federated averaging works on flat weights: each client trains a copy of
// the global model, and the server averages the copies weighted by their
// sample counts.
func Example_federatedAverage() {
	digits, _ := datasets.Digits()
	global, _ := ml.NewMLP(64, []int{32}, 10, 7)
	clients := [][]int{}
	for c := 0; c < 3; c++ { // three clients, a third of the rows each
		var idx []int
		for i := c; i < digits.Rows; i += 3 {
			idx = append(idx, i)
		}
		clients = append(clients, idx)
	}
	sum := make([]float64, global.NumWeights())
	total := 0
	for c, idx := range clients {
		local := global.Clone()
		part, _ := digits.Subset(idx)
		_ = local.Fit(context.Background(), part.X, part.Y, ml.FitOptions{Epochs: 2, Optimizer: ml.Adam, Seed: uint64(c)})
		for i, w := range local.Weights() {
			sum[i] += float64(w) * float64(local.Samples())
		}
		total += local.Samples()
	}
	avg := make([]float32, len(sum))
	for i := range sum {
		avg[i] = float32(sum[i] / float64(total))
	}
	if err := global.SetWeights(avg); err != nil {
		fmt.Println(err)
		return
	}
	global.SetSamples(total)
	fmt.Println(global.NumWeights(), "weights averaged over", global.Samples(), "samples")
	// Output:
	// 2410 weights averaged over 1797 samples
}
