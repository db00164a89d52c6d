package incremental_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
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
	reg := paradigmtest.NewRegistry(map[string][]byte{"default/initial-model": blob})
	host := testHost(t)
	st := tempStore(t)
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

// A detection job's cycle across both halves (in-memory link, Badger
// stores, the WASM IBT miner), its training and evaluation placed on the
// node: the noisy camera's scenes are answered with boxes, the ones IBT
// finds hard go up, an oracle labels them with their true boxes, the node
// fine-tunes the detector on them, and the deployed detector, swapped in,
// finds the digits of other noisy scenes better (mAP@0.5 from its
// answers).
func TestADetectionCycleRunsAcrossTheHalves(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a detector")
	}
	ctx := context.Background()
	clean, noisy, noisyTest := detectionScenes(t)
	more, err := func() ([]detect.Scene, error) { // the camera's stream: 900 noisy scenes
		digits, err := datasets.Digits()
		if err != nil {
			return nil, err
		}
		_, b, err := digits.Split(0.5, 1)
		if err != nil {
			return nil, err
		}
		return detect.Scenes(b, 600, detect.SceneOptions{Width: detection.Size, Height: detection.Size, Noise: 0.3}, 4)
	}()
	if err != nil {
		t.Fatal(err)
	}
	stream := append(append([]detect.Scene(nil), noisy...), more...)
	base := initialDetector(t, clean)
	blob, _ := base.MarshalBinary()
	reg := paradigmtest.NewRegistry(map[string][]byte{"default/initial-model": blob})
	host := testHost(t)
	net := paradigmtest.NewNet()
	edgeBus := net.Node("edge1")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cloudHalf, err := incremental.Paradigm{}.Cloud(paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Models: reg, Store: tempStore(t), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cloudHalf.Close()
	edgeHalf, err := incremental.Paradigm{}.Edge(paradigm.Env{Side: paradigm.Edge, Node: "edge1", Bus: edgeBus, Models: reg, Store: tempStore(t), Log: log,
		Plugins: func() (*plugins.Host, error) { return host, nil },
		Data:    paradigm.SamplesFunc(func(string, string, uint64, func(uint64, []byte) error) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer edgeHalf.Close()
	// The oracle labels each waiting scene with its true boxes.
	stopOracle, _ := net.Cloud.Subscribe("sedna/v1/job/IncrementalLearningJob/+/+/waiting", func(m paradigm.Message) error {
		env, err := topics.UnmarshalEnvelope(m.Payload, topics.Limits{})
		if err != nil {
			return err
		}
		var w incremental.WaitingExample
		if err := env.DecodeBody(&w); err != nil {
			return err
		}
		var i int
		fmt.Sscanf(w.ID, "s%d", &i)
		l := incremental.Label{Key: w.Key, Boxes: [][6]float32{}}
		for _, b := range stream[i].Objects {
			l.Boxes = append(l.Boxes, b.Array())
		}
		raw, _ := json.Marshal(l)
		go func() { _ = net.Cloud.Publish(strings.TrimSuffix(m.Topic, "waiting")+"label", raw, false, 1) }()
		return nil
	})
	defer stopOracle()
	deployed := make(chan struct{})
	var once sync.Once
	stopConds, _ := edgeBus.Subscribe("sedna/v1/job/IncrementalLearningJob/default/helmet/conditions", func(m paradigm.Message) error {
		env, _ := topics.UnmarshalEnvelope(m.Payload, topics.Limits{})
		var sc topics.StageCondition
		if env != nil && env.DecodeBody(&sc) == nil && sc.Stage == "Deploy" && sc.Type == "Completed" {
			once.Do(func() { close(deployed) })
		}
		return nil
	})
	defer stopConds()
	doc := strings.ReplaceAll(detectionJob, "nodeName: cloud", "nodeName: edge1")
	doc = strings.Replace(doc, "threshold: 150, metric: num_of_samples", "threshold: 100, metric: num_of_samples", 1)
	doc = strings.Replace(doc, "threshold: 0.05, metric: map_delta", "threshold: -1, metric: map_delta", 1)
	doc = strings.Replace(doc, "template: {spec: {nodeName: edge1}}\n    trigger:", "template: {spec: {nodeName: edge1, containers: [{name: t, env: [{name: epochs, value: \"20\"}]}]}}\n    trigger:", 1)
	paradigmtest.RetainSpec(t, edgeBus, api.KindDataset, ilDataset, 1)
	ref := paradigmtest.RetainSpec(t, edgeBus, api.KindIncrementalLearningJob, doc, 1)
	paradigmtest.RetainSpec(t, net.Cloud, api.KindIncrementalLearningJob, doc, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updated := make(chan struct{}, 1)
	ready := make(chan struct{})
	var readyOnce sync.Once
	var wg sync.WaitGroup
	for _, role := range []string{"deploy", "train", "eval"} {
		spec := workers.Spec{Job: ref, Generation: 1, Document: []byte(doc), Worker: api.Worker{Role: role, Node: "edge1"}}
		if role == "deploy" {
			spec.ReportMessage = func(m string) {
				if m == "" {
					readyOnce.Do(func() { close(ready) })
				}
			}
			spec.ReportMetrics = func(m map[string]float64) {
				if m["hotUpdates"] >= 1 {
					select {
					case updated <- struct{}{}:
					default:
					}
				}
			}
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = edgeHalf.Workers[role](wctx, spec, log) }()
	}
	defer wg.Wait()
	defer cancel()
	<-ready
	answers := make(chan jointinference.Result, 64)
	stopRes, _ := edgeBus.Subscribe(incremental.ResultTopic("default", "helmet"), func(m paradigm.Message) error {
		if r, _, err := jointinference.DecodeResult(m.Payload); err == nil {
			answers <- r
		}
		return nil
	})
	defer stopRes()
	detectAll := func(ss []detect.Scene, prefix string) (mAP float64, hard int) {
		pred := make([][]detect.Box, len(ss))
		truth := make([][]detect.Box, len(ss))
		for i, s := range ss {
			raw, _ := jointinference.EncodeRequest(jointinference.Request{ID: fmt.Sprint(prefix, i), Shape: []int{s.Height, s.Width}, Values: s.Pixels}, "", "")
			if err := edgeBus.Publish(incremental.InputTopic("default", "helmet"), raw, false, 0); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-answers:
				if r.Error != "" {
					t.Fatalf("scene %d: %s", i, r.Error)
				}
				for _, b := range r.Boxes {
					pred[i] = append(pred[i], detect.FromArray(b))
				}
				if r.Hard {
					hard++
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("scene %d: no answer", i)
			}
			truth[i] = s.Objects
		}
		m, _, err := detect.MeanAveragePrecision(pred, truth, detection.Classes, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		return m, hard
	}
	before, _ := detectAll(noisyTest, "t")
	_, hard := detectAll(stream, "s")
	select {
	case <-deployed:
	case <-time.After(2 * time.Minute):
		t.Fatal("no deploy in 2 minutes")
	}
	select {
	case <-updated:
	case <-time.After(time.Minute):
		t.Fatal("the deployed detector not swapped in within a minute")
	}
	after, _ := detectAll(noisyTest, "u")
	t.Logf("%d of %d camera scenes hard by IBT; mAP@0.5 on other noisy scenes from the worker's answers: %.3f before the cycle, %.3f after",
		hard, len(stream), before, after)
	if after <= before+0.05 {
		t.Errorf("mAP %.3f then %.3f: the deployed detector is not better", before, after)
	}
}
