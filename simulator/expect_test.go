package simulator

import (
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
)

// A job's expectations: phase, metrics within bounds, a metric not
// reported, a job not in the report; each failure names the job and what.
func TestJobExpectations(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	r := &Report{Jobs: []JobReport{{Key: "JointInferenceService/default/ji", Phase: "Running",
		Metrics: map[string]float64{"accuracy": 0.91, "uploadRatio": 0.4}}}}
	r.check(Expect{Jobs: []JobExpect{
		{Key: "JointInferenceService/default/ji", Phase: "Running", Metrics: map[string]Bound{
			"accuracy": {Min: f(0.9)}, "uploadRatio": {Max: f(0.35)}, "latencyP99": {Max: f(1)}}},
		{Key: "FederatedLearningJob/default/fl", Phase: "Completed"},
	}})
	want := []string{
		"job JointInferenceService/default/ji: metric latencyP99 not reported",
		"job JointInferenceService/default/ji: uploadRatio = 0.4, expected at most 0.35",
		"job FederatedLearningJob/default/fl: not in the report",
	}
	if strings.Join(r.Failures, "\n") != strings.Join(want, "\n") {
		t.Fatalf("failures:\n%s\nwant:\n%s", strings.Join(r.Failures, "\n"), strings.Join(want, "\n"))
	}
	ok := &Report{Jobs: r.Jobs}
	ok.check(Expect{Jobs: []JobExpect{{Key: "JointInferenceService/default/ji", Phase: "Running",
		Metrics: map[string]Bound{"accuracy": {Min: f(0.9), Max: f(1)}}}}})
	if !ok.OK() {
		t.Fatalf("failures: %v", ok.Failures)
	}
	if _, err := Parse([]byte("name: x\nmode: deterministic\nduration: 1s\nnodes: {count: 1}\nexpect: {jobs: [{key: a/b/c}]}\n")); err == nil ||
		!strings.Contains(err.Error(), "expect.jobs[0]: the scenario has no jobs files") {
		t.Fatalf("job expectations without jobs: %v", err)
	}
}

// A job is waited for until it ended and, in the phase expected, until
// the metrics it expects a minimum of reached it (a hot update counted a
// report after the job completed); a job that ended in another phase is
// not waited for longer.
func TestAJobSettlesWhenItsMinimaHold(t *testing.T) {
	one := 1.0
	e := JobExpect{Key: "IncrementalLearningJob/default/il", Phase: api.ConditionCompleted,
		Metrics: map[string]Bound{"hotUpdates": {Min: &one}, "badInputs": {Max: &one}}}
	for _, c := range []struct {
		phase   string
		metrics map[string]float64
		want    bool
	}{
		{api.ConditionRunning, map[string]float64{"hotUpdates": 1}, false},
		{api.ConditionCompleted, map[string]float64{"hotUpdates": 0}, false},
		{api.ConditionCompleted, nil, false},
		{api.ConditionCompleted, map[string]float64{"hotUpdates": 1, "badInputs": 5}, true},
		{api.ConditionFailed, nil, true},
	} {
		if got := e.settled(api.Status{Phase: c.phase, Metrics: c.metrics}); got != c.want {
			t.Errorf("%s %v: settled %v, want %v", c.phase, c.metrics, got, c.want)
		}
	}
}
