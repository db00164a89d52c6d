package incremental_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// tempStore is a Badger store in the test's directory, closed after it.
func tempStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// testHost is a plugin host with the built-in WASM miners, closed after
// the test.
func testHost(t testing.TB) *plugins.Host {
	t.Helper()
	host, err := plugins.New(context.Background(), plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	return host
}

const ilJob = `apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: helmet, namespace: default}
spec:
  initialModel: {name: initial-model}
  dataset: {name: cam, trainProb: 0.8}
  trainSpec:
    template: {spec: {nodeName: cloud, containers: [{name: t, env: [{name: epochs, value: "4"}]}]}}
    trigger:
      condition: {operator: ">", threshold: 150, metric: num_of_samples}
  evalSpec:
    template: {spec: {nodeName: cloud}}
  deploySpec:
    model: {name: deploy-model, hotUpdateEnabled: true}
    trigger:
      condition: {operator: ">", threshold: 0.05, metric: accuracy_delta}
    hardExampleMining:
      name: CrossEntropy
      parameters: [{key: threshold_cross_entropy, value: "0.9"}]
    template: {spec: {nodeName: edge1}}
`

const ilDataset = `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: cam, namespace: default}
spec: {url: /data/cam.txt, format: txt, nodeName: edge1}
`

// TestACycleRunsEndToEndAcrossTheHalves runs an incremental job with both
// halves joined by an in-memory link (real Badger stores, the real WASM
// miner): a camera's drifted samples are answered by the initial model,
// the hard ones go up and wait for labels, an oracle labels them, the
// controller at the Dataset's node sees the count pass the trigger, and
// Train, Eval and Deploy run in the cloud, each once; the deployed version
// is swapped into the inference worker, which then answers better; only
// hard examples left the node.
func TestACycleRunsEndToEndAcrossTheHalves(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	t.Run("trained in the cloud", func(t *testing.T) { runCycle(t, ilJob) })
	// As Sedna's example places them: the cloud sends the node the
	// models and examples, the node's train and eval workers send back
	// the candidate and the numbers.
	t.Run("trained and evaluated on the node", func(t *testing.T) {
		runCycle(t, strings.ReplaceAll(ilJob, "nodeName: cloud", "nodeName: edge1"))
	})
}

// TestACycleRunsWithExternalStageWorkers: train and eval templates with a
// command (examples/incremental/worker, built here) run it as a process
// once per attempt, in the cloud and on the node: the cycle deploys a
// better model, and the worker's log shows the program did the stages.
func TestACycleRunsWithExternalStageWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	bin := workerBin(t)
	doc := externalJob(ilJob, bin)
	t.Run("in the cloud", func(t *testing.T) { runCycle(t, doc) })
	t.Run("on the node", func(t *testing.T) { runCycle(t, strings.ReplaceAll(doc, "nodeName: cloud", "nodeName: edge1")) })
}

// workerBin builds examples/incremental/worker where any user may run it
// (workers run as nobody when the tests run as root).
func workerBin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "il-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sedna-go/sedna/examples/incremental/worker").CombinedOutput(); err != nil {
		t.Fatalf("build the worker: %v\n%s", err, out)
	}
	return bin
}

// externalJob is doc with bin as the command of its train and eval
// templates.
func externalJob(doc, bin string) string {
	doc = strings.Replace(doc, "containers: [{name: t, env:", "containers: [{name: t, command: ["+bin+"], env:", 1)
	return strings.Replace(doc, "evalSpec:\n    template: {spec: {nodeName: cloud}}",
		"evalSpec:\n    template: {spec: {nodeName: cloud, containers: [{name: e, command: ["+bin+"]}]}}", 1)
}

// runCycle runs a cycle of the job doc; its train and eval templates may
// run a command (workers with a supervisor each where they are placed).
func runCycle(t *testing.T, ilJob string) {
	ctx := context.Background()
	train, test, err := datasets.FashionSubset()
	if err != nil {
		t.Fatal(err)
	}
	base, _ := ml.NewMLP(train.Cols, []int{64}, 10, 1)
	if err := base.Fit(ctx, train.X[:4000*train.Cols], train.Y[:4000], ml.FitOptions{Epochs: 5, Optimizer: ml.Adam, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	blob, _ := base.MarshalBinary()
	reg := paradigmtest.NewRegistry(map[string][]byte{"default/initial-model": blob})
	stream, err := test.Drifted(cameraDrift)
	if err != nil {
		t.Fatal(err)
	}

	net := paradigmtest.NewNet()
	edgeBus := net.Node("edge1")
	host := testHost(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cloudEnv := paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Models: reg, Store: tempStore(t), Log: log}
	edgeEnv := paradigm.Env{Side: paradigm.Edge, Node: "edge1", Bus: edgeBus, Models: reg, Store: tempStore(t), Log: log,
		Plugins: func() (*plugins.Host, error) { return host, nil },
		Data:    paradigm.SamplesFunc(func(string, string, uint64, func(uint64, []byte) error) error { return nil })}
	cloudHalf, err := incremental.Paradigm{}.Cloud(cloudEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cloudHalf.Close()
	edgeHalf, err := incremental.Paradigm{}.Edge(edgeEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer edgeHalf.Close()

	// The oracle: labels every waiting example with the truth of its ID.
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
		raw := fmt.Sprintf(`{"key": %q, "label": %d}`, w.Key, stream.Y[i])
		go func() { _ = net.Cloud.Publish(strings.TrimSuffix(m.Topic, "waiting")+"label", []byte(raw), false, 1) }()
		return nil
	})
	defer stopOracle()

	var mu sync.Mutex
	var conds []topics.StageCondition
	deployed := make(chan struct{})
	var once sync.Once
	stopConds, _ := edgeBus.Subscribe("sedna/v1/job/IncrementalLearningJob/default/helmet/conditions", func(m paradigm.Message) error {
		env, _ := topics.UnmarshalEnvelope(m.Payload, topics.Limits{})
		var sc topics.StageCondition
		if env != nil && env.DecodeBody(&sc) == nil {
			mu.Lock()
			conds = append(conds, sc)
			mu.Unlock()
			if sc.Stage == "Deploy" && sc.Type == "Completed" {
				once.Do(func() { close(deployed) })
			}
		}
		return nil
	})
	defer stopConds()
	results := make(chan jointinference.Result, 4096)
	stopRes, _ := edgeBus.Subscribe(incremental.ResultTopic("default", "helmet"), func(m paradigm.Message) error {
		r, _, err := jointinference.DecodeResult(m.Payload)
		if err == nil {
			results <- r
		}
		return nil
	})
	defer stopRes()

	paradigmtest.RetainSpec(t, edgeBus, api.KindDataset, ilDataset, 1)
	ref := paradigmtest.RetainSpec(t, edgeBus, api.KindIncrementalLearningJob, ilJob, 1)
	paradigmtest.RetainSpec(t, net.Cloud, api.KindIncrementalLearningJob, ilJob, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	metrics := make(chan map[string]float64, 64)
	ready := make(chan struct{})
	var readyOnce sync.Once
	spec := workers.Spec{Job: ref, Generation: 1, Document: []byte(ilJob), Worker: api.Worker{Role: "deploy", Node: "edge1"},
		ReportMessage: func(string) { readyOnce.Do(func() { close(ready) }) },
		ReportMetrics: func(m map[string]float64) {
			select {
			case metrics <- m:
			default:
			}
		}}
	workerDone := make(chan error, 1)
	go func() { workerDone <- edgeHalf.Workers["deploy"](wctx, spec, log) }()
	var fromNode atomic.Int64 // results of stages sent up by the node
	stopWork, _ := net.Cloud.Subscribe(topics.NodeJobsFilter(api.KindIncrementalLearningJob, "work"), func(paradigm.Message) error {
		fromNode.Add(1)
		return nil
	})
	defer stopWork()
	onNode := strings.Contains(ilJob, "{spec: {nodeName: edge1, containers: [{name: t")
	defer func() {
		if got := fromNode.Load(); onNode != (got > 0) {
			t.Errorf("%d parts of stage results came from the node; stages placed on it: %v", got, onNode)
		}
	}()
	res, err := api.ParseDocument([]byte(ilJob))
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, w := range res.Workers() {
		if w.Role == "deploy" {
			continue
		}
		half := cloudHalf
		if w.Node == "edge1" {
			half = edgeHalf
		} else if !w.External() {
			continue // the cloud half runs built-in stages itself
		}
		dir := t.TempDir()
		sup := workers.New(workers.Config{Node: w.Node, LogDir: dir, Log: log, Builtins: map[string]workers.Builtin{
			workers.BuiltinKey(ref.Kind, w.Role): half.Workers[w.Role], workers.DriverKey(ref.Kind, w.Role): half.Drivers[w.Role]}})
		defer sup.Close()
		sup.Ensure(workers.Spec{Job: ref, Generation: 1, Document: []byte(ilJob), Worker: w})
		if w.External() {
			logs = append(logs, filepath.Join(dir, workers.LogName(ref, w.Role)))
		}
	}
	defer func() {
		for _, f := range logs {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Error(err)
			} else if !strings.Contains(string(raw), "fine-tuning on") && !strings.Contains(string(raw), "scores map[") {
				t.Errorf("%s: the external worker did not say what it did:\n%s", f, raw)
			}
		}
	}()
	select {
	case <-ready: // subscribed to its input
	case err := <-workerDone:
		t.Fatalf("the inference worker stopped: %v", err)
	}

	// The camera: half the drifted stream, answered by the initial model.
	send := func(lo, hi int) (correct int) {
		for i := lo; i < hi; i++ {
			raw, _ := jointinference.EncodeRequest(jointinference.Request{ID: fmt.Sprintf("s%d", i), Shape: []int{14, 14}, Data: u8(stream.Row(i))}, "", "")
			if err := edgeBus.Publish(incremental.InputTopic("default", "helmet"), raw, false, 0); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-results:
				if r.Error != "" {
					t.Fatalf("sample %d: %s", i, r.Error)
				}
				if r.Class == stream.Y[i] {
					correct++
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("sample %d: no answer", i)
			}
		}
		return correct
	}
	before := send(0, 1000)
	select {
	case <-deployed:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		t.Fatalf("no deploy in 2 minutes; conditions: %+v", conds)
	}
	// The worker swaps the new version in within a poll.
	for v, _, _ := reg.Latest("default", "deploy-model", 0); ; {
		m := <-metrics
		if uint64(m["modelVersion"]) == v && v > 0 {
			break
		}
	}
	after := send(1000, 2000)
	t.Logf("drifted camera: %d of 1000 right before the cycle, %d of 1000 after", before, after)
	if after <= before {
		t.Errorf("the deployed model is not better: %d then %d of 1000", before, after)
	}
	mu.Lock()
	starts := map[string]int{}
	for _, c := range conds {
		if c.Type == "Starting" && c.Cycle == 1 {
			starts[c.Stage]++
		}
	}
	mu.Unlock()
	for _, s := range []string{"Train", "Eval", "Deploy"} {
		if starts[s] != 1 {
			t.Errorf("stage %s of cycle 1 started %d times, want once", s, starts[s])
		}
	}
	m := <-metrics
	if m["bytesUp"] <= 0 || m["bytesUp"] >= m["bytesSeen"] || m["hardExamples"] >= m["samples"] {
		t.Errorf("bytes up %v of %v seen, %v hard of %v samples: only hard examples should leave the node",
			m["bytesUp"], m["bytesSeen"], m["hardExamples"], m["samples"])
	}
	t.Logf("%v samples, %v hard; %v bytes seen, %v bytes sent up", m["samples"], m["hardExamples"], m["bytesSeen"], m["bytesUp"])
	cancel()
	if err := <-workerDone; err != nil {
		t.Fatal(err)
	}
}
