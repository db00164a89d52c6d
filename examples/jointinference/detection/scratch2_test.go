package detection

import (
	"context"
	"testing"
	"time"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
)

func TestScratch2(t *testing.T) {
	ctx := context.Background()
	train, test, _ := Data(1)
	truth := make([][]detect.Box, len(test))
	objs := 0
	for i, s := range test {
		truth[i] = s.Objects
		objs += len(s.Objects)
	}
	for _, per := range []int{5, 10} {
		patches, _ := detect.Patches(train, Window, Classes, per, 2)
		for _, o := range []ml.FitOptions{
			{Epochs: 10, Optimizer: ml.Adam, LearningRate: 0.01, Anneal: true, Seed: 1},
			{Epochs: 30, Optimizer: ml.Adam, LearningRate: 0.01, Anneal: true, Seed: 1},
			{Epochs: 30, Optimizer: ml.Adam, LearningRate: 0.03, Anneal: true, Seed: 1},
			{Epochs: 30, Optimizer: ml.SGD, LearningRate: 0.1, Momentum: 0.9, Anneal: true, Seed: 1},
		} {
			t0 := time.Now()
			little, _ := ml.NewSoftmax(64, 11)
			little.Fit(ctx, patches.X, patches.Y, o)
			d := time.Since(t0)
			ev, _ := ml.Evaluate(little, patches.X, patches.Y)
			for _, ms := range []float32{0.5, 0.7, 0.9} {
				det := Detector(little)
				det.MinScore = ms
				le, _ := det.DetectAll(test)
				n := 0
				for _, b := range le {
					n += len(b)
				}
				em, per2, _ := detect.MeanAveragePrecision(le, truth, 10, 0.5)
				t.Logf("per %d %+v min %.1f: %v acc %.3f edge %.3f boxes %d/%d %.2f", per, o.Epochs, ms, d, ev.Accuracy, em, n, objs, per2)
			}
		}
	}
}
