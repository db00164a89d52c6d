package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
)

// TestSednaExamplesTellWhatTheyWaitFor applies examples/sedna unchanged on
// a cloud with its two nodes joined, and checks each resource's status,
// resource by resource: the phase, and the reason and message of the
// condition that holds, which say exactly what it waits for or does (the
// examples name files on Sedna's machines: none exists here).
func TestSednaExamplesTellWhatTheyWaitFor(t *testing.T) {
	dir := t.TempDir()
	m, _ := startLinked(t, dir, "edge1", "edge2")
	waitJoined(t, m.BrokerURL(), "edge1", "edge2")
	c := adminClient(t, m.BrokerURL())
	rs, err := api.ParseFiles("../../examples/sedna")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, c, rs, "created")

	missingModel := func(name, file string) string {
		return fmt.Sprintf("%s is not in the cloud's model directories (%s; push one: sedna model push %s FILE;", file, filepath.Join(dir, "cloud", "models"), name)
	}
	noFile := func(file, node string) string {
		return fmt.Sprintf("no file %s on node %s (waiting for it;", file, node)
	}
	want := map[string]struct{ phase, reason, message string }{
		"Dataset/default/edge1-surface-defect-detection-dataset": {"Pending", "FileNotRead", noFile("/data/surface-defect/train_data/train_data.txt", "edge1")},
		"Dataset/default/edge2-surface-defect-detection-dataset": {"Pending", "FileNotRead", noFile("/data/surface-defect/train_data/train_data.txt", "edge2")},
		"Dataset/default/incremental-dataset":                    {"Pending", "FileNotRead", noFile("/data/helmet_detection/train_data/train_data.txt", "edge1")},
		"Dataset/default/lifelong-dataset":                       {"Pending", "FileNotRead", noFile("/data/atcii/train.csv", "edge1")},
		"Model/default/initial-model":                            {"Pending", "Waiting", missingModel("initial-model", "/models/base_model/model.pb")},
		"Model/default/helmet-detection-inference-little-model":  {"Pending", "Waiting", missingModel("helmet-detection-inference-little-model", "/data/little-model/yolov3_resnet18.pb")},
		"Model/default/helmet-detection-inference-big-model":     {"Pending", "Waiting", missingModel("helmet-detection-inference-big-model", "/data/big-model/yolov3_darknet.pb")},
		"Model/default/deploy-model":                             {"Pending", "Waiting", missingModel("deploy-model", "/models/deploy_model/saved_model.pb")},
		// The federated job's output: the job registers it.
		"Model/default/surface-defect-detection-model": {"Pending", "Waiting", missingModel("surface-defect-detection-model", "/model")},
		"JointInferenceService/default/helmet-detection-inference-example": {"Pending", "Waiting",
			`waiting for Model "helmet-detection-inference-little-model" (spec.edgeWorker.model.name) to have a model file: /data/little-model/yolov3_resnet18.pb`},
		"IncrementalLearningJob/default/helmet-detection-demo": {"Pending", "Waiting",
			`waiting for Model "initial-model" (spec.initialModel.name) to have a model file: /models/base_model/model.pb`},
		// Its built-in workers run; its inference worker waits for the
		// first knowledge base, which its Dataset (missing) would train.
		"LifelongLearningJob/default/atcii-classifier-demo": {"Running", "WorkersRunning",
			"worker deploy on edge1: waiting for the first version of model atcii-classifier-demo-kb (the job's first training makes it"},
		// Its workers run: the aggregator waits for the training workers'
		// reports of their Datasets, whose files are missing.
		"FederatedLearningJob/default/surface-defect-detection": {"Running", "WorkersRunning",
			"3 of 3 workers running; worker aggregation on cloud: the model's size comes from the training workers' Datasets: waiting for"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		got := objects(t, c, "all")
		var wrong []string
		for key, w := range want {
			o, ok := got[key]
			if !ok {
				wrong = append(wrong, key+": missing")
				continue
			}
			var st api.Status
			if err := json.Unmarshal(o.Status, &st); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			var holds *api.Condition
			for i, cond := range st.Conditions {
				if cond.Status == api.StatusTrue && cond.Type != api.ConditionAccepted {
					holds = &st.Conditions[i]
				}
			}
			switch {
			case st.Phase != w.phase:
				wrong = append(wrong, fmt.Sprintf("%s: phase %s, want %s (%+v)", key, st.Phase, w.phase, st.Conditions))
			case holds == nil || holds.Type != w.phase || holds.Reason != w.reason || !strings.Contains(holds.Message, w.message):
				wrong = append(wrong, fmt.Sprintf("%s: condition %+v, want %s %s %q", key, holds, w.phase, w.reason, w.message))
			}
		}
		for key, o := range got {
			if _, ok := want[key]; !ok {
				wrong = append(wrong, fmt.Sprintf("%s: not expected (%s)", key, o.Status))
			}
		}
		if len(wrong) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("statuses:\n  %s", strings.Join(wrong, "\n  "))
		}
	}
	// The nodes, as `sedna get nodes` shows them: online, what they are,
	// the workers the examples place on them.
	for _, name := range []string{"edge1", "edge2"} {
		n := nodeInfo(t, c, name)
		if n.State != topics.NodeOnline || n.OS != runtime.GOOS || n.Arch != runtime.GOARCH || n.LastSeen == 0 || len(n.Workers) == 0 {
			t.Errorf("%s: %+v", name, n)
		}
	}
	if n := nodeInfo(t, c, "edge2"); !slices.Contains(n.Workers, "FederatedLearningJob/default/surface-defect-detection/train-1 Running") {
		t.Errorf("edge2's workers: %v", n.Workers)
	}
}
