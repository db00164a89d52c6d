package hil

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/simulator"
)

// Report is what a run measured, board by board.
type Report struct {
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	// Sim is the simulator's report: the counts, latencies, faults as
	// injected, jobs and whether the scenario's expectations held.
	Sim    *simulator.Report `json:"run"`
	Boards []BoardReport     `json:"boards"`
}

// BoardReport is one board's part of a run.
type BoardReport struct {
	Board      string `json:"board"`
	Arch       string `json:"arch"`
	Emulator   string `json:"emulator,omitempty"`
	Supervisor string `json:"supervisor"`
	// Counts are the board's messages and latencies.
	Counts simulator.NodeReport `json:"counts"`
	// Restarts counts the agent's starts after the first; Unplanned
	// those the timeline did not ask for (a crash the supervisor
	// restarted).
	Restarts  int `json:"restarts"`
	Unplanned int `json:"unplannedRestarts"`
	// RSSFirst is the agent's memory at the first sample (before load
	// builds up); RSSPeak the most sampled.
	RSSFirst int64 `json:"rssFirstBytes"`
	RSSPeak  int64 `json:"rssPeakBytes"`
	// CPUMean and CPUPeak are in cores, over the samples while it ran.
	CPUMean float64 `json:"cpuMeanCores"`
	CPUPeak float64 `json:"cpuPeakCores"`
	// StorePeak and StoreEnd are its data directory's bytes on disk.
	StorePeak int64 `json:"storePeakBytes"`
	StoreEnd  int64 `json:"storeEndBytes"`
	// Engine is how the board runs WASM plugins (compiler, interpreter);
	// Plugins the built-ins' call times on it after the run.
	Engine  string              `json:"pluginEngine,omitempty"`
	Plugins []plugins.CallTimes `json:"pluginCalls,omitempty"`
	Samples []Sample            `json:"samples"`
}

// summarize fills the figures the samples give, and each sample's
// backlog from the run's second-by-second count.
func (b *BoardReport) summarize() {
	var cpu float64
	var n int
	for i := range b.Samples {
		s := &b.Samples[i]
		if sec := int(s.At); sec >= 0 && sec < len(b.Counts.Backlog) {
			s.Backlog = b.Counts.Backlog[sec]
		}
		if s.Up && b.RSSFirst == 0 {
			b.RSSFirst = s.RSS
		}
		b.RSSPeak = max(b.RSSPeak, s.RSS)
		b.StorePeak = max(b.StorePeak, s.Store)
		b.StoreEnd = s.Store
		if s.Up && i > 0 {
			cpu += s.CPU
			n++
			b.CPUPeak = max(b.CPUPeak, s.CPU)
		}
	}
	if n > 0 {
		b.CPUMean = cpu / float64(n)
	}
}

// Failures are the scenario's expectations that did not hold and each
// agent restart nobody asked for.
func (r *Report) Failures() []string {
	out := append([]string(nil), r.Sim.Failures...)
	for _, b := range r.Boards {
		if b.Unplanned > 0 {
			out = append(out, fmt.Sprintf("%s: the agent restarted on its own (%d times)", b.Board, b.Unplanned))
		}
	}
	return out
}

// OK reports whether every expectation held and no agent restarted on its
// own.
func (r *Report) OK() bool { return len(r.Failures()) == 0 }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadReport reads a report a run wrote as JSON.
func ReadReport(path string) (*Report, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: not a sedna hil report: %w", path, err)
	}
	if r.Sim == nil || len(r.Boards) == 0 {
		return nil, fmt.Errorf("%s: not a sedna hil report: no run or no boards", path)
	}
	return &r, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// WriteMarkdown writes the report for people: the boards side by side;
// chart, if not empty, is the chart's file name to link.
func (r *Report) WriteMarkdown(w io.Writer, chart string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Hardware in the loop: %s\n\n", r.Scenario)
	fmt.Fprintf(&b, "Run of %s, %d boards, %.1f s from the devices' start to the end of the drain.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), len(r.Boards), r.Sim.Elapsed.Seconds())
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintf(&b, "**FAILED**: %s.\n\n", strings.Join(f, "; "))
	} else {
		b.WriteString("Every expectation of the scenario held; no agent restarted on its own.\n\n")
	}
	header := func(first string) {
		b.WriteString("| " + first + " |")
		for _, br := range r.Boards {
			fmt.Fprintf(&b, " %s |", br.Board)
		}
		b.WriteString("\n|---|")
		for range r.Boards {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
	}
	row := func(name string, cell func(BoardReport) string) {
		b.WriteString("| " + name + " |")
		for _, br := range r.Boards {
			b.WriteString(" " + cell(br) + " |")
		}
		b.WriteString("\n")
	}
	header("board")
	row("architecture", func(br BoardReport) string {
		if br.Emulator != "" {
			return br.Arch + " (" + br.Emulator + ")"
		}
		return br.Arch
	})
	row("agent supervised by", func(br BoardReport) string { return br.Supervisor })
	row("messages published", func(br BoardReport) string { return fmt.Sprint(br.Counts.Published) })
	row("acknowledged by the board", func(br BoardReport) string { return fmt.Sprint(br.Counts.Acked) })
	row("delivered to the cloud", func(br BoardReport) string { return fmt.Sprint(br.Counts.Delivered) })
	row("lost", func(br BoardReport) string { return fmt.Sprint(br.Counts.Lost) })
	row("duplicated", func(br BoardReport) string { return fmt.Sprint(br.Counts.Duplicated) })
	row("latency p50", func(br BoardReport) string { return ms(br.Counts.P50) })
	row("latency p99", func(br BoardReport) string { return ms(br.Counts.P99) })
	row("latency max", func(br BoardReport) string { return ms(br.Counts.Max) })
	row("backlog peak (messages)", func(br BoardReport) string { return fmt.Sprint(br.Counts.BacklogPeak) })
	row("agent restarts (on its own)", func(br BoardReport) string { return fmt.Sprintf("%d (%d)", br.Restarts, br.Unplanned) })
	row("RSS at the start", func(br BoardReport) string { return mib(br.RSSFirst) })
	row("RSS peak", func(br BoardReport) string { return mib(br.RSSPeak) })
	row("CPU mean / peak (cores)", func(br BoardReport) string { return fmt.Sprintf("%.2f / %.2f", br.CPUMean, br.CPUPeak) })
	row("store peak / end", func(br BoardReport) string { return mib(br.StorePeak) + " / " + mib(br.StoreEnd) })
	b.WriteString("\nLatency runs from a device's publish on the board's broker to its arrival at the cloud broker; " +
		"an emulated board's RSS and CPU are its emulator's process, translation included.\n\n")
	if chart != "" {
		fmt.Fprintf(&b, "![RSS and backlog over time, per board](%s)\n\n", chart)
	}
	if len(r.Sim.Faults) > 0 {
		b.WriteString("## Timeline\n\n")
		for _, f := range r.Sim.Faults {
			fmt.Fprintf(&b, "- `%s`\n", strings.TrimSpace(f))
		}
		b.WriteString("\n")
	}
	var names []plugins.CallTimes
	for _, br := range r.Boards {
		if len(br.Plugins) > len(names) {
			names = br.Plugins
		}
	}
	if len(names) > 0 {
		b.WriteString("## Plugin call times on each board\n\n`sedna plugin bench` on the board after the run, p50 / p99 of each call " +
			"(a miner: a batch of that many samples; an aggregator: updates × weights).\n\n")
		header("plugin (size)")
		row("wazero", func(br BoardReport) string { return br.Engine })
		for _, p := range names {
			row(fmt.Sprintf("%s (%d)", p.Plugin, p.Size), func(br BoardReport) string {
				for _, q := range br.Plugins {
					if q.Plugin == p.Plugin {
						return ms(q.P50) + " / " + ms(q.P99)
					}
				}
				return "–"
			})
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
