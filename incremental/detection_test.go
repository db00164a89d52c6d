package incremental_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/jointinference/detection"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/detect"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// detectionScenes are the detection stand-in's scenes: clean ones to
// train the initial detector on, and a camera's noisier ones (a drift),
// from digits the clean ones do not hold.
func detectionScenes(t *testing.T) (clean, noisy, noisyTest []detect.Scene) {
	t.Helper()
	digits, err := datasets.Digits()
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := digits.Split(0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	opts := detect.SceneOptions{Width: detection.Size, Height: detection.Size}
	if clean, err = detect.Scenes(a, 400, opts, 1); err != nil {
		t.Fatal(err)
	}
	opts.Noise = 0.3
	if noisy, err = detect.Scenes(b, 300, opts, 2); err != nil {
		t.Fatal(err)
	}
	if noisyTest, err = detect.Scenes(b, 150, opts, 3); err != nil {
		t.Fatal(err)
	}
	return clean, noisy, noisyTest
}

// sceneExample is a labelled scene as the cloud keeps it: the device's
// pixels and the truth's boxes.
func sceneExample(s detect.Scene, i int) incremental.Example {
	req := jointinference.Request{Shape: []int{s.Height, s.Width}, Values: s.Pixels}
	dtype, data := req.Packed()
	e := incremental.Example{Key: fmt.Sprint("edge1/", i), Shape: []int{s.Height, s.Width}, DType: dtype, Data: data, Seq: uint64(i + 1)}
	for _, b := range s.Objects {
		e.Boxes = append(e.Boxes, b.Array())
	}
	return e
}

// initialDetector is a window classifier trained on clean scenes only.
func initialDetector(t *testing.T, clean []detect.Scene) *ml.Network {
	t.Helper()
	p, err := detect.Patches(clean, detection.Window, detection.Classes, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ml.NewMLP(p.Cols, []int{64}, detection.Classes+1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Fit(context.Background(), p.X, p.Y, ml.FitOptions{Epochs: 10, Optimizer: ml.Adam, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	return m
}

const detectionJob = `apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: helmet, namespace: default}
spec:
  initialModel: {name: initial-model}
  dataset: {name: cam, trainProb: 0.8}
  trainSpec:
    template: {spec: {nodeName: cloud}}
    trigger:
      condition: {operator: ">", threshold: 150, metric: num_of_samples}
  evalSpec:
    template: {spec: {nodeName: cloud}}
  deploySpec:
    model: {name: deploy-model, hotUpdateEnabled: true}
    trigger:
      condition: {operator: ">", threshold: 0.05, metric: map_delta}
    hardExampleMining:
      name: IBT
      parameters: [{key: threshold_img, value: "0.9"}, {key: threshold_box, value: "0.6"}]
    template:
      spec:
        nodeName: edge1
        containers: [{name: infer, env: [{name: SEDNA_IL_TASK, value: detection}]}]
`

// The detection stand-in learns as classification does: a window
// classifier trained on clean scenes finds the digits of a noisier
// camera's scenes worse; fine-tuned on 300 labelled noisy scenes (their
// boxes), its mAP@0.5 on other noisy scenes rises by more than 10 points,
// with an AP for each class.
func TestDetectionLearnsFromLabelledScenes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a detector")
	}
	clean, noisy, noisyTest := detectionScenes(t)
	base := initialDetector(t, clean)
	var set incremental.TrainSet
	for i, s := range noisy {
		set.New = append(set.New, sceneExample(s, i))
	}
	var eval []incremental.Example
	for i, s := range noisyTest {
		eval = append(eval, sceneExample(s, 1000+i))
	}
	task, err := jointinference.TaskOf(map[string]string{jointinference.ParamTask: jointinference.TaskDetection})
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := incremental.Learn(context.Background(), task, base, set, incremental.Fit{Epochs: 20, BatchSize: 32, LearningRate: 0.001, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	before, err := incremental.Score(task, base, eval)
	if err != nil {
		t.Fatal(err)
	}
	after, err := incremental.Score(task, tuned, eval)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mAP@0.5 on noisy scenes: %.3f before, %.3f after fine-tuning on 300 labelled ones", before["map"][0], after["map"][0])
	if after["map"][0] < before["map"][0]+0.10 || len(after["ap"]) != detection.Classes {
		t.Fatalf("mAP %.3f then %.3f (ap %v): want at least 10 points better", before["map"][0], after["map"][0], after["ap"])
	}
}

// The inference worker of a detection job answers a scene with boxes and
// judges them with IBT: every scene answered without an error, with boxes,
// and the ones IBT finds hard kept (counted as hard examples).
func TestDetectionInferenceMinesWithIBT(t *testing.T) {
	ctx := context.Background()
	clean, noisy, _ := detectionScenes(t)
	base := initialDetector(t, clean)
	blob, _ := base.MarshalBinary()
	reg := &registry{versions: map[string][][]byte{"default/initial-model": {blob}}}
	host, err := plugins.New(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = host.Close(ctx) }()
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	net := paradigmtest.NewNet()
	bus := net.Node("edge1")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	half, err := incremental.Paradigm{}.Edge(paradigm.Env{Side: paradigm.Edge, Node: "edge1", Bus: bus, Models: reg, Store: st, Log: log,
		Plugins: func() (*plugins.Host, error) { return host, nil },
		Data:    paradigm.SamplesFunc(func(string, string, uint64, func(uint64, []byte) error) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	ref := topics.JobRef{Kind: api.KindIncrementalLearningJob, Namespace: "default", Name: "helmet"}
	ready := make(chan struct{})
	metrics := make(chan map[string]float64, 16)
	var once sync.Once
	spec := workers.Spec{Job: ref, Generation: 1, Document: []byte(detectionJob), Worker: api.Worker{Role: "deploy", Node: "edge1"},
		ReportMessage: func(m string) {
			if m == "" {
				once.Do(func() { close(ready) })
			}
		},
		ReportMetrics: func(m map[string]float64) {
			select {
			case metrics <- m:
			default:
			}
		}}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- half.Workers["deploy"](wctx, spec, log) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the worker stopped: %v", err)
	}
	answers := make(chan jointinference.Result, 64)
	stop, _ := bus.Subscribe("cam/answers", func(m paradigm.Message) error {
		if r, _, err := jointinference.DecodeResult(m.Payload); err == nil {
			answers <- r
		}
		return nil
	})
	defer func() { _ = stop() }()
	hard, withBoxes := 0, 0
	const n = 40
	for i := range n {
		s := noisy[i]
		req := jointinference.Request{ID: fmt.Sprint(i), Shape: []int{s.Height, s.Width}, Values: s.Pixels}
		raw, _ := jointinference.EncodeRequest(req, "cam/answers", "")
		if err := bus.Publish(incremental.InputTopic("default", "helmet"), raw, false, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-answers:
			if r.Error != "" {
				t.Fatalf("scene %d: %s", i, r.Error)
			}
			if len(r.Boxes) > 0 {
				withBoxes++
			}
			if r.Hard {
				hard++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("scene %d: no answer", i)
		}
	}
	t.Logf("%d scenes: %d with boxes, %d hard by IBT", n, withBoxes, hard)
	if withBoxes == 0 || hard == 0 || hard == n {
		t.Fatalf("%d scenes: %d with boxes, %d hard: want boxes, and IBT to tell hard scenes from others", n, withBoxes, hard)
	}
	cancel()
	if err := <-done; err != nil { // its last numbers reported as it stops
		t.Fatal(err)
	}
	var last map[string]float64
	for len(metrics) > 0 {
		last = <-metrics
	}
	if last["samples"] != n || last["hardExamples"] != float64(hard) {
		t.Fatalf("the worker's numbers %v: want %d samples, %d hard examples kept", last, n, hard)
	}
}
