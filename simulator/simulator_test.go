package simulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/simulator"
)

var sednaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sim-test-")
	if err != nil {
		panic(err)
	}
	sednaBin = filepath.Join(dir, "sedna")
	if out, err := exec.Command("go", "build", "-o", sednaBin, "github.com/sedna-go/sedna/cmd/sedna").CombinedOutput(); err != nil {
		fmt.Fprintln(os.Stderr, string(out))
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// crossBins builds sedna for the emulated boards' architectures (with
// make cross's flags, so the build cache has its packages), once.
var crossBins = struct {
	once sync.Once
	bins map[string]string
	err  error
}{}

func emulatedBinaries(t *testing.T) map[string]string {
	t.Helper()
	crossBins.once.Do(func() {
		crossBins.bins = map[string]string{}
		for arch, env := range map[string][]string{"arm64": {"GOARCH=arm64"}, "armv7": {"GOARCH=arm", "GOARM=7"}} {
			bin := filepath.Join(filepath.Dir(sednaBin), "sedna-linux-"+arch)
			cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/sedna-go/sedna/cmd/sedna")
			cmd.Env = append(append(os.Environ(), "GOOS=linux"), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				crossBins.err = fmt.Errorf("build for %s: %v\n%s", arch, err, out)
				return
			}
			crossBins.bins[arch] = bin
		}
	})
	if crossBins.err != nil {
		t.Fatal(crossBins.err)
	}
	return crossBins.bins
}

func run(t *testing.T, file string, edit func(*simulator.Scenario)) *simulator.Report {
	t.Helper()
	return runWith(t, file, edit, nil)
}

func runWith(t *testing.T, file string, edit func(*simulator.Scenario), bins map[string]string) *simulator.Report {
	t.Helper()
	s, err := simulator.Load(filepath.Join("../examples/scenarios", file))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := simulator.Run(ctx, s, simulator.Options{SednaBin: sednaBin, Binaries: bins, Dir: t.TempDir(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	rep.WriteSummary(&sum)
	t.Log("\n" + sum.String())
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil || !json.Valid(js.Bytes()) {
		t.Fatalf("report JSON: %v", err)
	}
	return rep
}

// Must-show 1: 20 nodes, 5 flapping links, 2 subprocess nodes SIGKILLed with
// messages on disk and started again: nothing lost, no acknowledged message
// duplicated, by the simulator's own counter (a message whose PUBACK the
// kill swallowed may arrive twice: its device sends it again).
func TestFlappingFleetLosesNothing(t *testing.T) {
	rep := run(t, "flapping-fleet.yaml", nil)
	if !rep.OK() || rep.Total.Lost != 0 || rep.Total.Duplicated != 0 {
		t.Fatalf("failures: %v", rep.Failures)
	}
	if rep.Total.Acked < 1500 {
		t.Fatalf("only %d messages acknowledged: the fleet did not run", rep.Total.Acked)
	}
	killed := false
	for _, f := range rep.Faults {
		killed = killed || strings.Contains(f, "kill on edge-0,edge-1")
	}
	for _, n := range rep.Nodes[:2] {
		if n.BacklogPeak == 0 {
			t.Errorf("%s held nothing on disk when it was killed: the kill proved nothing", n.Node)
		}
	}
	if !killed {
		t.Fatalf("no kill in the timeline: %v", rep.Faults)
	}
}

// Must-show 3, first half: QoS 0 through flapping links loses messages, and
// the counter sees it (so it could see any loss).
func TestQoS0NegativeControlShowsLoss(t *testing.T) {
	rep := run(t, "qos0-negative-control.yaml", nil)
	if !rep.OK() || rep.Total.Lost == 0 {
		t.Fatalf("the counter saw no loss: %+v", rep.Total)
	}
}

// Must-show 3, second half: a scenario whose expectation cannot hold (a
// small drop-oldest queue behind a dead link) fails and says why.
func TestFailedExpectationIsReported(t *testing.T) {
	rep := run(t, "small-disk-drops.yaml", nil)
	if rep.OK() || len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], "expected 0 lost, counted") {
		t.Fatalf("failures: %v (total %+v)", rep.Failures, rep.Total)
	}
	// And `sedna sim run` exits non-zero, naming it.
	out, err := exec.Command(sednaBin, "sim", "run", "../examples/scenarios/small-disk-drops.yaml", "--log-level", "error").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAILED: expected 0 lost") || !strings.Contains(string(out), "1 expectation(s) failed") {
		t.Fatalf("sedna sim run: %v\n%s", err, out)
	}
}

func TestScenarioErrorsNameTheField(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"name: x\nduration: 1s\nnodes: {count: 0}\n", "nodes.count"},
		{"name: x\nduration: 1s\nnodes: {count: 2}\ndevices: [{rate: 0}]\n", "devices[0].rate"},
		{"name: x\nduration: 1s\nnodes: {count: 2}\nfaults: [{at: 1s, nodes: [node-7], action: linkDown}]\n", `"node-7" is not a node`},
		{"name: x\nduration: 1s\nnodes: {count: 2}\nfaults: [{at: 1s, nodes: [all], action: explode}]\n", `faults[0].action "explode"`},
		{"name: x\nmode: simulated\nduration: 1s\nnodes: {count: 2}\n", "want real or deterministic"},
		{"name: x\nduration: 1s\nnodes: {count: 2}\nnodez: 3\n", "nodez"},
		{"name: x\nduration: 1s\nnodes: {count: 2, subprocess: 1}\nfaults: [{at: 1s, nodes: [all], action: diskFull}]\n", "node-0 is a subprocess"},
		{"name: x\nduration: 1s\nnodes: {count: 2}\njobs: [j.yaml]\nincremental: {job: j, node: node-5, initialModel: m}\n", `incremental: node "node-5"`},
		{"name: x\nmode: deterministic\nduration: 1s\nnodes: {count: 2}\njobs: [j.yaml]\nincremental: {job: j, node: node-1, initialModel: m}\n", "real mode only"},
		{"name: x\nduration: 1s\nnodes: {count: 2}\nincremental: {job: j, node: node-1, initialModel: m}\n", "no jobs files"},
	} {
		if _, err := simulator.Parse([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %s", c.doc, err, c.want)
		}
	}
	s, err := simulator.Parse([]byte("name: x\nduration: 1s\nnodes: {count: 10, prefix: e}\n"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := s.NodesOf([]string{"e-2..e-4", "e-9", "e-3"})
	if err != nil || fmt.Sprint(idx) != "[2 3 4 9]" {
		t.Fatalf("%v %v", idx, err)
	}
}

// Must-show 2: the same scenario and seed give byte-identical reports; a
// different seed a different one.
func TestDeterministicModeIsReproducible(t *testing.T) {
	report := func(seed uint64) []byte {
		s, err := simulator.Load("../examples/scenarios/deterministic-fleet.yaml")
		if err != nil {
			t.Fatal(err)
		}
		s.Seed = seed
		rep, err := simulator.Run(context.Background(), s, simulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Total.Acked < 29000 {
			t.Fatalf("seed %d: %v %+v", seed, rep.Failures, rep.Total)
		}
		var b bytes.Buffer
		if err := rep.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b, c := report(7), report(7), report(8)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave two different reports")
	}
	if bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same report: the seed changes nothing")
	}
}

// The model keeps the promises' shape: QoS 0 through flapping links loses,
// a small drop-oldest queue behind a dead link loses, and both are counted.
func TestDeterministicModeSeesLoss(t *testing.T) {
	for _, f := range []string{"qos0-negative-control.yaml", "small-disk-drops.yaml"} {
		s, err := simulator.Load(filepath.Join("../examples/scenarios", f))
		if err != nil {
			t.Fatal(err)
		}
		s.Mode, s.Seed = "deterministic", 3
		rep, err := simulator.Run(context.Background(), s, simulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Total.Lost == 0 {
			t.Errorf("%s: no loss in deterministic mode: %+v", f, rep.Total)
		}
	}
}

// Cameras (images of a Dirichlet share of digits), comfort readings,
// KubeEdge devices (their own topics and JSON), twins and sensors are all
// counted.
func TestEveryDeviceKindIsCounted(t *testing.T) {
	rep := run(t, "mixed-devices.yaml", nil)
	if !rep.OK() {
		t.Fatalf("failures: %v", rep.Failures)
	}
	for _, k := range []string{"camera", "comfort", "kubeedge", "sensor", "twin"} {
		if c := rep.ByKind[k]; c.Delivered == 0 || c.Delivered != c.Acked || c.Lost != 0 {
			t.Errorf("%s: %+v", k, c)
		}
	}
	if rep.Total.RoundTrips != rep.ByKind["twin"].Delivered {
		t.Errorf("%d twin round trips for %d twin reports", rep.Total.RoundTrips, rep.ByKind["twin"].Delivered)
	}
}

// A scenario applies Sedna YAML to its fleet and reports each resource's
// state at the end.
func TestScenarioJobsAreAppliedAndReported(t *testing.T) {
	rep := run(t, "with-jobs.yaml", nil)
	if !rep.OK() || len(rep.Jobs) != 2 {
		t.Fatalf("%v %+v", rep.Failures, rep.Jobs)
	}
	fl := rep.Jobs[1]
	if fl.Key != "FederatedLearningJob/default/sim-fl" || fl.Applied != "created" || len(fl.Workers) != 2 ||
		!strings.Contains(strings.Join(fl.Workers, " "), "aggregation@cloud:Running train-0@edge-0:Running") {
		t.Fatalf("job report %+v", fl)
	}
}

// Clock faults, in both modes: a board booting in 1970 that sets its clock
// while its messages wait, clocks two hours off, a clock jumping back:
// nothing lost. The control: edge-0's clock jumps two hours forward
// instead, so what waited is over the queue's maximum age and dropped; the
// run must see it, or the clock faults did nothing.
func TestClockFaultsLoseNothing(t *testing.T) {
	for _, mode := range []string{"real", "deterministic"} {
		t.Run(mode, func(t *testing.T) {
			rep := run(t, "clock-faults.yaml", func(s *simulator.Scenario) { s.Mode = mode })
			if !rep.OK() || rep.Total.Lost != 0 {
				t.Fatalf("failures: %v", rep.Failures)
			}
			for i, n := range rep.Nodes {
				if i == 0 && n.Duplicated > 4 || i > 0 && n.Duplicated != 0 {
					t.Errorf("%s: %d duplicated", n.Node, n.Duplicated)
				}
				if n.BacklogPeak < 20 {
					t.Errorf("%s: backlog peak %d: its messages did not wait while its clock moved", n.Node, n.BacklogPeak)
				}
			}
			ctl := run(t, "clock-faults.yaml", func(s *simulator.Scenario) {
				s.Mode = mode
				for i, f := range s.Faults {
					if f.Action == "clockSet" && f.Value == "real" {
						s.Faults[i] = simulator.Fault{At: f.At, Nodes: f.Nodes, Action: "clockJump", Value: "2h"}
					}
					if f.Action == "clockSet" && f.Value != "real" {
						s.Faults[i].Value = time.Now().UTC().Format(time.RFC3339)
					}
				}
			})
			n0 := ctl.Nodes[0]
			if n0.Lost < 20 || ctl.OK() {
				t.Fatalf("control: edge-0 lost %d messages after a jump past the queue's maximum age; want them dropped and the run failed", n0.Lost)
			}
			for _, n := range ctl.Nodes[1:] {
				if n.Lost != 0 {
					t.Errorf("control: %s lost %d", n.Node, n.Lost)
				}
			}
		})
	}
}

// A disk filled for real on two subprocess nodes (a file system of their
// own): publishes are refused while it is full, none acknowledged is lost,
// no node dies, and publishing resumes once the space is back.
func TestFullDiskRefusesAndLosesNothing(t *testing.T) {
	rep := run(t, "full-disk.yaml", nil)
	if !rep.OK() || rep.Total.Lost != 0 || rep.Total.Duplicated != 0 {
		t.Fatalf("failures: %v", rep.Failures)
	}
	for _, n := range rep.Nodes[:2] {
		if n.Dropped == 0 {
			t.Errorf("%s dropped no device connection: the full disk refused nothing", n.Node)
		}
		// 50 messages/s: at most 50 were taken before the disk filled.
		if n.Acked <= 100 {
			t.Errorf("%s: only %d acknowledged of %d: publishing did not resume after the disk was freed", n.Node, n.Acked, n.Published)
		}
	}
}

// KubeEdge twin round trips through flapping links and a SIGKILLed node,
// in both modes: nothing is lost; every report reaches the cloud and every
// answer its device, once, on every node but the killed one (edge-0),
// where MQTT 3.1.1's QoS 1 between a device and its broker is at least
// once: at most one report and one answer again per device.
func TestTwinRoundTrips(t *testing.T) {
	const killed, devicesPerNode = "edge-0", 2
	for _, mode := range []string{"real", "deterministic"} {
		t.Run(mode, func(t *testing.T) {
			rep := run(t, "kubeedge-twins.yaml", func(s *simulator.Scenario) { s.Mode = mode })
			if !rep.OK() || rep.Total.Lost != 0 {
				t.Fatalf("failures: %v; lost %d", rep.Failures, rep.Total.Lost)
			}
			for _, n := range rep.Nodes {
				if n.RoundTrips == 0 || n.RoundTrips != n.Delivered {
					t.Errorf("%s: %d round trips for %d reports delivered", n.Node, n.RoundTrips, n.Delivered)
				}
				allowed := int64(0)
				if n.Node == killed {
					allowed = 2 * devicesPerNode
				}
				if n.Duplicated > allowed {
					t.Errorf("%s: %d duplicated, at most %d allowed", n.Node, n.Duplicated, allowed)
				}
			}
			if rep.Total.RoundTrips < 300 {
				t.Errorf("only %d round trips", rep.Total.RoundTrips)
			}
		})
	}
}

// The federated example on a faulty fleet (a SIGKILLed subprocess node,
// flapping links): the run writes the nodes' data files, the job completes
// its rounds above 90%, and the sensors lose nothing.
func TestFederatedScenario(t *testing.T) {
	rep := run(t, "federated.yaml", nil)
	if !rep.OK() {
		t.Fatalf("%v", rep.Failures)
	}
	fl := rep.Jobs[len(rep.Jobs)-1]
	if fl.Key != "FederatedLearningJob/default/sim-digits-fl" || fl.Phase != "Completed" || fl.Metrics["round"] != 20 || fl.Metrics["accuracy"] < 0.9 {
		t.Fatalf("job report %+v", fl)
	}
}

// The incremental example on a fleet whose camera node loses its link
// for 3 s: the run pushes the initial model, its camera sends drifting
// frames and its oracle labels the hard ones; the job completes its one
// cycle with the deployed model hot-swapped at the edge, hard examples
// sent up, and the sensors lose nothing.
func TestIncrementalScenario(t *testing.T) {
	rep := run(t, "incremental.yaml", nil)
	if !rep.OK() {
		t.Fatalf("%v", rep.Failures)
	}
	il := rep.Jobs[len(rep.Jobs)-1]
	if il.Key != "IncrementalLearningJob/default/sim-il" || il.Phase != "Completed" || il.Metrics["hotUpdates"] < 1 || il.Metrics["bytesUp"] <= 0 {
		t.Fatalf("job report %+v", il)
	}
}

// Deterministic mode runs the cloud's job control and the federated
// rounds themselves on the fake clock: the federated job completes its 20
// rounds through flapping links and a killed node, with updates that came
// too late counted, every worker ending Succeeded; the same seed gives a
// byte-identical report. With three of its six nodes killed at 3 s and
// the run ending at 12 s (no drain), its rounds cannot have their minimum
// of four from then on: the round in progress stays open and the job says
// Running, not Completed.
func TestDeterministicFederatedJob(t *testing.T) {
	load := func() *simulator.Scenario {
		s, err := simulator.Load("../examples/scenarios/federated-deterministic.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run := func(s *simulator.Scenario) (*simulator.Report, []byte) {
		rep, err := simulator.Run(context.Background(), s, simulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := rep.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		return rep, b.Bytes()
	}
	job := func(rep *simulator.Report) simulator.JobReport {
		for _, j := range rep.Jobs {
			if j.Key == "FederatedLearningJob/default/sim-digits-fl" {
				return j
			}
		}
		t.Fatalf("no federated job in %+v", rep.Jobs)
		return simulator.JobReport{}
	}
	rep, a := run(load())
	if !rep.OK() {
		t.Fatalf("failures: %v", rep.Failures)
	}
	fl := job(rep)
	if fl.Metrics["lateUpdates"] == 0 {
		t.Errorf("no late update through flapping links and a kill: %+v", fl.Metrics)
	}
	if len(fl.Workers) != 7 {
		t.Errorf("workers %v", fl.Workers)
	}
	for _, w := range fl.Workers {
		if !strings.HasSuffix(w, ":Succeeded") {
			t.Errorf("worker %s, want Succeeded", w)
		}
	}
	if _, b := run(load()); !bytes.Equal(a, b) {
		t.Fatal("the same seed gave two different reports")
	}

	s := load()
	s.Faults = []simulator.Fault{{At: simulator.Duration(3 * time.Second), Nodes: []string{"fl-0", "fl-1", "fl-2"}, Action: "kill"}}
	s.Drain, s.Expect = 0, simulator.Expect{}
	rep, _ = run(s)
	fl = job(rep)
	if fl.Phase != "Running" || fl.Metrics["round"] >= 20 || fl.Metrics["round"] < 1 {
		t.Fatalf("with 3 of a minimum of 4 clients: phase %s, metrics %v", fl.Phase, fl.Metrics)
	}
}

// The lifelong example on a fleet whose serving node loses its link for
// 3 s: the run writes the Dataset of three tasks, its sensor sends surveys
// of a fourth, which the first knowledge base flags unseen, and its oracle
// labels them; the job serves its second knowledge base at the edge, and
// the sensors lose nothing.
func TestLifelongScenario(t *testing.T) {
	rep := run(t, "lifelong.yaml", nil)
	if !rep.OK() {
		t.Fatalf("%v", rep.Failures)
	}
	ll := rep.Jobs[len(rep.Jobs)-1]
	if ll.Key != "LifelongLearningJob/default/sim-ll" || ll.Phase != "Running" || ll.Metrics["modelVersion"] < 2 {
		t.Fatalf("job report %+v", ll)
	}
}

// Must-show 1 of issue 19: the armv7 and the arm64 edge binaries, each
// under qemu-user (Debian's qemu-arm and qemu-aarch64) as an emulated
// board, beside a native node: their links down for 3 s while sensors and
// KubeEdge devices publish, then both agents SIGKILLed and restarted on
// their stores (Bolt on armv7, Badger on arm64): each board held messages
// on its disk while its link was down, and every acknowledged message
// arrives once, from each board. A message the kill caught between its
// delivery and its acknowledgement may arrive unacknowledged (at least
// once: the publisher never heard back); it still arrives only once.
func TestEmulatedBoardsLoseNothing(t *testing.T) {
	rep := runWith(t, "emulated-boards.yaml", nil, emulatedBinaries(t))
	if !rep.OK() || rep.Total.Lost != 0 || rep.Total.Duplicated != 0 {
		t.Fatalf("failures: %v", rep.Failures)
	}
	for i, arch := range []string{"armv7", "arm64"} {
		n := rep.Nodes[i]
		if n.Arch != arch || n.Acked < 50 || n.Delivered < n.Acked || n.BacklogPeak == 0 {
			t.Errorf("%s (%s): %d acknowledged, %d delivered, backlog peak %d: want it to have run, held messages while its link was down, delivered them all",
				n.Node, n.Arch, n.Acked, n.Delivered, n.BacklogPeak)
		}
	}
}
