package lifelong_test

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
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

func tempStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

const llJob = `apiVersion: sedna.io/v1alpha1
kind: LifelongLearningJob
metadata: {name: comfort, namespace: default}
spec:
  dataset: {name: surveys, trainProb: 0.8}
  trainSpec:
    template: {spec: {nodeName: edge1, containers: [{name: t, env: [{name: epochs, value: "20"}]}]}}
    trigger:
      condition: {operator: ">", threshold: 500, metric: num_of_samples}
  evalSpec:
    template: {spec: {nodeName: edge1}}
  deploySpec:
    template: {spec: {nodeName: edge1}}
`

const llDataset = `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: surveys, namespace: default}
spec: {url: /data/surveys.csv, format: csv, nodeName: edge1}
`

// A lifelong job runs on both halves joined by an in-memory link (real
// Badger stores): the controller at the Dataset's node sees its samples
// (tasks A, B and C) pass the trigger, the node trains and evaluates the
// knowledge base and the cloud registers it as JOB-kb; the inference
// worker answers D's samples (a task it has not seen) with the nearest
// task, flags and keeps them; they go up and wait for labels, an oracle
// labels them, the next cycle trains D's model on the node (its deploy
// gives the status's knowledge base, in Sedna's shape); the new
// knowledge base is swapped in and answers D's samples as seen, at least
// 5 points better;
// `sedna kb`'s operation describes it with four tasks.
func TestALifelongCycleRunsAcrossTheHalves(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var lines []string
	for i, name := range seenTasks {
		for _, s := range comfortSamples(t, name, 600, uint64(400+i)) {
			lines = append(lines, lifelong.FormatSample(s))
		}
	}
	unseen := comfortSamples(t, taskD, 1500, 500)
	reg := paradigmtest.NewRegistry(nil)
	net := paradigmtest.NewNet()
	edgeBus := net.Node("edge1")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cloudEnv := paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Models: reg, Store: tempStore(t), Log: log,
		Data: paradigm.SamplesFunc(func(string, string, uint64, func(uint64, []byte) error) error { return paradigm.ErrNotHere })}
	edgeEnv := paradigm.Env{Side: paradigm.Edge, Node: "edge1", Bus: edgeBus, Models: reg, Store: tempStore(t), Log: log,
		Data: paradigm.SamplesFunc(func(ns, name string, after uint64, fn func(uint64, []byte) error) error {
			if ns != "default" || name != "surveys" {
				return fmt.Errorf("dataset %s/%s", ns, name)
			}
			for i := after; i < uint64(len(lines)); i++ {
				if err := fn(i+1, []byte(lines[i])); err != nil {
					return err
				}
			}
			return nil
		})}
	cloudHalf, err := lifelong.Paradigm{}.Cloud(cloudEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cloudHalf.Close()
	edgeHalf, err := lifelong.Paradigm{}.Edge(edgeEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer edgeHalf.Close()

	// The oracle labels every waiting example with the truth of its ID.
	labels := incremental.Labeller(func(id string) (int, bool) {
		var i int
		if _, err := fmt.Sscanf(id, "d%d", &i); err != nil || i < 0 || i >= len(unseen) {
			return 0, false
		}
		return unseen[i].Y, true
	})
	stopOracle, _ := net.Cloud.Subscribe("sedna/v1/job/LifelongLearningJob/+/+/waiting", func(m paradigm.Message) error {
		if raw, ok := labels(m.Payload); ok {
			go func() { _ = net.Cloud.Publish(strings.TrimSuffix(m.Topic, "waiting")+"label", raw, false, 1) }()
		}
		return nil
	})
	defer stopOracle()
	deploys := make(chan topics.StageCondition, 8)
	stopConds, _ := edgeBus.Subscribe("sedna/v1/job/LifelongLearningJob/default/comfort/conditions", func(m paradigm.Message) error {
		env, _ := topics.UnmarshalEnvelope(m.Payload, topics.Limits{})
		var sc topics.StageCondition
		if env != nil && env.DecodeBody(&sc) == nil && sc.Stage == "Deploy" && sc.Type == "Completed" {
			deploys <- sc
		}
		return nil
	})
	defer stopConds()
	results := make(chan jointinference.Result, 4096)
	stopRes, _ := edgeBus.Subscribe(lifelong.ResultTopic("default", "comfort"), func(m paradigm.Message) error {
		if r, _, err := jointinference.DecodeResult(m.Payload); err == nil {
			results <- r
		}
		return nil
	})
	defer stopRes()

	paradigmtest.RetainSpec(t, edgeBus, api.KindDataset, llDataset, 1)
	ref := paradigmtest.RetainSpec(t, edgeBus, api.KindLifelongLearningJob, llJob, 1)
	paradigmtest.RetainSpec(t, net.Cloud, api.KindLifelongLearningJob, llJob, 1)
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopWorkers(); wg.Wait() }()
	ready := make(chan struct{}) // the inference worker's: it says "" once it serves
	var readyOnce sync.Once
	for _, role := range []string{"train", "eval", "deploy"} {
		spec := workers.Spec{Job: ref, Generation: 1, Document: []byte(llJob), Worker: api.Worker{Role: role, Node: "edge1"},
			ReportMessage: func(msg string) {
				if role == "deploy" && msg == "" {
					readyOnce.Do(func() { close(ready) })
				}
			}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := edgeHalf.Workers[role](wctx, spec, log); err != nil {
				t.Errorf("the %s worker: %v", role, err)
			}
		}()
	}
	wait := func(cycle int) topics.StageCondition {
		t.Helper()
		for {
			select {
			case c := <-deploys:
				if c.Cycle == int64(cycle) {
					return c
				}
			case <-ctx.Done():
				t.Fatalf("cycle %d deployed nothing", cycle)
			}
		}
	}
	wait(1)
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("the inference worker never served")
	}
	describe := func() lifelong.Summary {
		t.Helper()
		raw, err := cloudHalf.Ops[lifelong.OpKB](ctx, ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		var s lifelong.Summary
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := describe(); len(s.Tasks) != 3 || s.Version != 1 {
		t.Fatalf("after cycle 1: version %d with %d tasks, want 1 with 3", s.Version, len(s.Tasks))
	}

	// D's samples, one sensor's stream: answered, flagged, kept.
	send := func(lo, hi int) (right, flagged int) {
		t.Helper()
		for i := lo; i < hi; i++ {
			req := jointinference.Request{ID: fmt.Sprintf("d%d", i), Values: unseen[i].X, Attr: taskD, Stream: "sensor-d", Shape: []int{len(unseen[i].X)},
				DType: jointinference.DTypeF32}
			raw, err := jointinference.EncodeRequest(req, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if err := edgeBus.Publish(lifelong.InputTopic("default", "comfort"), raw, false, 1); err != nil {
				t.Fatal(err)
			}
		}
		for range hi - lo {
			select {
			case r := <-results:
				if r.Error != "" {
					t.Fatalf("sample %s: %s", r.ID, r.Error)
				}
				var i int
				fmt.Sscanf(r.ID, "d%d", &i)
				if r.Class == unseen[i].Y {
					right++
				}
				if r.Unseen {
					flagged++
				}
			case <-ctx.Done():
				t.Fatal("answers missing")
			}
		}
		return right, flagged
	}
	right1, flagged1 := send(0, 1000)
	deployed := wait(2)
	// The deploy's output carries the status's knowledge base, Sedna's
	// shape: four task models, the labelled unseen samples.
	var out struct {
		Status struct {
			KnowledgeBase api.KnowledgeBase `json:"knowledgeBase"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(deployed.Data), &out); err != nil {
		t.Fatal(err)
	}
	kbStatus := out.Status.KnowledgeBase
	if kbStatus.AIModels.NumberOfAIModels != 4 || len(kbStatus.AIModels.ListOfAIModels) != 4 || kbStatus.Samples.NumberOfLabeledUnseenSample <= 500 ||
		kbStatus.AIClasses.NumberOfAIClasses != 3 {
		t.Fatalf("the status's knowledge base after cycle 2: %s", deployed.Data)
	}
	s := describe()
	if len(s.Tasks) != 4 || s.Version != 2 {
		t.Fatalf("after cycle 2: version %d with %d tasks, want 2 with 4", s.Version, len(s.Tasks))
	}
	// The swap is hot; the worker polls the node's models every second.
	var right2, flagged2 int
	for deadline := time.Now().Add(time.Minute); ; {
		right2, flagged2 = send(1000, 1500)
		if flagged2 == 0 || time.Now().After(deadline) {
			break
		}
	}
	before, after := float64(right1)/1000, float64(right2)/500
	t.Logf("D's first 1,000 samples: %.3f right, %d flagged unseen; the next 500 (a knowledge base of %d tasks): %.3f right, %d flagged",
		before, flagged1, len(s.Tasks), after, flagged2)
	if flagged1 != 1000 || flagged2 != 0 {
		t.Errorf("flagged %d of D's first 1,000 samples and %d of the next 500: want all, then none", flagged1, flagged2)
	}
	if after < before+0.05 {
		t.Errorf("D: %.3f right after it was learnt, %.3f before", after, before)
	}
}
