package simulator

import (
	"strings"
	"testing"
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
