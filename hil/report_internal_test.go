package hil

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-analyze/charts"

	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/simulator"
)

// The RSS line is null where the agent was down and carries the last
// value over a second the sampler skipped only while the agent was up on
// both sides.
func TestRSSSeries(t *testing.T) {
	null := charts.GetNullValue()
	mib := int64(1 << 20)
	for _, c := range []struct {
		name    string
		samples []Sample
		want    []float64
	}{
		{"every second", []Sample{{At: 0.1, Up: true, RSS: 10 * mib}, {At: 1.1, Up: true, RSS: 11 * mib}, {At: 2.2, Up: true, RSS: 12 * mib}},
			[]float64{10, 11, 12}},
		{"a skipped second while up", []Sample{{At: 0.9, Up: true, RSS: 10 * mib}, {At: 2.05, Up: true, RSS: 12 * mib}},
			[]float64{10, 10, 12}},
		{"down", []Sample{{At: 0.5, Up: true, RSS: 10 * mib}, {At: 1.5}, {At: 3.5, Up: true, RSS: 5 * mib}},
			[]float64{10, null, null, 5}},
		{"skipped before a down sample", []Sample{{At: 0.5, Up: true, RSS: 10 * mib}, {At: 2.5}}, []float64{10, null, null}},
		{"nothing after", []Sample{{At: 0.5, Up: true, RSS: 10 * mib}}, []float64{10, null}},
	} {
		got := rssSeries(c.samples, len(c.want))
		if !slices.EqualFunc(got, c.want, func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// summarize takes RSS, CPU and store figures from the samples and each
// sample's backlog from the run's second-by-second count; a restart
// nobody asked for fails the report, and the Markdown says so.
func TestReportSummaryAndMarkdown(t *testing.T) {
	b := BoardReport{Board: "pi-1", Arch: "armv7", Emulator: "qemu-arm", Supervisor: "process",
		Counts: simulator.NodeReport{Published: 10, Acked: 10, Delivered: 10, P50: 3 * time.Millisecond, P99: 1500 * time.Millisecond,
			Backlog: []int64{0, 7, 2}},
		Samples: []Sample{{At: 0.2, Up: true, RSS: 20 << 20, Store: 1 << 20}, {At: 1.2, Up: true, RSS: 25 << 20, CPU: 0.5, Store: 3 << 20},
			{At: 2.2, Up: true, RSS: 22 << 20, CPU: 0.1, Store: 2 << 20}},
		Restarts: 2, Unplanned: 1, Engine: "interpreter",
		Plugins: []plugins.CallTimes{{Plugin: "CrossEntropy", Size: 64, P50: 8 * time.Millisecond, P99: 9 * time.Millisecond}}}
	b.summarize()
	if b.RSSFirst != 20<<20 || b.RSSPeak != 25<<20 || b.StorePeak != 3<<20 || b.StoreEnd != 2<<20 ||
		math.Abs(b.CPUMean-0.3) > 1e-9 || b.CPUPeak != 0.5 || b.Samples[1].Backlog != 7 {
		t.Fatalf("summarized: %+v", b)
	}
	r := &Report{Scenario: "s", Sim: &simulator.Report{}, Boards: []BoardReport{b}}
	if r.OK() || !slices.Contains(r.Failures(), "pi-1: the agent restarted on its own (1 times)") {
		t.Fatalf("failures: %v", r.Failures())
	}
	var md strings.Builder
	if err := r.WriteMarkdown(&md, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"**FAILED**: pi-1: the agent restarted on its own (1 times)", "| architecture | armv7 (qemu-arm) |",
		"| latency p99 | 1.50 s |", "| RSS peak | 25.0 MiB |", "| CPU mean / peak (cores) | 0.30 / 0.50 |", "| CrossEntropy (64) | 8.0 ms / 9.0 ms |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("no %q in:\n%s", want, md.String())
		}
	}
	if strings.Contains(md.String(), "![") {
		t.Error("a chart linked when none was written")
	}
}
