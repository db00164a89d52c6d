package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/topics"
)

func TestApplyGetDescribeDelete(t *testing.T) {
	m := cloudWithUsers(t, map[string]access.UserRole{"ops": access.UserOperator})
	conn := []string{"--cloud", m.BrokerURL(), "--username", "ops", "--password", "pw"}
	run := func(args ...string) (string, error) { return runSedna(t, "", append(args, conn...)...) }

	out, err := run("apply", "-f", "../../examples/sedna")
	if err != nil || strings.Count(out, " created") != 13 || !strings.Contains(out, `(pending: waiting for node "edge1" to join`) {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	out, err = run("get", "all")
	if err != nil || !strings.Contains(out, "FederatedLearningJob") || !strings.Contains(out, "Pending") || strings.Count(out, "\n") != 14 {
		t.Fatalf("get all: %v\n%s", err, out)
	}
	out, err = run("describe", "jis", "helmet-detection-inference-example")
	if err != nil || !strings.Contains(out, "Ignored (kept as written, not used by Sedna-Go):") ||
		!strings.Contains(out, "spec.edgeWorker.template.spec.containers[0].resources") || !strings.Contains(out, "threshold_img") {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	out, err = run("get", "fl", "surface-defect-detection", "-o", "yaml")
	if err != nil || !strings.Contains(out, "kind: FederatedLearningJob") || !strings.Contains(out, "status:") {
		t.Fatalf("get -o yaml: %v\n%s", err, out)
	}

	out, err = run("watch", "ds", "lifelong-dataset", "--for", "500ms")
	if err != nil || !strings.Contains(out, "phase Pending: waiting for node \"edge1\" to join") {
		t.Fatalf("watch: %v\n%s", err, out)
	}
	if _, err = run("watch", "ds", "no-such-dataset", "--for", "500ms"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("watch of nothing: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: il-bad}
spec:
  initialModel: {name: initial-model}
  dataset: {name: incremental-dataset, trainProb: 0.8}
  trainSpec:
    template: {spec: {nodeName: edge1}}
    trigger: {condition: {operator: "=>", threshold: 500, metric: num_of_samples}}
  evalSpec: {template: {spec: {nodeName: edge1}}}
  deploySpec: {model: {name: deploy-model}, template: {spec: {nodeName: edge1}}}
`), 0o644)
	if _, err = run("apply", "-f", bad); err == nil || !strings.Contains(err.Error(), "1 of 1 resources rejected") {
		t.Fatalf("a bad operator was accepted: %v", err)
	}
	out, err = run("delete", "fl", "surface-defect-detection")
	if err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %v %s", err, out)
	}
	if _, err = run("describe", "fl", "surface-defect-detection"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("describe after delete: %v", err)
	}
	if _, err = run("get", "widgets"); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("unknown kind: %v", err)
	}
	// A pushed model becomes a version in the registry.
	mf := filepath.Join(t.TempDir(), "m.bin")
	os.WriteFile(mf, make([]byte, 600<<10), 0o644)
	out, err = run("model", "push", "initial-model", mf, "--metric", "precision=0.9")
	if err != nil || !strings.Contains(out, "Model/default/initial-model pushed: version 1, 614400 bytes, sha256:") {
		t.Fatalf("model push: %v\n%s", err, out)
	}
	out, err = run("model", "push", "initial-model", mf)
	if err != nil || !strings.Contains(out, "unchanged: version 1") {
		t.Fatalf("same bytes again: %v\n%s", err, out)
	}
	out, err = run("describe", "model", "initial-model")
	if err != nil || strings.Contains(out, "Waiting for") {
		t.Fatalf("the model still waits: %v\n%s", err, out)
	}
	os.WriteFile(mf, nil, 0o644)
	if _, err = run("model", "push", "initial-model", mf); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty model: %v", err)
	}
	// Wrong credentials are refused by the broker.
	if _, err = runSedna(t, "", "get", "all", "--cloud", m.BrokerURL(), "--username", "ops", "--password", "nope", "--timeout", "2s"); err == nil {
		t.Fatal("bad password accepted")
	}
}

// A job that reports rounds gets a progress bar, and the watch ends with the
// job: exit 0 when it completes, an error when it fails.
func TestWatcherFollowsProgress(t *testing.T) {
	var out strings.Builder
	w := &watcher{out: &out}
	for i := 0; i <= 3; i++ {
		if done, _ := w.status(api.Status{Phase: api.ConditionRunning, Progress: &api.Progress{Done: i, Total: 5, Unit: "rounds"}}); done {
			t.Fatal("ended while running")
		}
	}
	if done, err := w.status(api.Status{Phase: api.ConditionCompleted, Progress: &api.Progress{Done: 5, Total: 5, Unit: "rounds"}}); !done || err != nil {
		t.Fatalf("completed: %v %v", done, err)
	}
	if !strings.Contains(out.String(), "rounds") || !strings.Contains(out.String(), "phase Running") || !strings.Contains(out.String(), "phase Completed") {
		t.Fatalf("output:\n%s", out.String())
	}
	if done, err := (&watcher{out: &out}).status(api.Status{Phase: api.ConditionFailed}); !done || err == nil {
		t.Fatalf("failed: %v %v", done, err)
	}
}

// A service's metrics (joint inference's counts and ratios) are printed when
// they change, and describe lists them.
func TestWatcherAndDescribeShowMetrics(t *testing.T) {
	var out strings.Builder
	w := &watcher{out: &out}
	st := api.Status{Phase: api.ConditionRunning, Metrics: map[string]float64{"inferences": 100, "uploadRatio": 0.31}}
	w.status(st)
	w.status(st) // unchanged: not printed again
	st.Metrics = map[string]float64{"inferences": 200, "uploadRatio": 0.3}
	w.status(st)
	if n := strings.Count(out.String(), " metrics "); n != 2 || !strings.Contains(out.String(), "metrics inferences=200 uploadRatio=0.3") {
		t.Fatalf("watch output:\n%s", out.String())
	}
	raw, _ := json.Marshal(st)
	var d strings.Builder
	if err := describe(&d, topics.APIObject{Key: "JointInferenceService/default/ji", Status: raw}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.String(), "Metrics:     inferences=200\n             uploadRatio=0.3") {
		t.Fatalf("describe:\n%s", d.String())
	}
}

// A learning job's describe says where its cycles are and lists its stage
// conditions with their stage and data; get's INFO column says the cycle
// and stage while it runs.
func TestDescribeShowsALearningJobsStages(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	st := api.Status{Phase: api.ConditionRunning, Stage: &api.StageStatus{Cycle: 2, Stage: "Eval", Phase: "Running", Serving: 1, Deployed: 1}}
	st.SetCondition(api.ConditionRunning, api.StatusTrue, "WorkersRunning", "3 of 3 workers running", at)
	st.AddStageCondition(api.Condition{Type: "Completed", Status: api.StatusTrue, Stage: "Deploy", Reason: "NotDeployed",
		Message: "accuracy_delta = 0.01, needs > 0.02: model version 1 keeps serving", LastTransitionTime: at})
	st.AddStageCondition(api.Condition{Type: "Starting", Status: api.StatusTrue, Stage: "Eval", Message: "attempt 2-eval-1",
		Data: `{"cycle":2,"model":2,"serving":1}`, LastTransitionTime: at})
	raw, _ := json.Marshal(st)
	var d strings.Builder
	if err := describe(&d, topics.APIObject{Key: "IncrementalLearningJob/default/il", Status: raw}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Stage:       cycle 2, Eval Running; model version 1 serves, 1 cycles deployed",
		"Running    True    -       WorkersRunning",
		"Completed  True    Deploy  NotDeployed     2026-12-02T10:00:00Z  accuracy_delta = 0.01, needs > 0.02: model version 1 keeps serving",
		`Starting   True    Eval                    2026-12-02T10:00:00Z  attempt 2-eval-1 {"cycle":2,"model":2,"serving":1}`,
	} {
		if !strings.Contains(d.String(), want) {
			t.Errorf("describe has no %q:\n%s", want, d.String())
		}
	}
	if got := info(st); got != "cycle 2 Eval/Running, serving v1, 1 deployed" {
		t.Errorf("INFO %q", got)
	}
	st.Stage = &api.StageStatus{Cycle: 1, Stage: "Train", Phase: "Waiting"}
	if got := info(st); got != "cycle 1 Train/Waiting, serving initial, 0 deployed" {
		t.Errorf("INFO before a deploy %q", got)
	}
}
