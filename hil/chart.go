package hil

import (
	"fmt"
	"io"
	"strconv"

	"github.com/go-analyze/charts"
)

// WriteChart draws the boards' agent RSS (above) and backlog (below) over
// the run, second by second, one line per board, as SVG or PNG (format
// "svg" or "png"). A gap in a board's RSS line is a time its agent was
// down.
func (r *Report) WriteChart(w io.Writer, format string) error {
	var out string
	switch format {
	case "svg":
		out = charts.ChartOutputSVG
	case "png":
		out = charts.ChartOutputPNG
	default:
		return fmt.Errorf("chart: format %q: want svg or png", format)
	}
	secs := 0
	for _, b := range r.Boards {
		secs = max(secs, len(b.Counts.Backlog))
		for _, s := range b.Samples {
			secs = max(secs, int(s.At)+1)
		}
	}
	if secs == 0 {
		return fmt.Errorf("chart: the report has no samples")
	}
	labels := make([]string, secs)
	for i := range labels {
		labels[i] = strconv.Itoa(i) + " s"
	}
	var names []string
	rss := make([][]float64, len(r.Boards))
	backlog := make([][]float64, len(r.Boards))
	for i, b := range r.Boards {
		name := b.Board + " (" + b.Arch
		if b.Emulator != "" {
			name += ", emulated"
		}
		names = append(names, name+")")
		rss[i], backlog[i] = rssSeries(b.Samples, secs), make([]float64, secs)
		for k, v := range b.Counts.Backlog {
			backlog[i][k] = float64(v)
		}
	}
	const width, height = 900, 760
	p := charts.NewPainter(charts.PainterOptions{OutputFormat: out, Width: width, Height: height})
	p.FilledRect(0, 0, width, height, charts.ColorWhite, charts.ColorWhite, 0)
	cells, err := p.LayoutByRows().Row().Columns("rss").Row().Columns("backlog").Build()
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	for _, part := range []struct {
		cell, title string
		values      [][]float64
	}{
		{"rss", "Edge agent RSS per board (MiB; a gap: the agent was down)", rss},
		{"backlog", "Backlog per board: acknowledged by the board, not yet in the cloud (messages)", backlog},
	} {
		opt := charts.LineChartOption{
			Padding:    charts.NewBox(16, 16, 24, 16),
			Title:      charts.TitleOption{Text: part.title},
			XAxis:      charts.XAxisOption{Labels: labels, LabelCount: min(secs, 12)},
			YAxis:      []charts.YAxisOption{{Min: charts.Ptr(0.0)}},
			Legend:     charts.LegendOption{SeriesNames: names, Offset: charts.OffsetStr{Left: charts.PositionRight, Top: "26"}},
			SeriesList: charts.NewSeriesListLine(part.values),
			Symbol:     charts.Symbol{Shape: charts.SymbolNone},
		}
		if err := cells[part.cell].LineChart(opt); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	b, err := p.Bytes()
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// rssSeries is the agent's RSS in MiB second by second, null (a gap)
// where the agent was down. A second with no sample of its own (a board's
// sampler is a little slower than a second) keeps the last value while the
// agent was up on both sides.
func rssSeries(samples []Sample, secs int) []float64 {
	out := make([]float64, secs)
	up := make([]int8, secs) // 0 no sample, 1 up, -1 down
	for k := range out {
		out[k] = charts.GetNullValue()
	}
	for _, s := range samples {
		if s.At < 0 || int(s.At) >= secs {
			continue
		}
		k := int(s.At)
		if s.Up {
			out[k], up[k] = float64(s.RSS)/(1<<20), 1
		} else {
			up[k] = -1
		}
	}
	for k := 1; k < secs; k++ {
		if up[k] == 0 && up[k-1] == 1 && nextState(up[k:]) == 1 {
			out[k], up[k] = out[k-1], 1
		}
	}
	return out
}

// nextState is the first state in s that is not "no sample".
func nextState(s []int8) int8 {
	for _, v := range s {
		if v != 0 {
			return v
		}
	}
	return 0
}
