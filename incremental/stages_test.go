package incremental

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
)

// lines writes actions down, one line each, in order.
func lines(acts []Action) []string {
	var out []string
	for _, a := range acts {
		switch a.Kind {
		case Save:
			out = append(out, fmt.Sprintf("save cycle %d %s/%s", a.State.Cycle, a.State.Stage, a.State.Phase))
		case Start:
			out = append(out, fmt.Sprintf("start %s %s model %d serving %d samples %d", a.Stage, a.Attempt, a.Input.Model, a.Input.Serving, a.Input.Samples))
		case Report:
			l := fmt.Sprintf("%s %s", a.Cond.Stage, a.Cond.Type)
			if a.Cond.Reason != "" || a.Cond.Message != "" {
				l += fmt.Sprintf(" (%s: %s)", a.Cond.Reason, a.Cond.Message)
			}
			if a.Cond.Data != "" {
				l += " " + a.Cond.Data
			}
			out = append(out, l)
		}
	}
	return out
}

func expect(t *testing.T, step string, acts []Action, want ...string) {
	t.Helper()
	if got := lines(acts); !slices.Equal(got, want) {
		t.Fatalf("%s: actions\n  %s\nwant\n  %s", step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// rules are the helmet example's: train on more than 500 new samples,
// deploy when precision rises by more than 0.1.
func rules(t *testing.T) Rules {
	t.Helper()
	train, err := NewTrigger(&api.Trigger{CheckPeriodSeconds: 60, Condition: &api.TriggerCondition{Operator: ">", Threshold: 500, Metric: "num_of_samples"}})
	if err != nil {
		t.Fatal(err)
	}
	deploy, err := NewTrigger(&api.Trigger{Condition: &api.TriggerCondition{Operator: ">", Threshold: 0.1, Metric: "precision_delta[0]"}})
	if err != nil {
		t.Fatal(err)
	}
	return Rules{TrainTrigger: train, DeployTrigger: deploy}
}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// A whole cycle: the train trigger holds on the samples gained since the
// last training; each stage goes Waiting, Ready, Starting, Running,
// Completed, its input and output in the condition's data; an evaluation
// that clears the deploy trigger deploys; the next cycle counts samples
// from this cycle's training.
func TestACycleTrainsEvaluatesAndDeploys(t *testing.T) {
	c := NewController(rules(t), State{Serving: 1})
	expect(t, "400 samples", c.Samples(400, at(0)), "save cycle 1 Train/Waiting")
	expect(t, "600 samples, within the check period", c.Samples(600, at(30)), "save cycle 1 Train/Waiting")
	expect(t, "the next check", c.Tick(at(60)),
		"save cycle 1 Train/Starting",
		"Train Ready (TriggerHeld: num_of_samples = 600, needs > 500)",
		`Train Starting (: attempt 1-train-1) {"cycle":1,"model":1,"serving":1,"samples":600}`,
		"start Train 1-train-1 model 1 serving 1 samples 600")
	expect(t, "running", c.Started("1-train-1", at(61)),
		"save cycle 1 Train/Running",
		"Train Running (: attempt 1-train-1)")
	expect(t, "trained", c.Succeeded("1-train-1", Output{Model: 2}, at(90)),
		"save cycle 1 Eval/Starting",
		`Train Completed (: attempt 1-train-1) {"model":2}`,
		"Eval Waiting",
		"Eval Ready (: an evaluation follows each training)",
		`Eval Starting (: attempt 1-eval-1) {"cycle":1,"model":2,"serving":1}`,
		"start Eval 1-eval-1 model 2 serving 1 samples 0")
	out := Output{Eval: Metrics{"precision": {0.85, 0.9}}, Base: Metrics{"precision": {0.7, 0.9}}}
	expect(t, "evaluated: precision +0.15", c.Succeeded("1-eval-1", out, at(100)),
		"save cycle 1 Deploy/Starting",
		`Eval Completed (: attempt 1-eval-1) {"eval":{"precision":[0.85,0.9]},"base":{"precision":[0.7,0.9]}}`,
		"Deploy Waiting",
		"Deploy Ready (TriggerHeld: precision_delta[0] = 0.15, needs > 0.1)",
		`Deploy Starting (: attempt 1-deploy-1) {"cycle":1,"model":2,"serving":1}`,
		"start Deploy 1-deploy-1 model 2 serving 1 samples 0")
	expect(t, "deployed", c.Succeeded("1-deploy-1", Output{Model: 2}, at(101)),
		"save cycle 2 Train/Waiting",
		`Deploy Completed (: attempt 1-deploy-1) {"model":2}`,
		"Train Waiting (: cycle 2)")
	if st := c.State(); st.Serving != 2 || st.Deployed != 1 || st.TrainedAt != 600 {
		t.Fatalf("state after the cycle: %+v", st)
	}
	expect(t, "1,000 samples: 400 new", c.Samples(1000, at(200)), "save cycle 2 Train/Waiting")
	expect(t, "1,200 samples: 600 new", c.Samples(1200, at(260)),
		"save cycle 2 Train/Starting",
		"Train Ready (TriggerHeld: num_of_samples = 600, needs > 500)",
		`Train Starting (: attempt 2-train-1) {"cycle":2,"model":2,"serving":2,"samples":1200}`,
		"start Train 2-train-1 model 2 serving 2 samples 1200")
}

// A deploy trigger that does not hold: the old model serves on, the
// condition names the metric, its value and what it needed, and the next
// cycle waits for the train trigger.
func TestAModelThatIsNotBetterIsNotDeployed(t *testing.T) {
	c := NewController(rules(t), State{Cycle: 1, Stage: Eval, Phase: Running, Attempt: "1-eval-1", Tries: 1, Serving: 1, Candidate: 2})
	out := Output{Eval: Metrics{"precision": {0.72, 0.9}}, Base: Metrics{"precision": {0.7, 0.9}}}
	expect(t, "evaluated: precision +0.02", c.Succeeded("1-eval-1", out, at(0)),
		"save cycle 2 Train/Waiting",
		`Eval Completed (: attempt 1-eval-1) {"eval":{"precision":[0.72,0.9]},"base":{"precision":[0.7,0.9]}}`,
		"Deploy Waiting",
		"Deploy Completed (NotDeployed: precision_delta[0] = 0.02, needs > 0.1: model version 1 keeps serving)",
		"Train Waiting (: cycle 2)")
	if st := c.State(); st.Serving != 1 || st.Deployed != 0 {
		t.Fatalf("state: %+v", st)
	}
}

// Each condition says the cycle it is of, though the step that ends a
// cycle saves the next; before the first deploy, the initial model is the
// one that serves on.
func TestConditionsSayTheirCycle(t *testing.T) {
	c := NewController(rules(t), State{Cycle: 1, Stage: Eval, Phase: Running, Attempt: "1-eval-1", Tries: 1, Candidate: 1})
	out := Output{Eval: Metrics{"precision": {0.72, 0.9}}, Base: Metrics{"precision": {0.7, 0.9}}}
	var got []string
	for _, a := range c.Succeeded("1-eval-1", out, at(0)) {
		if a.Kind == Report {
			got = append(got, fmt.Sprintf("%d %s %s %s", a.Cycle, a.Cond.Stage, a.Cond.Type, a.Cond.Message))
		}
	}
	want := []string{"1 Eval Completed attempt 1-eval-1", "1 Deploy Waiting ",
		"1 Deploy Completed precision_delta[0] = 0.02, needs > 0.1: the initial model keeps serving", "2 Train Waiting cycle 2"}
	if !slices.Equal(got, want) {
		t.Fatalf("conditions\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Triggers: checkPeriodSeconds is honoured (a check within the period is
// none), a timer's window is ANDed with the condition, a stage with no
// condition starts at its first check in the window.
func TestTriggersHonourPeriodAndTimer(t *testing.T) {
	train, err := NewTrigger(&api.Trigger{CheckPeriodSeconds: 60, Timer: &api.Timer{Start: "02:00", End: "05:00"},
		Condition: &api.TriggerCondition{Operator: "ge", Threshold: 10, Metric: "num_of_samples"}})
	if err != nil {
		t.Fatal(err)
	}
	c := NewController(Rules{TrainTrigger: train}, State{Serving: 1})
	night := time.Date(2026, 12, 2, 1, 59, 0, 0, time.UTC)
	expect(t, "before the window", c.Samples(50, night), "save cycle 1 Train/Waiting")
	expect(t, "in the window, within the period of the last check", c.Tick(night.Add(30*time.Second)))
	expect(t, "in the window, a period later", c.Tick(night.Add(time.Minute)),
		"save cycle 1 Train/Starting",
		"Train Ready (TriggerHeld: num_of_samples = 50, needs ge 10)",
		`Train Starting (: attempt 1-train-1) {"cycle":1,"model":1,"serving":1,"samples":50}`,
		"start Train 1-train-1 model 1 serving 1 samples 50")

	free := NewController(Rules{}, State{Serving: 1})
	expect(t, "no condition", free.Tick(at(0)),
		"save cycle 1 Train/Starting",
		"Train Ready (TriggerHeld: no condition)",
		`Train Starting (: attempt 1-train-1) {"cycle":1,"model":1,"serving":1}`,
		"start Train 1-train-1 model 1 serving 1 samples 0")

	if _, err := NewTrigger(&api.Trigger{Condition: &api.TriggerCondition{Operator: "~", Metric: "num_of_samples"}}); err == nil {
		t.Fatal("an unknown operator was accepted")
	}
	if _, err := NewTrigger(&api.Trigger{Timer: &api.Timer{Start: "25:00", End: "02:00"}}); err == nil {
		t.Fatal("a timer at 25:00 was accepted")
	}
}

// Reports of another attempt (a worker of a stage that moved on, a report
// sent twice) change nothing: no stage runs twice for one cycle.
func TestStaleReportsAreIgnored(t *testing.T) {
	c := NewController(rules(t), State{Cycle: 3, Stage: Train, Phase: Running, Attempt: "3-train-2", Tries: 2, Serving: 4})
	expect(t, "an older attempt's success", c.Succeeded("3-train-1", Output{Model: 9}, at(0)))
	expect(t, "an older attempt's failure", c.Failed("3-train-1", "boom", at(0)))
	expect(t, "started again", c.Started("3-train-2", at(0)))
	c.Succeeded("3-train-2", Output{Model: 5}, at(1))
	expect(t, "the same success twice", c.Succeeded("3-train-2", Output{Model: 5}, at(2)))
	if st := c.State(); st.Stage != Eval || st.Candidate != 5 {
		t.Fatalf("state: %+v", st)
	}
}

// A failing stage is tried again with a new attempt, up to the rules'
// attempts; then the cycle ends, the samples it would have trained on
// still count, and the next cycle starts when the trigger holds again.
func TestAFailingStageIsRetriedThenTheCycleEnds(t *testing.T) {
	r := rules(t)
	r.Attempts = 2
	c := NewController(r, State{Serving: 1})
	c.Samples(600, at(0))
	expect(t, "first failure", c.Failed("1-train-1", "out of memory", at(10)),
		"save cycle 1 Train/Starting",
		"Train Failed (WorkerFailed: attempt 1-train-1: out of memory)",
		`Train Starting (: attempt 1-train-2) {"cycle":1,"model":1,"serving":1,"samples":600}`,
		"start Train 1-train-2 model 1 serving 1 samples 600")
	expect(t, "second failure", c.Failed("1-train-2", "out of memory", at(20)),
		"save cycle 2 Train/Waiting",
		"Train Failed (WorkerFailed: attempt 1-train-2: out of memory)",
		"Train Waiting (CycleFailed: cycle 2; 1 cycle in a row failed: the train trigger is checked again in 10s)")
	expect(t, "the trigger again, a period later", c.Tick(at(80)),
		"save cycle 2 Train/Starting",
		"Train Ready (TriggerHeld: num_of_samples = 600, needs > 500)",
		`Train Starting (: attempt 2-train-1) {"cycle":2,"model":1,"serving":1,"samples":600}`,
		"start Train 2-train-1 model 1 serving 1 samples 600")
}

// Cycles that fail in a row make the train trigger wait longer each time
// (10 s, 20 s, ... at most 10 minutes), so a worker that always fails
// does not start a cycle at every check; a training that succeeds ends
// the wait.
func TestFailedCyclesBackOff(t *testing.T) {
	r := rules(t)
	r.Attempts = 1
	r.TrainTrigger.Period = 0 // checked at every tick
	c := NewController(r, State{Serving: 1})
	c.Samples(600, at(0))
	now := 0
	for cycle, wait := range []int{10, 20, 40} {
		attempt := fmt.Sprintf("%d-train-1", cycle+1)
		expect(t, "failure of "+attempt, c.Failed(attempt, "exit 1", at(now)),
			fmt.Sprintf("save cycle %d Train/Waiting", cycle+2),
			fmt.Sprintf("Train Failed (WorkerFailed: attempt %s: exit 1)", attempt),
			fmt.Sprintf("Train Waiting (CycleFailed: cycle %d; %s in a row failed: the train trigger is checked again in %v)",
				cycle+2, plural(cycle+1, "cycle"), time.Duration(wait)*time.Second))
		if acts := c.Tick(at(now + wait - 1)); acts != nil {
			t.Fatalf("cycle %d started %d s after the failure, before its wait of %d s: %v", cycle+2, wait-1, wait, lines(acts))
		}
		now += wait
		if acts := c.Tick(at(now)); len(acts) == 0 || acts[len(acts)-1].Kind != Start {
			t.Fatalf("cycle %d did not start after its wait: %v", cycle+2, lines(acts))
		}
	}
	c.Started("4-train-1", at(now))
	c.Succeeded("4-train-1", Output{Model: 2}, at(now+1))
	if st := c.State(); st.Failures != 0 || !st.RetryAt.IsZero() {
		t.Fatalf("after a training that succeeded: %d failures, retry at %v", st.Failures, st.RetryAt)
	}
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 6: 320 * time.Second, 7: 10 * time.Minute, 40: 10 * time.Minute} {
		if got := FailedCycleBackoff(n); got != want {
			t.Errorf("FailedCycleBackoff(%d) = %v, want %v", n, got, want)
		}
	}
}

// After a restart the stage whose worker was asked to run is asked again
// with the same attempt (its worker gives the output it made, if any); a
// waiting stage checks its trigger.
func TestResumeAsksForTheSameAttempt(t *testing.T) {
	c := NewController(rules(t), State{Cycle: 2, Stage: Eval, Phase: Running, Attempt: "2-eval-1", Tries: 1, Serving: 3, Candidate: 4})
	expect(t, "resume in Eval", c.Resume(at(0)), "start Eval 2-eval-1 model 4 serving 3 samples 0")
	w := NewController(rules(t), State{Cycle: 2, Stage: Train, Phase: Waiting, Serving: 3, Samples: 900, TrainedAt: 300})
	expect(t, "resume while waiting", w.Resume(at(0)),
		"save cycle 2 Train/Starting",
		"Train Ready (TriggerHeld: num_of_samples = 600, needs > 500)",
		`Train Starting (: attempt 2-train-1) {"cycle":2,"model":3,"serving":3,"samples":900}`,
		"start Train 2-train-1 model 3 serving 3 samples 900")
}

// Optional stop conditions: a maximum of cycles, or a target the serving
// model reaches, end the job; without them it runs until deleted.
func TestStopConditionsEndTheJob(t *testing.T) {
	r := rules(t)
	r.MaxCycles = 1
	c := NewController(r, State{Cycle: 1, Stage: Eval, Phase: Running, Attempt: "1-eval-1", Tries: 1, Serving: 1, Candidate: 2})
	c.Succeeded("1-eval-1", Output{Eval: Metrics{"precision": {0.72}}, Base: Metrics{"precision": {0.7}}}, at(0))
	if st := c.State(); !st.Done || st.Reason != "1 cycles done" || st.Serving != 1 {
		t.Fatalf("after the last cycle: %+v", st)
	}
	expect(t, "done: ticks do nothing", c.Tick(at(100)))

	r = rules(t)
	r.Target = &api.TriggerCondition{Operator: ">=", Threshold: 0.9, Metric: "accuracy"}
	c = NewController(r, State{Cycle: 4, Stage: Eval, Phase: Running, Attempt: "4-eval-1", Tries: 1, Serving: 5, Candidate: 6})
	c.Succeeded("4-eval-1", Output{Eval: Metrics{"precision": {0.95}, "accuracy": {0.91}}, Base: Metrics{"precision": {0.8}, "accuracy": {0.85}}}, at(0))
	expect(t, "deployed: the target reached", c.Succeeded("4-deploy-1", Output{Model: 6}, at(1)),
		"save cycle 4 Deploy/Completed",
		`Deploy Completed (: attempt 4-deploy-1) {"model":6}`)
	if st := c.State(); !st.Done || st.Reason != "the serving model's accuracy reached >= 0.9" {
		t.Fatalf("after the target: %+v", st)
	}
}

// A reported condition reads in the status as Sedna's: type, status,
// stage, the stage's data as JSON, its time.
func TestConditionsReadAsSednas(t *testing.T) {
	c := NewController(Rules{}, State{Serving: 1})
	acts := c.Tick(at(0))
	var conds []api.Condition
	for _, a := range acts {
		if a.Kind == Report {
			conds = append(conds, a.Cond.API())
		}
	}
	want := api.Condition{Type: "Starting", Status: "True", Stage: "Train", Message: "attempt 1-train-1",
		Data: `{"cycle":1,"model":1,"serving":1}`, LastTransitionTime: at(0), LastHeartbeatTime: at(0)}
	if len(conds) != 2 || conds[1] != want {
		t.Fatalf("conditions %+v, want the second %+v", conds, want)
	}
}
