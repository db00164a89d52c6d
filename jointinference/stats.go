package jointinference

import (
	"slices"
	"time"
)

// window keeps the last n latencies for percentiles.
type window struct {
	v    []time.Duration
	next int
	full bool
}

func newWindow(n int) *window { return &window{v: make([]time.Duration, n)} }

func (w *window) add(d time.Duration) {
	w.v[w.next] = d
	w.next++
	if w.next == len(w.v) {
		w.next, w.full = 0, true
	}
}

func (w *window) percentiles(ps ...float64) []float64 {
	n := w.next
	if w.full {
		n = len(w.v)
	}
	out := make([]float64, len(ps))
	if n == 0 {
		return out
	}
	s := slices.Clone(w.v[:n])
	slices.Sort(s)
	for i, p := range ps {
		out[i] = float64(s[int(p*float64(n-1))].Microseconds()) / 1000
	}
	return out
}

// edgeStats are the edge worker's numbers, kept by its loop alone.
type edgeStats struct {
	inferences, hard, offloaded, cloudAnswers int64
	fallbacks, lateReplies, errors            int64
	labeled, correct, edgeCorrect             int64
	bytesUp                                   int64
	edgeLat, cloudLat                         *window
	changed                                   bool
}

func newEdgeStats() *edgeStats {
	return &edgeStats{edgeLat: newWindow(4096), cloudLat: newWindow(4096)}
}

// metrics are the numbers as the job's status shows them: Sedna's edge
// worker's (inferences, hard examples, upload ratio) and ours.
func (s *edgeStats) metrics() map[string]float64 {
	m := map[string]float64{
		"inferences":       float64(s.inferences),
		"hardExamples":     float64(s.hard),
		"offloaded":        float64(s.offloaded),
		"cloudAnswers":     float64(s.cloudAnswers),
		"fallbacks":        float64(s.fallbacks),
		"lateReplies":      float64(s.lateReplies),
		"errors":           float64(s.errors),
		"bytesUp":          float64(s.bytesUp),
		"uploadRatio":      0,
		"labeled":          float64(s.labeled),
		"edgeLatencyP50ms": 0,
	}
	if s.inferences > 0 {
		m["uploadRatio"] = float64(s.offloaded) / float64(s.inferences)
	}
	if s.offloaded > 0 {
		m["bytesUpPerOffloaded"] = float64(s.bytesUp) / float64(s.offloaded)
	}
	if s.labeled > 0 {
		m["accuracy"] = float64(s.correct) / float64(s.labeled)
		m["edgeAccuracy"] = float64(s.edgeCorrect) / float64(s.labeled)
	}
	e := s.edgeLat.percentiles(0.5, 0.99)
	c := s.cloudLat.percentiles(0.5, 0.99)
	m["edgeLatencyP50ms"], m["edgeLatencyP99ms"] = e[0], e[1]
	m["offloadLatencyP50ms"], m["offloadLatencyP99ms"] = c[0], c[1]
	return m
}
