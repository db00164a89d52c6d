//go:build onnx && cgo

package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/ml/onnx"
	"github.com/sedna-go/sedna/ml/onnx/onnxtest"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Issue 20: an IncrementalLearningJob whose initial Model is the PyTorch
// CNN in ONNX (declared with its preprocessing): the built-in inference
// worker on edge1 answers the camera's frames with it, each with the class
// the CNN gives the frame when loaded here; and when the job's trigger
// fires, the built-in training refuses the ONNX model in one line in the
// Train stage's condition (it trains the learning substrate's models
// only), saying to give the train template a framework's command.
func TestIncrementalServesONNX(t *testing.T) {
	onnxLibrary(t)
	cnn, err := os.ReadFile(onnxtest.CNN())
	if err != nil {
		t.Fatal(err)
	}
	f := startFLWith(t, []string{"edge1"}, flOptions{})
	admin := adminClient(t, f.cloud.BrokerURL())
	o := drift.Options{Job: "il-onnx", Dir: filepath.Join(f.dir, "data"), Node: "edge1", MaxCycles: 1, TrainAfter: 20, Epochs: 2}
	ref := f.startILONNX(t, admin, o, cnn, []string{o.InitialModel()}, nil)
	edgeAddr := f.edges["edge1"].BrokerAddr()
	stages := watchStages(t, edgeAddr, ref)
	cam := newILCamera(t, edgeAddr, ref)
	_, stream, _, test, err := drift.Data()
	if err != nil {
		t.Fatal(err)
	}
	local, err := onnx.Load(cnn, onnx.Options{Pre: onnx.Preprocess{Mean: []float32{0.2860}, Std: []float32{0.3530}}})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	want, err := local.Predict(test.X[:300*196])
	if err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, ref, "serving", 2*time.Minute, func(st api.Status) bool { _, ok := st.Metrics["samples"]; return ok })
	got := cam.send(t, test, 0, 300, "plain")
	right := 0
	for i, r := range got {
		if r.Error != "" || r.Class != want[i] {
			t.Fatalf("frame %d: answered %+v, the CNN gives %d", i, r, want[i])
		}
		if r.Class == test.Y[i] {
			right++
		}
	}
	t.Logf("the ONNX CNN serves the incremental job: %d of 300 test frames right, each as the CNN answers it here", right)

	startOracle(t, f.cloud.BrokerURL(), ref, drift.Labels(stream, "s"))
	cam.send(t, stream, 0, 400, "s")
	failed := stages.wait(t, 1, "Train", "Failed", 3*time.Minute)
	if !strings.Contains(failed.Message, "the built-in training trains those only") || strings.Contains(failed.Message, "\n") {
		t.Fatalf("Train failed with %q", failed.Message)
	}
	t.Logf("Train: %s", failed.Message)
}

// Issue 20, training stays with the framework: an IncrementalLearningJob
// whose initial and deployed Models are ONNX (the PyTorch CNN, declared
// with its preprocessing), whose train worker is
// examples/python/incremental_onnx/train.py: written against Sedna's lib,
// it loads the serving ONNX model's weights into the CNN, fine-tunes it
// with PyTorch on the labelled hard examples and exports ONNX again. The
// built-in eval scores candidate and serving model through ONNX Runtime,
// the deploy trigger deploys the candidate, the built-in inference worker
// serves it (hot update), and the camera's drifted frames are answered
// better than before the cycle (by 10 points at least).
func TestIncrementalONNXWithPyTorchTrainer(t *testing.T) {
	onnxLibrary(t)
	sdk := repoPath(t, "sdk/python")
	script := repoPath(t, "examples/python/incremental_onnx/train.py")
	cnn, err := os.ReadFile(onnxtest.CNN())
	if err != nil {
		t.Fatal(err)
	}
	f := startFLWith(t, []string{"edge1"}, flOptions{})
	admin := adminClient(t, f.cloud.BrokerURL())
	f.api = admin
	o := drift.Options{Job: "il-torch", Dir: filepath.Join(f.dir, "data"), Node: "edge1", MaxCycles: 1, TrainAfter: 150, Epochs: 10}
	ref := f.startILONNX(t, admin, o, cnn, []string{o.InitialModel(), o.DeployModel()}, func(yaml string) string {
		old := `containers: [{name: train, env: [{name: epochs, value: "10"}]}]`
		if !strings.Contains(yaml, old) {
			t.Fatal("the example's train template changed; update the test")
		}
		return strings.Replace(yaml, old, `containers: [{name: train, command: ["/usr/bin/python3", "`+script+`"], env: [{name: epochs, value: "10"}, {name: PYTHONPATH, value: "`+sdk+`"}, {name: PYTHONDONTWRITEBYTECODE, value: "1"}]}]`, 1)
	})
	edgeAddr := f.edges["edge1"].BrokerAddr()
	stages := watchStages(t, edgeAddr, ref)
	cam := newILCamera(t, edgeAddr, ref)
	_, stream, _, _, err := drift.Data()
	if err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, ref, "serving", 2*time.Minute, func(st api.Status) bool { _, ok := st.Metrics["samples"]; return ok })
	startOracle(t, f.cloud.BrokerURL(), ref, drift.Labels(stream, "s"))
	before, _ := accuracy(cam.send(t, stream, 0, 1000, "s"), stream, 0)
	deployed := stages.wait(t, 1, "Deploy", "Completed", 4*time.Minute)
	if deployed.Reason == "NotDeployed" {
		t.Fatalf("not deployed: %s", deployed.Message)
	}
	f.waitStatus(t, ref, "serving the deployed model", time.Minute, func(st api.Status) bool { return st.Metrics["hotUpdates"] >= 1 })
	after, _ := accuracy(cam.send(t, stream, 1000, 2000, "s"), stream, 1000)
	trainLog := readFile(filepath.Join(f.dir, "cloud", "workers", workers.LogName(ref, "train")))
	t.Logf("PyTorch trainer of an ONNX model: %.3f of the drifted frames right before the cycle, %.3f after (deploy: %s); train log:\n%s", before, after, deployed.Message, trainLog)
	if !strings.Contains(trainLog, "model saved to ") {
		t.Fatalf("the train worker's log does not show it saved the model")
	}
	if after < before+0.10 {
		t.Errorf("accuracy %.3f before, %.3f after: want a rise of 10 points at least", before, after)
	}
}

// startILONNX applies the drift example's job as an admin, with the Models
// named declared as the PyTorch CNN in ONNX (its input and preprocessing)
// and edit (when set) applied to the YAML, registers cnn as the initial
// model's version 1 and returns the job.
func (f *flFleet) startILONNX(t *testing.T, admin *cloud.Client, o drift.Options, cnn []byte, models []string, edit func(string) string) topics.JobRef {
	t.Helper()
	if err := drift.Write(o); err != nil {
		t.Fatal(err)
	}
	yaml := drift.YAML(o)
	for _, m := range models {
		old := "spec: {url: " + m + ".bin, format: sedna-ml}"
		if !strings.Contains(yaml, old) {
			t.Fatal("the example's Models changed; update the test")
		}
		yaml = strings.Replace(yaml, old, "spec: {url: "+m+".onnx, format: onnx, inputs: [{name: image, shape: [-1, 1, 14, 14]}], preprocess: {mean: [0.2860], std: [0.3530]}}", 1)
	}
	if edit != nil {
		yaml = edit(yaml)
	}
	rs, err := api.Parse([]byte(yaml), o.Job+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := admin.Apply(f.ctx, rs); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
	if _, err := admin.PushModel(f.ctx, "default", o.InitialModel(), "", nil, bytes.NewReader(cnn)); err != nil {
		t.Fatal(err)
	}
	return topics.JobRef{Kind: api.KindIncrementalLearningJob, Namespace: "default", Name: o.Job}
}
