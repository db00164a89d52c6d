package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sedna-go/sedna/api"
)

// NodeReport counts one node's messages.
type NodeReport struct {
	Node string `json:"node"`
	// Arch is an emulated node's architecture (arm64, armv7); empty for
	// the host's.
	Arch       string `json:"arch,omitempty"`
	Published  int64  `json:"published"`  // sent by the node's devices
	Acked      int64  `json:"acked"`      // of those, acknowledged by the node (QoS 1)
	Delivered  int64  `json:"delivered"`  // distinct messages the counter received
	Lost       int64  `json:"lost"`       // acknowledged (QoS 1) or sent (QoS 0) and never received
	Duplicated int64  `json:"duplicated"` // acknowledged (or sent at QoS 0) and received more than once
	// Resent counts the extra copies of messages whose publish was never
	// acknowledged to their device (a kill swallowed the PUBACK): QoS 1
	// between a device and its broker is at least once, and the device
	// sends them again. Not a broken promise; reported beside.
	Resent      int64 `json:"resentUnacknowledged,omitempty"`
	BacklogPeak int64 `json:"backlogPeak"` // most acknowledged messages not yet received at once
	// Dropped counts device connections the node dropped while it ran: an
	// MQTT 3.1.1 broker's only way to refuse a publish (a full disk or
	// queue); the device sends it again when it reconnects.
	Dropped int64 `json:"droppedConnections"`
	// RoundTrips counts twin reports whose desired state came back to
	// their device; a delta the cloud sent that never arrived is counted
	// lost, one that arrived twice duplicated.
	RoundTrips int64 `json:"twinRoundTrips,omitempty"`
	// P50, P99 and Max are the node's latencies, from a device's publish
	// to the counter's receipt on the cloud broker.
	P50 time.Duration `json:"p50Nanos,omitempty"`
	P99 time.Duration `json:"p99Nanos,omitempty"`
	Max time.Duration `json:"maxNanos,omitempty"`
	// Backlog is BacklogPeak second by second from the start (real mode).
	Backlog []int64 `json:"backlogPerSecond,omitempty"`
}

// JobReport is a resource applied by the scenario, as the control plane
// saw it at the end.
type JobReport struct {
	Key     string   `json:"key"`
	Applied string   `json:"applied"` // created, or rejected: why
	Phase   string   `json:"phase"`
	Pending []string `json:"pending,omitempty"`
	Workers []string `json:"workers,omitempty"` // role@node: phase
	// Metrics are what the job's status reports (accuracy, counts, ...).
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// fill takes what a resource's status says at the end.
func (j *JobReport) fill(st api.Status) {
	j.Phase, j.Pending, j.Metrics = st.Phase, st.Pending, st.Metrics
	for _, w := range st.Workers {
		j.Workers = append(j.Workers, fmt.Sprintf("%s@%s:%s", w.Role, w.Node, w.Phase))
	}
}

// Report is what a run measured, and whether its expectations held.
type Report struct {
	Scenario string        `json:"scenario"`
	Mode     string        `json:"mode"`
	Seed     uint64        `json:"seed"`
	Elapsed  time.Duration `json:"elapsedNanos"` // on the fake clock in deterministic mode
	Nodes    []NodeReport  `json:"nodes"`
	Total    NodeReport    `json:"total"`
	// ByKind counts per device kind (its Node field names the kind).
	ByKind   map[string]NodeReport `json:"byKind"`
	P50      time.Duration         `json:"p50Nanos"`
	P99      time.Duration         `json:"p99Nanos"`
	Max      time.Duration         `json:"maxNanos"`
	Faults   []string              `json:"faults"` // what was injected, when
	Jobs     []JobReport           `json:"jobs,omitempty"`
	Failures []string              `json:"failures"` // expectations that did not hold
	// RoundTripP50 and RoundTripP99 are twin round trips' times, from the
	// device's report to its delta's arrival.
	RoundTripP50 time.Duration `json:"twinRoundTripP50Nanos,omitempty"`
	RoundTripP99 time.Duration `json:"twinRoundTripP99Nanos,omitempty"`
	rtts         []time.Duration
}

// OK reports whether every expectation held.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

func (r *Report) total() {
	var t NodeReport
	t.Node = "total"
	for _, n := range r.Nodes {
		t.Published += n.Published
		t.Acked += n.Acked
		t.Delivered += n.Delivered
		t.Lost += n.Lost
		t.Duplicated += n.Duplicated
		t.Resent += n.Resent
		t.BacklogPeak += n.BacklogPeak
		t.Dropped += n.Dropped
		t.RoundTrips += n.RoundTrips
	}
	r.Total = t
	sort.Slice(r.rtts, func(i, j int) bool { return r.rtts[i] < r.rtts[j] })
	r.RoundTripP50, r.RoundTripP99 = percentile(r.rtts, 0.5), percentile(r.rtts, 0.99)
}

// outcome is what became of one message of a device.
type outcome struct {
	sent, acked bool
	seen        int32
	lat         time.Duration
	// A twin device's round trip: the cloud sent the delta (acknowledged
	// by the cloud broker), the device received it so many times, after
	// rtt.
	deltaSent bool
	deltaSeen int32
	rtt       time.Duration
}

// tally counts n messages of a device of kind into its node's report and
// the report's by-kind counts, and collects their latencies. A message is
// promised when it was acknowledged (QoS 1) or sent (QoS 0).
func (r *Report) tally(nr *NodeReport, kind string, qos int, n int64, at func(seq int64) outcome, lats *[]time.Duration) {
	var pub, ack, del, lost, dup, resent int64
	for seq := int64(0); seq < n; seq++ {
		o := at(seq)
		if o.sent {
			pub++
		}
		if o.acked {
			ack++
		}
		if o.seen > 0 {
			del++
			*lats = append(*lats, o.lat)
		}
		if o.seen > 1 {
			if o.acked || qos == 0 && o.sent {
				dup += int64(o.seen - 1)
			} else {
				resent += int64(o.seen - 1)
			}
		}
		if (o.acked || qos == 0 && o.sent) && o.seen == 0 {
			lost++
		}
		if o.deltaSent && o.deltaSeen == 0 {
			lost++
		}
		if o.deltaSeen > 0 {
			nr.RoundTrips++
			r.rtts = append(r.rtts, o.rtt)
		}
		if o.deltaSeen > 1 {
			dup += int64(o.deltaSeen - 1)
		}
	}
	nr.Published += pub
	nr.Acked += ack
	nr.Delivered += del
	nr.Lost += lost
	nr.Duplicated += dup
	nr.Resent += resent
	r.addKind(kind, pub, ack, del, lost, dup)
}

// addKind counts one device's messages under its kind.
func (r *Report) addKind(kind string, published, acked, delivered, lost, dup int64) {
	if r.ByKind == nil {
		r.ByKind = map[string]NodeReport{}
	}
	k := r.ByKind[kind]
	k.Node = kind
	k.Published += published
	k.Acked += acked
	k.Delivered += delivered
	k.Lost += lost
	k.Duplicated += dup
	r.ByKind[kind] = k
}

func (r *Report) check(e Expect) {
	if e.Lost != nil && r.Total.Lost != *e.Lost {
		r.Failures = append(r.Failures, fmt.Sprintf("expected %d lost, counted %d", *e.Lost, r.Total.Lost))
	}
	if e.Duplicated != nil && r.Total.Duplicated != *e.Duplicated {
		r.Failures = append(r.Failures, fmt.Sprintf("expected %d duplicated, counted %d", *e.Duplicated, r.Total.Duplicated))
	}
	if e.MinLost != nil && r.Total.Lost < *e.MinLost {
		r.Failures = append(r.Failures, fmt.Sprintf("expected at least %d lost (a negative control), counted %d: the counter did not see the loss", *e.MinLost, r.Total.Lost))
	}
	for _, je := range e.Jobs {
		r.checkJob(je)
	}
	if e.MaxP99 > 0 && r.P99 > time.Duration(e.MaxP99) {
		r.Failures = append(r.Failures, fmt.Sprintf("expected p99 latency at most %v, measured %v", time.Duration(e.MaxP99), r.P99))
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func (r *Report) latencies(l []time.Duration) {
	r.P50, r.P99, r.Max = latencies(l)
}

// latencies sorts l and returns its median, 99th percentile and maximum.
func latencies(l []time.Duration) (p50, p99, maxi time.Duration) {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) > 0 {
		maxi = l[len(l)-1]
	}
	return percentile(l, 0.5), percentile(l, 0.99), maxi
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteSummary writes the report for a person.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "scenario %s (%s mode, seed %d), %v\n", r.Scenario, r.Mode, r.Seed, r.Elapsed.Round(time.Millisecond))
	for _, f := range r.Faults {
		fmt.Fprintf(w, "  fault: %s\n", f)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tpublished\tacked\tdelivered\tlost\tduplicated\tbacklog peak\tdropped conns\t")
	for _, n := range append(append([]NodeReport{}, r.Nodes...), r.Total) {
		name := n.Node
		if n.Arch != "" {
			name += " (" + n.Arch + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, n.Published, n.Acked, n.Delivered, n.Lost, n.Duplicated, n.BacklogPeak, n.Dropped)
	}
	tw.Flush()
	if r.Total.Resent > 0 {
		fmt.Fprintf(w, "  %d extra copies of messages whose PUBACK a kill swallowed, sent again by their devices (QoS 1 is at least once)\n", r.Total.Resent)
	}
	for _, j := range r.Jobs {
		fmt.Fprintf(w, "  job %s: %s, phase %s", j.Key, j.Applied, j.Phase)
		if len(j.Workers) > 0 {
			fmt.Fprintf(w, ", workers %s", strings.Join(j.Workers, " "))
		}
		if len(j.Pending) > 0 {
			fmt.Fprintf(w, ", waiting for %s", strings.Join(j.Pending, "; "))
		}
		if len(j.Metrics) > 0 {
			names := make([]string, 0, len(j.Metrics))
			for k := range j.Metrics {
				names = append(names, k)
			}
			sort.Strings(names)
			for i, k := range names {
				names[i] = fmt.Sprintf("%s=%g", k, j.Metrics[k])
			}
			fmt.Fprintf(w, ", metrics %s", strings.Join(names, " "))
		}
		fmt.Fprintln(w)
	}
	if len(r.ByKind) > 1 {
		var parts []string
		for _, k := range sortedKinds(r.ByKind) {
			c := r.ByKind[k]
			parts = append(parts, fmt.Sprintf("%s %d/%d (lost %d)", k, c.Delivered, c.Acked, c.Lost))
		}
		fmt.Fprintf(w, "delivered/acknowledged by kind: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "latency p50 %v, p99 %v, max %v\n", r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	if r.Total.RoundTrips > 0 {
		fmt.Fprintf(w, "twin round trips %d: p50 %v, p99 %v\n", r.Total.RoundTrips, r.RoundTripP50.Round(time.Microsecond), r.RoundTripP99.Round(time.Microsecond))
	}
	if r.OK() {
		fmt.Fprintln(w, "every expectation held")
		return
	}
	fmt.Fprintf(w, "FAILED: %s\n", strings.Join(r.Failures, "; "))
}

func sortedKinds(m map[string]NodeReport) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkJob checks what a scenario expects of one job.
func (r *Report) checkJob(e JobExpect) {
	var j *JobReport
	for i := range r.Jobs {
		if r.Jobs[i].Key == e.Key {
			j = &r.Jobs[i]
		}
	}
	if j == nil {
		r.Failures = append(r.Failures, fmt.Sprintf("job %s: not in the report", e.Key))
		return
	}
	if e.Phase != "" && j.Phase != e.Phase {
		r.Failures = append(r.Failures, fmt.Sprintf("job %s: expected phase %s, found %q", e.Key, e.Phase, j.Phase))
	}
	names := make([]string, 0, len(e.Metrics))
	for k := range e.Metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b := e.Metrics[k]
		v, ok := j.Metrics[k]
		switch {
		case !ok:
			r.Failures = append(r.Failures, fmt.Sprintf("job %s: metric %s not reported", e.Key, k))
		case b.Min != nil && v < *b.Min:
			r.Failures = append(r.Failures, fmt.Sprintf("job %s: %s = %g, expected at least %g", e.Key, k, v, *b.Min))
		case b.Max != nil && v > *b.Max:
			r.Failures = append(r.Failures, fmt.Sprintf("job %s: %s = %g, expected at most %g", e.Key, k, v, *b.Max))
		}
	}
}
