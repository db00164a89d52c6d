// Package detection is the joint inference example's detection task, the
// stand-in for Sedna's helmet-detection example: 32×32 frames holding one to
// three handwritten digits (ml/detect's scenes), a little edge detector
// (softmax regression on 8×8 windows) and a bigger cloud detector (an MLP
// with 128 hidden units on the same windows), both sliding-window detectors
// with the geometry of Detector, trained here with fixed seeds on scenes of
// training digits and judged on scenes of held-out digits. The edge sends a
// frame to the cloud when Sedna's IBT hard-example miner, with ThresholdImg
// and ThresholdBox, finds it hard.
package detection

import (
	"context"
	"fmt"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/detect"
)

// Model names the example registers, and the IBT miner's parameters.
const (
	LittleModel = "digits-little-detector"
	BigModel    = "digits-big-detector"
	// ThresholdImg is the example's IBT threshold_img: a frame is hard when
	// at least 1 - ThresholdImg of its boxes score at most ThresholdBox.
	ThresholdImg = "0.9"
	// ThresholdBox is the example's IBT threshold_box.
	ThresholdBox = "0.9"
)

// The detector geometry both models share (see detect.Detector).
const (
	// Window is the side of the square window the models classify, the
	// size of a digit.
	Window = 8
	// Stride is the step, in pixels, between two windows.
	Stride = 2
	// MinScore is the least object-class probability a window needs to be
	// a box.
	MinScore = 0.5
	// NMS is the IoU above which a box is dropped for a higher-scoring one.
	NMS = 0.3
)

// Classes is the number of object classes (the digits); the models predict
// one more, the background.
const Classes = 10

// Scene sizes and counts of Data.
const (
	// Size is the side of a frame, in pixels.
	Size = 32
	// TrainScenes is the number of training scenes Data draws.
	TrainScenes = 600
	// TestScenes is the number of test scenes Data draws.
	TestScenes = 200
)

// Detector is the sliding-window detector of the example over m, a model of
// Window×Window inputs and Classes+1 classes.
func Detector(m ml.Model) *detect.Detector {
	return &detect.Detector{Model: m, Window: Window, Stride: Stride, MinScore: MinScore, NMS: NMS}
}

// Data returns TrainScenes training and TestScenes test scenes (Size×Size,
// values in [0, 1], one to three digits each): the digits are split, 30% of
// each class held out, and the test scenes are drawn from the held-out
// digits only. The same seed gives the same scenes.
func Data(seed uint64) (train, test []detect.Scene, err error) {
	digits, err := datasets.Digits()
	if err != nil {
		return nil, nil, err
	}
	trainDigits, testDigits, err := digits.Split(0.3, seed)
	if err != nil {
		return nil, nil, err
	}
	opts := detect.SceneOptions{Width: Size, Height: Size}
	if train, err = detect.Scenes(trainDigits, TrainScenes, opts, seed); err != nil {
		return nil, nil, err
	}
	if test, err = detect.Scenes(testDigits, TestScenes, opts, seed+1); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// Train trains both models, with fixed seeds, on windows cut from the
// training scenes (detect.Patches: five per object and as many of the
// background).
func Train(ctx context.Context, train []detect.Scene) (little, big *ml.Network, err error) {
	patches, err := detect.Patches(train, Window, Classes, 5, 2)
	if err != nil {
		return nil, nil, err
	}
	if little, err = ml.NewSoftmax(patches.Cols, Classes+1); err != nil {
		return nil, nil, err
	}
	if err := little.Fit(ctx, patches.X, patches.Y, ml.FitOptions{Epochs: 10, Optimizer: ml.Adam, LearningRate: 0.01, Anneal: true, Seed: 1}); err != nil {
		return nil, nil, fmt.Errorf("detection: little model: %w", err)
	}
	if big, err = ml.NewMLP(patches.Cols, []int{128}, Classes+1, 1); err != nil {
		return nil, nil, err
	}
	if err := big.Fit(ctx, patches.X, patches.Y, ml.FitOptions{Epochs: 10, Optimizer: ml.Adam, LearningRate: 0.003, Anneal: true, Seed: 1}); err != nil {
		return nil, nil, fmt.Errorf("detection: big model: %w", err)
	}
	return little, big, nil
}

// Scene is the frame a camera sent, w×h 8-bit pixels row by row, as a
// scene with no known objects. A frame of other than w·h pixels gives a
// scene that Detect refuses (detect.ErrInvalid).
func Scene(pixels []byte, w, h int) detect.Scene {
	s := detect.Scene{Width: w, Height: h, Pixels: make([]float32, len(pixels))}
	for i, b := range pixels {
		s.Pixels[i] = float32(b) / 255
	}
	return s
}

// Bytes is s as a camera sends it: 8-bit pixels, row by row.
func Bytes(s detect.Scene) []byte {
	b := make([]byte, len(s.Pixels))
	for i, v := range s.Pixels {
		b[i] = byte(min(255, max(0, v*255+0.5)))
	}
	return b
}
