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
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/detect"
)

// YAML is the example's resources (detection.yaml): the two Models and the
// JointInferenceService, its edge worker on node edge1.
//
//go:embed detection.yaml
var YAML string

// YAMLFor is YAML with the edge worker on node instead of edge1.
func YAMLFor(node string) string {
	return strings.Replace(YAML, "nodeName: edge1", "nodeName: "+node, 1)
}

// Model names the example registers, and the parameters of its IBT
// hard-example miner, named as in Sedna.
const (
	// LittleModel is the edge detector: softmax regression on 8×8 windows.
	LittleModel = "digits-little-detector"
	// BigModel is the cloud detector: an MLP with 128 hidden units on the
	// same windows.
	BigModel = "digits-big-detector"
	// ThresholdImg is the example's IBT threshold_img: a frame is hard when
	// at least a share 1 - ThresholdImg of its edge boxes score at most
	// ThresholdBox; with 0.9, as in Sedna's example, one such box in ten
	// is enough.
	ThresholdImg = "0.9"
	// ThresholdBox is the example's IBT threshold_box. Sedna's example uses
	// 0.9, but a softmax regression is seldom that sure of a window (about
	// nine boxes in ten of the little detector score at most 0.9), so 0.9
	// would send about 87% of the frames to the cloud; 0.6 sends about 38%
	// and lifts the mAP@0.5 from 0.42 (edge only) to 0.69 (cloud only:
	// 0.95).
	ThresholdBox = "0.6"
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
// training scenes: detect.Patches (five per object and as many of the
// background), then, as sliding-window detectors are usually trained, one
// round of hard-negative mining: each model is run as a detector over the
// training scenes, and every box it finds that overlaps no object by IoU
// 0.5 or more (a false positive at mAP@0.5: mostly windows half on a digit)
// is added as background before the model is trained again.
func Train(ctx context.Context, train []detect.Scene) (little, big *ml.Network, err error) {
	patches, err := detect.Patches(train, Window, Classes, 5, 2)
	if err != nil {
		return nil, nil, err
	}
	if little, err = ml.NewSoftmax(patches.Cols, Classes+1); err != nil {
		return nil, nil, err
	}
	opts := ml.FitOptions{Epochs: 10, Optimizer: ml.Adam, LearningRate: 0.01, Anneal: true, Seed: 1}
	if err := fit(ctx, little, train, patches, opts); err != nil {
		return nil, nil, fmt.Errorf("detection: little model: %w", err)
	}
	if big, err = ml.NewMLP(patches.Cols, []int{128}, Classes+1, 1); err != nil {
		return nil, nil, err
	}
	opts.LearningRate = 0.003
	if err := fit(ctx, big, train, patches, opts); err != nil {
		return nil, nil, fmt.Errorf("detection: big model: %w", err)
	}
	return little, big, nil
}

// fit trains m on patches, adds the false positives of its detector on
// scenes as background windows, and trains it again on both.
func fit(ctx context.Context, m *ml.Network, scenes []detect.Scene, patches *datasets.Dataset, opts ml.FitOptions) error {
	if err := m.Fit(ctx, patches.X, patches.Y, opts); err != nil {
		return err
	}
	found, err := Detector(m).DetectAll(scenes)
	if err != nil {
		return err
	}
	x := slices.Clone(patches.X)
	y := slices.Clone(patches.Y)
	for i, boxes := range found {
		s := &scenes[i]
		for _, b := range boxes {
			if slices.ContainsFunc(s.Objects, func(o detect.Box) bool { return detect.IoU(o, b) >= 0.5 }) {
				continue
			}
			x0, y0 := int(b.XMin), int(b.YMin)
			for r := range Window {
				x = append(x, s.Pixels[(y0+r)*s.Width+x0:(y0+r)*s.Width+x0+Window]...)
			}
			y = append(y, Classes)
		}
	}
	return m.Fit(ctx, x, y, opts)
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
