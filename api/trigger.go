package api

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Operators are the trigger condition operators Sedna accepts, each word
// beside its symbols: gt >, ge >=, eq = ==, ne !=, le <=, lt <.
var Operators = []string{"gt", ">", "ge", ">=", "eq", "=", "==", "ne", "!=", "le", "<=", "lt", "<"}

// EqualTolerance is how close two numbers are to be equal in a trigger
// condition: Sedna's absolute 1e-6.
const EqualTolerance = 1e-6

// Compare evaluates value OP threshold as Sedna does: equality within
// EqualTolerance, and the strict comparisons false when equal within it.
func Compare(op string, value, threshold float64) (bool, error) {
	eq := math.Abs(value-threshold) < EqualTolerance
	switch op {
	case "gt", ">":
		return !eq && value > threshold, nil
	case "ge", ">=":
		return eq || value >= threshold, nil
	case "eq", "=", "==":
		return eq, nil
	case "ne", "!=":
		return !eq, nil
	case "le", "<=":
		return eq || value <= threshold, nil
	case "lt", "<":
		return !eq && value < threshold, nil
	}
	return false, fmt.Errorf("operator %q: want one of %s", op, strings.Join(Operators, " "))
}

// MetricRef is a trigger's metric: a name, and for a metric with one value
// per class an index ("precision_delta[1]").
type MetricRef struct {
	Name    string
	Index   int
	Indexed bool
}

func (m MetricRef) String() string {
	if m.Indexed {
		return fmt.Sprintf("%s[%d]", m.Name, m.Index)
	}
	return m.Name
}

// ParseMetric reads "name" or "name[i]" (i a non-negative integer; spaces
// around the name and the index are allowed). Sedna's controller panics on
// a negative index or a missing "]"; here they are errors.
func ParseMetric(s string) (MetricRef, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '[')
	if open < 0 {
		if s == "" || strings.ContainsAny(s, "]") {
			return MetricRef{}, fmt.Errorf("metric %q: want a name, or name[index]", s)
		}
		return MetricRef{Name: s}, nil
	}
	name := strings.TrimSpace(s[:open])
	if name == "" || !strings.HasSuffix(s, "]") || strings.Count(s, "[") != 1 || strings.Count(s, "]") != 1 {
		return MetricRef{}, fmt.Errorf("metric %q: want a name, or name[index]", s)
	}
	i, err := strconv.Atoi(strings.TrimSpace(s[open+1 : len(s)-1]))
	if err != nil || i < 0 {
		return MetricRef{}, fmt.Errorf("metric %q: the index is not a non-negative integer", s)
	}
	return MetricRef{Name: name, Index: i, Indexed: true}, nil
}

// Lookup finds the metric's value among values, each a list (one value,
// or one per class). A metric with an index takes that class's value;
// without one, the mean of the list (for a per-class metric, its macro
// average: Sedna reads a bare name as class 0 without a word).
func (m MetricRef) Lookup(values map[string][]float64) (float64, error) {
	vs, ok := values[m.Name]
	if !ok {
		names := make([]string, 0, len(values))
		for k := range values {
			names = append(names, k)
		}
		slices.Sort(names)
		return 0, fmt.Errorf("metric %s: not reported (reported: %s)", m, strings.Join(names, ", "))
	}
	switch {
	case m.Indexed && m.Index < len(vs):
		return vs[m.Index], nil
	case m.Indexed:
		return 0, fmt.Errorf("metric %s: only %d values", m, len(vs))
	case len(vs) == 0:
		return 0, fmt.Errorf("metric %s: no value", m)
	}
	var sum float64
	for _, v := range vs {
		sum += v
	}
	return sum / float64(len(vs)), nil
}

// Window is a daily window of a trigger's timer, in minutes after
// midnight: from Start to End inclusive, as Sedna compares "HH:MM". A
// window whose start is after its end wraps around midnight ("22:30" to
// "05:00").
type Window struct{ Start, End int }

// ParseWindow reads a timer.
func ParseWindow(t Timer) (Window, error) {
	start, ok := clock(t.Start, false)
	if !ok {
		return Window{}, fmt.Errorf("timer.start %q: want HH:MM, 00:00 to 23:59", t.Start)
	}
	end, ok := clock(t.End, true)
	if !ok {
		return Window{}, fmt.Errorf("timer.end %q: want HH:MM, 00:00 to 24:00", t.End)
	}
	return Window{Start: start, End: end}, nil
}

// Contains reports whether the minute of now (in now's location) is in
// the window.
func (w Window) Contains(now time.Time) bool {
	m := now.Hour()*60 + now.Minute()
	if w.Start <= w.End {
		return w.Start <= m && m <= w.End
	}
	return m >= w.Start || m <= w.End
}

// Check evaluates a trigger condition against reported values.
func (c TriggerCondition) Check(values map[string][]float64) (bool, error) {
	m, err := ParseMetric(c.Metric)
	if err != nil {
		return false, err
	}
	v, err := m.Lookup(values)
	if err != nil {
		return false, err
	}
	return Compare(c.Operator, v, c.Threshold)
}
