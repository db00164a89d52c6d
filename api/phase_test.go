package api

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func workersOf(kind string, roles ...string) []Worker {
	var ws []Worker
	for _, r := range roles {
		node := "edge-1"
		if r == "cloud" || r == "aggregation" {
			node = "cloud"
		}
		ws = append(ws, Worker{Role: r, Node: node})
	}
	return ws
}

func ws(role, node, phase string, restarts, failures int, lastErr string) WorkerStatus {
	return WorkerStatus{Role: role, Node: node, Phase: phase, Restarts: restarts, Failures: failures, LastError: lastErr}
}

// TestSettle derives each phase from the workers' reports and what the
// resource waits for: the phase, the one True phase condition with its
// reason and message, the other phase conditions False, the READY count.
func TestSettle(t *testing.T) {
	ji := workersOf(KindJointInferenceService, "edge", "cloud")
	fl := []Worker{{Role: "aggregation", Node: "cloud"}, {Role: "train-0", Node: "edge-1"}, {Role: "train-1", Node: "edge-2"}}
	il := []Worker{{Role: "train", Node: "cloud"}, {Role: "eval", Node: "cloud"}, {Role: "deploy", Node: "edge-1"}}
	cases := []struct {
		name      string
		o         Observed
		workers   []WorkerStatus
		phase     string
		condition string // the True condition, "" for none
		reason    string
		message   string // a substring of the message
		ready     int
		falses    []string // conditions that must be False
		stage     *StageStatus
		stageCond []Condition // a learning job's stage conditions, kept as they are
	}{
		{name: "waits for a reference",
			o:     Observed{Kind: KindJointInferenceService, Desired: ji, Waits: []string{`Model "little" (spec.edgeWorker.model.name)`}},
			phase: ConditionPending, condition: ConditionPending, reason: "Waiting", message: `waiting for Model "little"`},
		{name: "no worker reported yet",
			o:     Observed{Kind: KindJointInferenceService, Desired: ji},
			phase: ConditionPending, condition: ConditionPending, reason: "WorkersStarting", message: "worker edge on edge-1 (no report yet)"},
		{name: "a node offline",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji, Offline: []string{"edge-1"}},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, "")},
			phase:   ConditionPending, condition: ConditionPending, reason: "WorkersStarting", message: "worker edge on edge-1 (node offline)", ready: 1},
		{name: "every worker runs",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), ws("edge", "edge-1", WorkerRunning, 0, 0, "")},
			phase:   ConditionRunning, condition: ConditionRunning, reason: "WorkersRunning", message: "2 of 2 workers running", ready: 2},
		{name: "a worker restarting once is not running",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), {Role: "edge", Node: "edge-1", Phase: WorkerRestarting, Restarts: 1, Failures: 1, Message: "exit 1; restart in 1s"}},
			phase:   ConditionPending, condition: ConditionPending, reason: "WorkersStarting", message: "worker edge on edge-1 (restarting: exit 1; restart in 1s)", ready: 1},
		{name: "a crash loop, between restarts",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), ws("edge", "edge-1", WorkerCrashLoop, 4, 4, "model file missing")},
			phase:   PhaseCrashLoop, reason: "CrashLoopBackOff", message: "worker edge on edge-1 restarted 4 times: model file missing", ready: 1,
			falses: []string{ConditionRunning}},
		{name: "a crash loop, running again but not stable yet",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), ws("edge", "edge-1", WorkerRunning, 5, 5, "model file missing")},
			phase:   PhaseCrashLoop, reason: "CrashLoopBackOff", message: "restarted 5 times: model file missing", ready: 1,
			falses: []string{ConditionRunning}},
		{name: "a worker failed for good",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), ws("edge", "edge-1", WorkerFailed, 0, 0, "bad spec")},
			phase:   ConditionFailed, condition: ConditionFailed, reason: "WorkerFailed", message: "worker edge on edge-1 failed: bad spec", ready: 1},
		{name: "federated: the aggregator runs, a trainer is away",
			o:       Observed{Kind: KindFederatedLearningJob, Deciders: flDeciders, Desired: fl, Offline: []string{"edge-2"}},
			workers: []WorkerStatus{ws("aggregation", "cloud", WorkerRunning, 0, 0, ""), ws("train-0", "edge-1", WorkerRunning, 0, 0, "")},
			phase:   ConditionRunning, condition: ConditionRunning, reason: "WorkersRunning", message: "2 of 3 workers running; not running: worker train-1 on edge-2 (node offline)", ready: 2},
		{name: "federated: the aggregator succeeded, a trainer never came",
			o:       Observed{Kind: KindFederatedLearningJob, Deciders: flDeciders, Desired: fl},
			workers: []WorkerStatus{ws("aggregation", "cloud", WorkerSucceeded, 0, 0, ""), ws("train-0", "edge-1", WorkerRunning, 0, 0, "")},
			phase:   ConditionCompleted, condition: ConditionCompleted, reason: "WorkersSucceeded", ready: 1},
		{name: "federated: a trainer crash-loops, the job goes on",
			o:       Observed{Kind: KindFederatedLearningJob, Deciders: flDeciders, Desired: fl},
			workers: []WorkerStatus{ws("aggregation", "cloud", WorkerRunning, 0, 0, ""), ws("train-0", "edge-1", WorkerRunning, 0, 0, ""), ws("train-1", "edge-2", WorkerCrashLoop, 3, 3, "dataset unreadable")},
			phase:   PhaseCrashLoop, reason: "CrashLoopBackOff", message: "worker train-1 on edge-2 restarted 3 times: dataset unreadable", ready: 2},
		{name: "a report from another node does not count",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), ws("edge", "edge-9", WorkerRunning, 0, 0, "")},
			phase:   ConditionPending, condition: ConditionPending, reason: "WorkersStarting", message: "worker edge on edge-1 (no report yet)", ready: 1},
		{name: "completed, then a Dataset it names is deleted: still completed",
			o:       Observed{Kind: KindFederatedLearningJob, Deciders: flDeciders, Desired: fl, Waits: []string{`Dataset "d" (spec.trainingWorkers[0].dataset.name)`}},
			workers: []WorkerStatus{ws("aggregation", "cloud", WorkerSucceeded, 0, 0, "")},
			phase:   ConditionCompleted, condition: ConditionCompleted, reason: "WorkersSucceeded"},
		{name: "running, then a Model it names is deleted: pending, saying what it misses and that its workers run",
			o:       Observed{Kind: KindJointInferenceService, Desired: ji, Waits: []string{`Model "little" (spec.edgeWorker.model.name)`}},
			workers: []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), ws("edge", "edge-1", WorkerRunning, 0, 0, "")},
			phase:   ConditionPending, condition: ConditionPending, reason: "Waiting", message: `waiting for Model "little" (spec.edgeWorker.model.name) (2 of 2 workers running meanwhile)`, ready: 2},
		{name: "incremental: the inference worker runs, a stage's Running is not the job's",
			o:         Observed{Kind: KindIncrementalLearningJob, Deciders: ilDeciders, Desired: il},
			workers:   []WorkerStatus{ws("deploy", "edge-1", WorkerRunning, 0, 0, ""), ws("train", "cloud", WorkerRunning, 0, 0, ""), ws("eval", "cloud", WorkerRunning, 0, 0, "")},
			stage:     &StageStatus{Cycle: 2, Stage: "Train", Phase: "Running"},
			stageCond: []Condition{{Type: "Running", Status: StatusTrue, Stage: "Train"}, {Type: "Completed", Status: StatusTrue, Stage: "Deploy"}},
			phase:     ConditionRunning, condition: ConditionRunning, reason: "WorkersRunning", message: "3 of 3 workers running", ready: 3},
		{name: "incremental: a stop condition held",
			o:         Observed{Kind: KindIncrementalLearningJob, Deciders: ilDeciders, Desired: il},
			workers:   []WorkerStatus{ws("deploy", "edge-1", WorkerRunning, 0, 0, ""), ws("train", "cloud", WorkerRunning, 0, 0, ""), ws("eval", "cloud", WorkerRunning, 0, 0, "")},
			stage:     &StageStatus{Cycle: 3, Stage: "Deploy", Phase: "Completed", Done: true, Reason: "3 cycles run, the most the job allows"},
			stageCond: []Condition{{Type: "Completed", Status: StatusTrue, Stage: "Deploy"}},
			phase:     ConditionCompleted, condition: ConditionCompleted, reason: "StopConditionMet", message: "3 cycles run", ready: 3},
		{name: "incremental: stopped, but the inference worker crash-loops",
			o:       Observed{Kind: KindIncrementalLearningJob, Deciders: ilDeciders, Desired: il},
			workers: []WorkerStatus{ws("deploy", "edge-1", WorkerCrashLoop, 3, 3, "model unreadable"), ws("train", "cloud", WorkerRunning, 0, 0, ""), ws("eval", "cloud", WorkerRunning, 0, 0, "")},
			stage:   &StageStatus{Cycle: 3, Done: true, Reason: "3 cycles run"},
			phase:   PhaseCrashLoop, reason: "CrashLoopBackOff", message: "worker deploy on edge-1 restarted 3 times: model unreadable", ready: 2},
		{name: "a dataset not reported yet",
			o:     Observed{Kind: KindDataset},
			phase: ConditionPending, condition: ConditionPending, reason: "WaitingForNode", message: "report the dataset"},
		{name: "a dataset whose file is missing on its node",
			o:     Observed{Kind: KindDataset, Reported: true, Problem: "no file /data/a.txt on node edge-1"},
			phase: ConditionPending, condition: ConditionPending, reason: "FileNotRead", message: "no file /data/a.txt on node edge-1"},
		{name: "a dataset reported",
			o:     Observed{Kind: KindDataset, Reported: true, Describe: "40 samples on node edge-1"},
			phase: PhaseReady, condition: PhaseReady, reason: "Ready", message: "40 samples"},
		{name: "a model without a version",
			o:     Observed{Kind: KindModel, Waits: []string{"a version of the model"}},
			phase: ConditionPending, condition: ConditionPending, reason: "Waiting", message: "a version of the model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			st := Status{Workers: tc.workers, Stage: tc.stage}
			for _, c := range tc.stageCond {
				st.AddStageCondition(c)
			}
			st.Settle(tc.o, now)
			if st.Phase != tc.phase {
				t.Fatalf("phase %q, want %q (conditions %+v)", st.Phase, tc.phase, st.Conditions)
			}
			var trues, stages []Condition
			for _, c := range st.Conditions {
				if c.Stage != "" {
					stages = append(stages, c)
				} else if c.Status == StatusTrue {
					trues = append(trues, c)
				}
			}
			if !slices.Equal(stages, tc.stageCond) {
				t.Fatalf("stage conditions %+v, want them as they were: %+v", stages, tc.stageCond)
			}
			if tc.condition == "" {
				if len(trues) != 0 {
					t.Fatalf("conditions True: %+v, want none", trues)
				}
			} else if len(trues) != 1 || trues[0].Type != tc.condition {
				t.Fatalf("conditions True: %+v, want only %s", trues, tc.condition)
			}
			var found bool
			for _, c := range st.Conditions {
				if c.Reason == tc.reason && strings.Contains(c.Message, tc.message) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no condition with reason %q and a message with %q: %+v", tc.reason, tc.message, st.Conditions)
			}
			for _, typ := range tc.falses {
				if c, ok := st.Condition(typ); !ok || c.Status != StatusFalse {
					t.Fatalf("%s: %+v, want False", typ, c)
				}
			}
			if st.ReadyWorkers != tc.ready || st.DesiredWorkers != len(tc.o.Desired) {
				t.Fatalf("ready %d/%d, want %d/%d", st.ReadyWorkers, st.DesiredWorkers, tc.ready, len(tc.o.Desired))
			}
		})
	}
}

// TestSettleMovesOn follows one job through its life: each condition that
// no longer holds turns False (never Running=True beside Completed=True),
// a transition time moves only when its status changes, and the
// completion time is set once.
func TestSettleMovesOn(t *testing.T) {
	ji := workersOf(KindJointInferenceService, "edge", "cloud")
	o := Observed{Kind: KindJointInferenceService, Desired: ji}
	var st Status
	t0 := time.Unix(1000, 0)
	st.Settle(o, t0)
	st.Workers = []WorkerStatus{ws("cloud", "cloud", WorkerRunning, 0, 0, ""), ws("edge", "edge-1", WorkerRunning, 0, 0, "")}
	t1 := t0.Add(time.Second)
	st.Settle(o, t1)
	st.Settle(o, t1.Add(time.Second)) // again: nothing moves
	if c, _ := st.Condition(ConditionRunning); c.Status != StatusTrue || !c.LastTransitionTime.Equal(t1) {
		t.Fatalf("running: %+v, want True since %v", c, t1)
	}
	if c, _ := st.Condition(ConditionPending); c.Status != StatusFalse || !c.LastTransitionTime.Equal(t1) {
		t.Fatalf("pending: %+v, want False since %v", c, t1)
	}
	st.Workers[0].Phase, st.Workers[1].Phase = WorkerSucceeded, WorkerSucceeded
	t2 := t1.Add(time.Minute)
	st.Settle(o, t2)
	st.Settle(o, t2.Add(time.Minute))
	if c, _ := st.Condition(ConditionRunning); c.Status != StatusFalse {
		t.Fatalf("running beside completed: %+v", c)
	}
	if c, _ := st.Condition(ConditionCompleted); c.Status != StatusTrue || st.CompletionTime == nil || !st.CompletionTime.Equal(t2) {
		t.Fatalf("completed: %+v at %v, want True at %v", c, st.CompletionTime, t2)
	}
}

// TestWorkerStatusCrashLooping: CrashLoopFailures failures in a row make
// a worker crash-looping, whatever phase it reports between them, until
// it ends.
func TestWorkerStatusCrashLooping(t *testing.T) {
	for _, tc := range []struct {
		st   WorkerStatus
		want bool
	}{
		{WorkerStatus{Phase: WorkerCrashLoop, Failures: 2}, true},
		{WorkerStatus{Phase: WorkerRunning, Failures: 2}, true},
		{WorkerStatus{Phase: WorkerRunning, Failures: 1}, false},
		{WorkerStatus{Phase: WorkerRestarting, Failures: 1}, false},
		{WorkerStatus{Phase: WorkerStopped, Failures: 3}, false},
		{WorkerStatus{Phase: WorkerSucceeded, Failures: 3}, false},
	} {
		if got := tc.st.CrashLooping(); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.st, got, tc.want)
		}
	}
}

// flDeciders is the view of federated learning (federated.Paradigm): its
// aggregation worker decides.
var flDeciders = []string{"aggregation"}

// ilDeciders is incremental learning's view: its inference worker decides.
var ilDeciders = []string{"deploy"}

// TestStageConditionsAreKeptApart: a status keeps the newest
// StageConditionsKept stage conditions in order, and the job's own
// conditions (found and set by type) are never a stage's of the same
// type.
func TestStageConditionsAreKeptApart(t *testing.T) {
	now := time.Unix(1000, 0)
	var st Status
	st.SetCondition(ConditionRunning, StatusTrue, "WorkersRunning", "", now)
	for i := range StageConditionsKept + 5 {
		st.AddStageCondition(Condition{Type: ConditionRunning, Status: StatusTrue, Stage: "Train", Message: fmt.Sprint(i)})
	}
	if len(st.Conditions) != StageConditionsKept+1 {
		t.Fatalf("%d conditions, want %d stage conditions and the job's", len(st.Conditions), StageConditionsKept)
	}
	for i, c := range st.Conditions[1:] {
		if want := fmt.Sprint(i + 5); c.Message != want {
			t.Fatalf("stage condition %d says %q, want %q: the oldest go first", i, c.Message, want)
		}
	}
	st.SetCondition(ConditionRunning, StatusFalse, "Stopped", "", now)
	if c, _ := st.Condition(ConditionRunning); c.Stage != "" || c.Status != StatusFalse || c.Reason != "Stopped" {
		t.Fatalf("the job's Running condition: %+v", c)
	}
	for _, c := range st.Conditions[1:] {
		if c.Status != StatusTrue {
			t.Fatalf("setting the job's condition changed a stage's: %+v", c)
		}
	}
}
