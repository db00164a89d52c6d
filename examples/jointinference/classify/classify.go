// Package classify is the joint inference example's classification task:
// Fashion-MNIST frames from simulated cameras, a little edge model (softmax
// regression on 7×7 average-pooled images) and a big cloud model (an MLP
// with 128 hidden units on the 14×14 images), both trained here on the
// shipped 20,000-image subset and judged on its 2,000 test images.
package classify

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
)

// Model names the example registers, and the service's miner threshold.
const (
	LittleModel = "fashion-little"
	BigModel    = "fashion-big"
	// Threshold is the example's CrossEntropy threshold_cross_entropy: a
	// sample whose edge confidence (1 - normalised entropy) is under it is
	// hard.
	Threshold = "0.62"
)

// YAML is the example's resources (classification.yaml): the two Models and
// the JointInferenceService, its edge worker on node edge1.
//
//go:embed classification.yaml
var YAML string

// YAMLFor is YAML with the edge worker on node instead of edge1.
func YAMLFor(node string) string {
	return strings.Replace(YAML, "nodeName: edge1", "nodeName: "+node, 1)
}

// Data returns the training and test images (14×14, values in [0, 1]).
func Data() (train, test *datasets.Dataset, err error) { return datasets.FashionSubset() }

// Train trains both models with fixed seeds.
func Train(ctx context.Context, train *datasets.Dataset) (little, big *ml.Network, err error) {
	pooled, err := train.Pool(2)
	if err != nil {
		return nil, nil, err
	}
	if little, err = ml.NewSoftmax(pooled.Cols, len(train.Classes)); err != nil {
		return nil, nil, err
	}
	if err := little.Fit(ctx, pooled.X, pooled.Y, ml.FitOptions{Epochs: 20, Optimizer: ml.Adam, LearningRate: 0.01, Anneal: true, Seed: 1}); err != nil {
		return nil, nil, fmt.Errorf("classify: little model: %w", err)
	}
	if big, err = ml.NewMLP(train.Cols, []int{128}, len(train.Classes), 1); err != nil {
		return nil, nil, err
	}
	if err := big.Fit(ctx, train.X, train.Y, ml.FitOptions{Epochs: 8, Optimizer: ml.Adam, LearningRate: 0.003, Anneal: true, Seed: 1}); err != nil {
		return nil, nil, fmt.Errorf("classify: big model: %w", err)
	}
	return little, big, nil
}

// Accuracy is each model's accuracy alone on test: the little one on the
// images pooled 2×2, as the service gives them to it.
func Accuracy(little, big ml.Model, test *datasets.Dataset) (edge, cloud float64, err error) {
	pooled, err := test.Pool(2)
	if err != nil {
		return 0, 0, err
	}
	el, err := ml.Evaluate(little, pooled.X, pooled.Y)
	if err != nil {
		return 0, 0, err
	}
	eb, err := ml.Evaluate(big, test.X, test.Y)
	if err != nil {
		return 0, 0, err
	}
	return el.Accuracy, eb.Accuracy, nil
}

// Bytes is image row i of d as a camera sends it: 8-bit pixels.
func Bytes(d *datasets.Dataset, i int) []byte {
	row := d.Row(i)
	b := make([]byte, len(row))
	for j, v := range row {
		b[j] = byte(min(255, max(0, v*255+0.5)))
	}
	return b
}
