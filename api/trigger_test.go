package api

import (
	"strings"
	"testing"
	"time"
)

// TestCompare: every operator Sedna accepts, words and symbols alike, with
// equality within 1e-6 and the strict ones false at equality.
func TestCompare(t *testing.T) {
	near := 0.5 + EqualTolerance/2
	for _, tc := range []struct {
		ops      []string
		v, th    float64
		want     bool
		wantNear bool // value within the tolerance of the threshold
	}{
		{[]string{"gt", ">"}, 0.6, 0.5, true, false},
		{[]string{"ge", ">="}, 0.4, 0.5, false, true},
		{[]string{"eq", "=", "=="}, 0.6, 0.5, false, true},
		{[]string{"ne", "!="}, 0.6, 0.5, true, false},
		{[]string{"le", "<="}, 0.6, 0.5, false, true},
		{[]string{"lt", "<"}, 0.4, 0.5, true, false},
	} {
		for _, op := range tc.ops {
			if got, err := Compare(op, tc.v, tc.th); err != nil || got != tc.want {
				t.Errorf("%v %s %v: %v %v, want %v", tc.v, op, tc.th, got, err, tc.want)
			}
			if got, err := Compare(op, near, 0.5); err != nil || got != tc.wantNear {
				t.Errorf("%v %s 0.5 (within the tolerance): %v %v, want %v", near, op, got, err, tc.wantNear)
			}
		}
	}
	if _, err := Compare("gte", 1, 0); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Fatalf("unknown operator: %v", err)
	}
}

// TestParseMetric reads plain and indexed metrics and refuses, with an
// error, what makes Sedna's controller panic (a negative index, no "]").
func TestParseMetric(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MetricRef
		err  bool
	}{
		{in: "num_of_samples", want: MetricRef{Name: "num_of_samples"}},
		{in: "precision_delta[1]", want: MetricRef{Name: "precision_delta", Index: 1, Indexed: true}},
		{in: " recall_delta [ 0 ] ", want: MetricRef{Name: "recall_delta", Index: 0, Indexed: true}},
		{in: "precision_delta[-1]", err: true},
		{in: "precision_delta[1", err: true},
		{in: "precision_delta]", err: true},
		{in: "[1]", err: true},
		{in: "a[1][2]", err: true},
		{in: "a[x]", err: true},
		{in: "", err: true},
	} {
		got, err := ParseMetric(tc.in)
		if (err != nil) != tc.err || !tc.err && got != tc.want {
			t.Errorf("%q: %+v %v, want %+v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestConditionCheck looks metrics up as Sedna's deploy trigger feeds
// them (a list per metric, one value per class; a bare name is the
// list's mean) and says why it cannot.
func TestConditionCheck(t *testing.T) {
	values := map[string][]float64{"num_of_samples": {600}, "precision_delta": {0.1, 0.2}, "empty": {}}
	for _, tc := range []struct {
		c    TriggerCondition
		want bool
		err  string
	}{
		{c: TriggerCondition{Operator: "gt", Threshold: 500, Metric: "num_of_samples"}, want: true},
		{c: TriggerCondition{Operator: "gt", Threshold: 0.2, Metric: "precision_delta[1]"}, want: false},
		{c: TriggerCondition{Operator: "gt", Threshold: 0.1, Metric: "precision_delta[1]"}, want: true},
		{c: TriggerCondition{Operator: "ge", Threshold: 0.2, Metric: "precision_delta[1]"}, want: true},
		{c: TriggerCondition{Operator: ">", Threshold: 0.1, Metric: "precision_delta[2]"}, err: "only 2 values"},
		{c: TriggerCondition{Operator: ">", Threshold: 0.14, Metric: "precision_delta"}, want: true}, // the mean, 0.15
		{c: TriggerCondition{Operator: ">", Threshold: 0.16, Metric: "precision_delta"}, want: false},
		{c: TriggerCondition{Operator: ">", Threshold: 0.1, Metric: "empty"}, err: "no value"},
		{c: TriggerCondition{Operator: ">", Threshold: 0.1, Metric: "recall_delta[0]"}, err: "not reported"},
	} {
		got, err := tc.c.Check(values)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: %v, want an error with %q", tc.c, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %v %v, want %v", tc.c, got, err, tc.want)
		}
	}
}

// TestWindowContains: inclusive at both ends, to the minute, and wrapping
// around midnight when the start is after the end.
func TestWindowContains(t *testing.T) {
	at := func(hhmm string) time.Time {
		tm, err := time.Parse("15:04", hhmm)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Add(30 * time.Second)
	}
	for _, tc := range []struct {
		start, end string
		in, out    []string
	}{
		{"02:00", "04:00", []string{"02:00", "03:15", "04:00"}, []string{"01:59", "04:01", "23:00"}},
		{"22:30", "05:00", []string{"22:30", "23:59", "00:00", "04:59", "05:00"}, []string{"05:01", "12:00", "22:29"}},
		{"00:00", "24:00", []string{"00:00", "12:00", "23:59"}, nil},
		{"13:00", "13:00", []string{"13:00"}, []string{"12:59", "13:01"}},
	} {
		w, err := ParseWindow(Timer{Start: tc.start, End: tc.end})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tc.in {
			if !w.Contains(at(s)) {
				t.Errorf("%s-%s: %s not in", tc.start, tc.end, s)
			}
		}
		for _, s := range tc.out {
			if w.Contains(at(s)) {
				t.Errorf("%s-%s: %s in", tc.start, tc.end, s)
			}
		}
	}
	if _, err := ParseWindow(Timer{Start: "25:00", End: "01:00"}); err == nil {
		t.Fatal("25:00 accepted")
	}
}
