package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/workers"
)

// Sedna's worker contract for incremental learning, end to end over real
// brokers: the job's train, eval and deploy templates run a program
// (examples/incremental/worker, built here; agents running as root run it
// as nobody). The program answers edge1's camera with the model the agent
// gave it and says what it answered; the agent mines that and sends the
// hard examples up; an oracle labels them; the cloud runs the program for
// Train and for Eval; the deployed version reaches the program through the
// hot update file (or, without hot update, the program restarts with it);
// the camera's answers get better and the job completes its one cycle.
func TestIncrementalWithExternalWorkers(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	bin := buildILWorker(t)
	t.Run("hot update", func(t *testing.T) { runExternalIL(t, bin, false) })
	t.Run("restart", func(t *testing.T) { runExternalIL(t, bin, true) })
}

// buildILWorker builds examples/incremental/worker where any user may
// run it.
func buildILWorker(t *testing.T) string {
	dir, err := os.MkdirTemp("", "il-worker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "il-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sedna-go/sedna/examples/incremental/worker").CombinedOutput(); err != nil {
		t.Fatalf("build the worker: %v\n%s", err, out)
	}
	return bin
}

func runExternalIL(t *testing.T, bin string, restart bool) {
	f := startFLWith(t, []string{"edge1"}, flOptions{})
	// Only an admin may apply a job whose workers run a command not in
	// the cloud's workers.allowedCommands.
	admin := adminClient(t, f.cloud.BrokerURL())
	f.api = admin
	o := drift.Options{Job: "il-ext", Dir: filepath.Join(f.dir, "data"), Node: "edge1", MaxCycles: 1, TrainAfter: 150, Epochs: 30, Worker: bin, Restart: restart}
	stream, blob := driftInitial(t, f.ctx)
	ref := f.startILJob(t, o, blob)
	edgeAddr := f.edges["edge1"].BrokerAddr()
	stages := watchStages(t, edgeAddr, ref)
	cam := newILCamera(t, edgeAddr, ref)
	// The oracle holds its labels until the camera's frames are answered:
	// without hot update the program restarts with the deployed model,
	// and what the camera sends meanwhile is not received (as with
	// Sedna's worker), so no cycle may run while it sends.
	labels := drift.Labels(stream, "s")
	var mu sync.Mutex
	var held [][]byte
	open := false
	startOracle(t, f.cloud.BrokerURL(), ref, func(w []byte) ([]byte, bool) {
		mu.Lock()
		defer mu.Unlock()
		if !open {
			held = append(held, w)
			return nil, false
		}
		return labels(w)
	})
	before, _ := accuracy(cam.send(t, stream, 0, 1000, "s"), stream, 0)
	st := f.waitStatus(t, ref, "1,000 samples counted", time.Minute, func(st api.Status) bool { return st.Metrics["samples"] >= 1000 })
	if st.Metrics["hardExamples"] < float64(o.TrainAfter) {
		t.Fatalf("the agent mined %v hard examples of what the program answered; want at least %d", st.Metrics["hardExamples"], o.TrainAfter)
	}
	late := client(t, f.cloud.BrokerURL(), "oracle-late-"+ref.Name, "app", true)
	mu.Lock()
	open = true
	pending := held
	mu.Unlock()
	for _, w := range pending {
		if raw, ok := labels(w); ok {
			if tok := late.Publish(incremental.LabelTopic(ref), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("label: %v", tok.Error())
			}
		}
	}
	deployed := stages.wait(t, 1, "Deploy", "Completed", 3*time.Minute)
	if deployed.Reason == "NotDeployed" {
		t.Fatalf("not deployed: %s", deployed.Message)
	}
	// The program follows the hot update file (polled every second), or
	// starts again with the new model.
	inferLog := filepath.Join(f.dir, "edge1", "workers", workers.LogName(ref, "deploy"))
	loaded := "hot update: serving model " + o.DeployModel() + "/1"
	if restart {
		loaded = "serving model " + o.DeployModel() + "/1 on "
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(readFile(inferLog), loaded); {
		if time.Now().After(deadline) {
			t.Fatalf("the program did not load the deployed model; its log:\n%s", readFile(inferLog))
		}
		<-time.After(200 * time.Millisecond) // polling a file another process writes
	}
	after, _ := accuracy(cam.send(t, stream, 1000, 2000, "s"), stream, 1000)
	t.Logf("external workers: %.3f of the drifted frames right before the cycle, %.3f after; %v hard of %v samples mined",
		before, after, st.Metrics["hardExamples"], st.Metrics["samples"])
	if after < before+0.2 {
		t.Errorf("accuracy %.3f before, %.3f after: want a rise of 20 points at least", before, after)
	}
	f.waitStatus(t, ref, "Completed", time.Minute, func(st api.Status) bool { return st.Phase == api.ConditionCompleted })
	for role, said := range map[string]string{"train": "fine-tuning on", "eval": "scores map["} {
		if l := readFile(filepath.Join(f.dir, "cloud", "workers", workers.LogName(ref, role))); !strings.Contains(l, said) {
			t.Errorf("the cloud's %s worker's log does not show the program ran:\n%s", role, l)
		}
	}
}

func readFile(path string) string {
	raw, _ := os.ReadFile(path)
	return string(raw)
}
