package incremental

import (
	"context"
	"fmt"
	"strings"

	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
)

// The detection stand-in, as in joint inference: the model is a window
// classifier (its last class the background) that a detector slides over
// a scene; a sample is a scene ([height, width]); a label is the scene's
// boxes; training cuts patches out of the labelled scenes (each object's
// window and background windows) and fine-tunes the classifier on them;
// evaluation is the mean average precision at IoU 0.5 ("map", with "ap" per
// class), so a deploy trigger reads map_delta.

// Task parameters in the deploy template's env (SEDNA_IL_TASK=detection,
// SEDNA_IL_WINDOW, SEDNA_IL_STRIDE, SEDNA_IL_MIN_SCORE, SEDNA_IL_NMS), as
// joint inference's SEDNA_JI_* ones.
const taskParamPrefix = "SEDNA_IL_"

// taskOf reads the job's task from its deploy template's env.
func taskOf(params map[string]string) (jointinference.Task, error) {
	p := map[string]string{}
	for k, v := range params {
		if rest, ok := strings.CutPrefix(k, taskParamPrefix); ok {
			p["SEDNA_JI_"+rest] = v
		}
	}
	t, err := jointinference.TaskOf(p)
	if err != nil {
		return t, fmt.Errorf("incremental: %s", strings.ReplaceAll(strings.TrimPrefix(err.Error(), "jointinference: "), "SEDNA_JI_", taskParamPrefix))
	}
	return t, nil
}

// scene is a detection example as a scene with its labelled objects.
func scene(e Example) (detect.Scene, error) {
	v, err := e.Values()
	if err != nil {
		return detect.Scene{}, fmt.Errorf("incremental: example %s: %w", e.Key, err)
	}
	if len(e.Shape) != 2 || e.Shape[0]*e.Shape[1] != len(v) {
		return detect.Scene{}, fmt.Errorf("incremental: example %s: a scene of shape [height, width], got %v", e.Key, e.Shape)
	}
	s := detect.Scene{Height: e.Shape[0], Width: e.Shape[1], Pixels: v}
	for _, b := range e.Boxes {
		box := detect.FromArray(b)
		box.Score = 1
		s.Objects = append(s.Objects, box)
	}
	return s, nil
}

func scenes(examples []Example) ([]detect.Scene, error) {
	out := make([]detect.Scene, 0, len(examples))
	for _, e := range examples {
		s, err := scene(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// fineTuneDetector fine-tunes base, a window classifier, on the patches
// of the labelled scenes, the earlier ones replayed as FineTune does.
func fineTuneDetector(ctx context.Context, t jointinference.Task, base *ml.Network, set TrainSet, fit Fit) (*ml.Network, error) {
	patches := func(es []Example, seed uint64) ([]float32, []int, error) {
		if len(es) == 0 {
			return nil, nil, nil
		}
		ss, err := scenes(es)
		if err != nil {
			return nil, nil, err
		}
		d, err := detect.Patches(ss, t.Window, base.Classes()-1, 3, seed)
		if err != nil {
			return nil, nil, fmt.Errorf("incremental: %w", err)
		}
		return d.X, d.Y, nil
	}
	nx, ny, err := patches(set.New, fit.Seed)
	if err != nil {
		return nil, err
	}
	ox, oy, err := patches(set.Old, fit.Seed+1)
	if err != nil {
		return nil, err
	}
	return fineTuneRows(ctx, base, nx, ny, ox, oy, fit)
}

// evaluateDetector scores base, a window classifier, as a detector on the
// labelled scenes: mAP at IoU 0.5 and the AP of each class with objects.
func evaluateDetector(t jointinference.Task, m ml.Predictor, examples []Example) (Metrics, error) {
	if len(examples) == 0 {
		return nil, fmt.Errorf("incremental: the eval set is empty")
	}
	ss, err := scenes(examples)
	if err != nil {
		return nil, err
	}
	pred, err := t.Detector(m).DetectAll(ss)
	if err != nil {
		return nil, fmt.Errorf("incremental: %w", err)
	}
	truth := make([][]detect.Box, len(ss))
	for i, s := range ss {
		truth[i] = s.Objects
	}
	mAP, per, err := detect.MeanAveragePrecision(pred, truth, m.Classes()-1, 0.5)
	if err != nil {
		return nil, fmt.Errorf("incremental: %w", err)
	}
	for i, v := range per {
		if v != v { // NaN: no object of the class in the set
			per[i] = 0
		}
	}
	return Metrics{"map": {mAP}, "ap": per}, nil
}

// Learn fine-tunes base for the task: FineTune for classification, on
// patches of the labelled scenes for detection.
func Learn(ctx context.Context, t jointinference.Task, base *ml.Network, set TrainSet, fit Fit) (*ml.Network, error) {
	if t.Detection {
		return fineTuneDetector(ctx, t, base, set, fit)
	}
	return FineTune(ctx, base, set, fit)
}

// Score evaluates m for the task: Evaluate for classification, mAP@0.5
// ("map", and "ap" per class, 0 for a class without objects) for
// detection.
func Score(t jointinference.Task, m ml.Predictor, examples []Example) (Metrics, error) {
	if t.Detection {
		return evaluateDetector(t, m, examples)
	}
	return Evaluate(m, examples)
}
