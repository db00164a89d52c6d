package cloud

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// TestRelativeReadDirs: directories given relative to where the manager
// starts (`--read-dir run/fl`, `--models-dir models`) are those
// directories; a job's absolute path into them is read. (They were taken
// as prefixes no absolute path has, and every file was "outside".)
func TestRelativeReadDirs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, d := range []string{"run/fl", "models"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f.csv"), []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	creds, err := access.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Start(Config{DataDir: "state", Broker: BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off",
		Data: DataConfig{Dirs: []string{"run/fl"}}, Models: ModelsConfig{Dirs: []string{"models"}}}, Options{Credentials: creds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, d := range []string{"run/fl", "models"} {
		f, err := m.Control().OpenFile(filepath.Join(dir, d, "f.csv"))
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != d {
			t.Fatalf("%s: read %q", d, b)
		}
	}
	if _, err := m.Control().OpenFile(filepath.Join(dir, "state", "x")); err == nil {
		t.Fatal("a file outside the directories was opened")
	}
}

// TestReportOfAReplacedWorkerIsNotTheNewOnes: after a new generation, the
// last report of the worker it replaced ("Stopped", sent once the old
// process is gone, so after the new one's "Running") does not make the job
// say its worker is not running; and what the workers said of the old
// generation (Succeeded) is not taken for the new one.
func TestReportOfAReplacedWorkerIsNotTheNewOnes(t *testing.T) {
	creds, err := access.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	m := startManager(t, creds)
	c := m.Control()
	doc := func(value string) []byte {
		return []byte(`{"apiVersion":"sedna.io/v1alpha1","kind":"JointInferenceService","metadata":{"name":"ji"},"spec":{
"edgeWorker":{"model":{"name":"m"},"hardExampleMining":{"name":"IBT"},"template":{"spec":{"nodeName":"edge1","containers":[{"image":"x","env":[{"name":"v","value":"` + value + `"}]}]}}},
"cloudWorker":{"model":{"name":"m"},"template":{"spec":{"nodeName":"edge1"}}}}}`)
	}
	ref := topics.JobRef{Kind: "JointInferenceService", Namespace: "default", Name: "ji"}
	admin := caller{user: "a", role: access.UserAdmin}
	var st api.Status
	run := func(f func()) {
		done := make(chan struct{})
		c.do(func() { f(); close(done) })
		<-done
	}
	report := func(gen uint64, role, phase string) {
		e := c.res[ref.String()]
		c.workerStatus(ref, api.WorkerStatus{Role: role, Node: "edge1", Phase: phase, Generation: gen, Created: e.rec.Created})
		st = e.status
	}
	run(func() {
		if rep := c.apply(admin, topics.APIRequest{Documents: [][]byte{doc("1")}}); rep.Results[0].Action != "created" {
			t.Fatalf("apply: %+v", rep.Results)
		}
		report(1, "edge", workers.PhaseSucceeded)
		report(1, "cloud", workers.PhaseSucceeded)
	})
	if st.Phase != api.ConditionCompleted {
		t.Fatalf("generation 1: %s %+v", st.Phase, st.Conditions)
	}
	run(func() {
		if rep := c.apply(admin, topics.APIRequest{Documents: [][]byte{doc("2")}}); rep.Results[0].Action != "configured" {
			t.Fatalf("apply: %+v", rep.Results)
		}
		st = c.res[ref.String()].status
	})
	if st.Phase == api.ConditionCompleted {
		t.Fatalf("generation 2 completed before its workers ran: %+v", st.Conditions)
	}
	run(func() {
		report(2, "edge", workers.PhaseRunning)
		report(2, "cloud", workers.PhaseRunning)
		report(1, "edge", workers.PhaseStopped) // the old edge worker's last word
	})
	// (The job also waits for its Model and its node: it is Pending,
	// saying its two workers run meanwhile.)
	edge := st.Workers[slices.IndexFunc(st.Workers, func(w api.WorkerStatus) bool { return w.Role == "edge" })]
	if st.ReadyWorkers != 2 || edge.Phase != workers.PhaseRunning || edge.Generation != 2 {
		t.Fatalf("generation 2 running, after the old worker's last report: %d/%d ready, edge worker %+v; %+v", st.ReadyWorkers, st.DesiredWorkers, edge, st.Conditions)
	}
}

// A plaintext listener is on loopback unless the operator says
// --insecure-listen.
func TestPlaintextListenerNeedsInsecureOffLoopback(t *testing.T) {
	for _, c := range []struct {
		listen   string
		insecure bool
		ok       bool
	}{
		{"", false, true}, {"off", false, true}, {"127.0.0.1:1884", false, true}, {"[::1]:1884", false, true},
		{"localhost:1884", false, true}, {":1884", false, false}, {"0.0.0.0:1884", false, false},
		{"10.0.0.5:1884", false, false}, {":1884", true, true},
	} {
		err := checkPlaintext(c.listen, c.insecure)
		if (err == nil) != c.ok {
			t.Errorf("listen %q insecure %v: %v", c.listen, c.insecure, err)
		}
		if err != nil && !strings.Contains(err.Error(), "--insecure-listen") {
			t.Errorf("listen %q: %v does not say how to mean it", c.listen, err)
		}
	}
}
