package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/workers"
)

// Issue 20, must-shows 2 and 3 for incremental learning: the train worker
// of an IncrementalLearningJob is examples/python/incremental/train.py, a
// program written against Sedna's Python lib (its imports, classes,
// methods and environment variables), run by Debian's /usr/bin/python3
// with sdk/python on PYTHONPATH, as nobody. Eval and deploy are the
// built-ins. The job's one cycle trains with it (its log says it saved
// the model where MODEL_URL said), the built-in eval scores its model, the
// deploy trigger deploys it, and the camera's drifted frames are answered
// 20 points better than before.
func TestIncrementalPythonTrainWorker(t *testing.T) {
	sdk, err := filepath.Abs("../../sdk/python")
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../../examples/python/incremental/train.py")
	if err != nil {
		t.Fatal(err)
	}
	f := startFLWith(t, []string{"edge1"}, flOptions{})
	admin, err := cloud.Dial(cloudlink.ClientConfig{URL: f.cloud.BrokerURL(), Username: "admin", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	f.api = admin
	o := drift.Options{Job: "il-py", Dir: filepath.Join(f.dir, "data"), Node: "edge1", MaxCycles: 1, TrainAfter: 150, Epochs: 30}
	stream, blob := driftInitial(t, f.ctx)
	yaml := drift.YAML(o)
	old := `containers: [{name: train, env: [{name: epochs, value: "30"}]}]`
	if !strings.Contains(yaml, old) {
		t.Fatal("the example's train template changed; update the test")
	}
	yaml = strings.Replace(yaml, old, `containers: [{name: train, command: ["/usr/bin/python3", "`+script+`"], env: [{name: epochs, value: "30"}, {name: PYTHONPATH, value: "`+sdk+`"}, {name: PYTHONDONTWRITEBYTECODE, value: "1"}]}]`, 1)
	ref := f.startILJobYAML(t, o, blob, yaml)
	edgeAddr := f.edges["edge1"].BrokerAddr()
	stages := watchStages(t, edgeAddr, ref)
	cam := newILCamera(t, edgeAddr, ref)
	startOracle(t, f.cloud.BrokerURL(), ref, drift.Labels(stream, "s"))
	before, _ := accuracy(cam.send(t, stream, 0, 1000, "s"), stream, 0)
	trained := stages.wait(t, 1, "Train", "Completed", 3*time.Minute)
	deployed := stages.wait(t, 1, "Deploy", "Completed", 3*time.Minute)
	if deployed.Reason == "NotDeployed" {
		t.Fatalf("not deployed: %s", deployed.Message)
	}
	trainLog := readFile(filepath.Join(f.dir, "cloud", "workers", workers.LogName(ref, "train")))
	if !strings.Contains(trainLog, "model saved to ") {
		t.Fatalf("the Python train worker's log does not show it ran (Train: %s):\n%s", trained.Message, trainLog)
	}
	f.waitStatus(t, ref, "Completed", time.Minute, func(st api.Status) bool { return st.Phase == api.ConditionCompleted })
	f.waitStatus(t, ref, "serving the deployed model", time.Minute, func(st api.Status) bool { return st.Metrics["hotUpdates"] >= 1 })
	after, _ := accuracy(cam.send(t, stream, 1000, 2000, "s"), stream, 1000)
	t.Logf("Python train worker (Sedna's lib style): %.3f of the drifted frames right before the cycle, %.3f after (deploy: %s); its log:\n%s", before, after, deployed.Message, trainLog)
	if after < before+0.2 {
		t.Errorf("accuracy %.3f before, %.3f after: want a rise of 20 points at least", before, after)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
}
