package federated

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
)

// samples are a client's (or the validation set's) rows.
type samples struct {
	x    []float32
	y    []int
	cols int
	bad  int // lines that are not label,features...
}

func (s *samples) rows() int { return len(s.y) }

// add parses one line "label,f1,f2,...". A line that does not parse, or
// whose width differs from the first good line's, is counted as bad.
func (s *samples) add(line []byte) {
	label, x, ok := parseSample(line, s.x)
	switch {
	case !ok:
		if len(bytes.TrimSpace(line)) > 0 {
			s.bad++
		}
		return
	case s.cols > 0 && len(x)-len(s.x) != s.cols:
		s.bad++
		return
	}
	s.cols = len(x) - len(s.x)
	s.x = x
	s.y = append(s.y, label)
}

// parseSample parses one line "label,f1,f2,...", appending its features
// to dst. ok is false for a blank line and for one that is not a
// non-negative whole label followed by finite numbers; dst is then
// returned as it was.
func parseSample(line []byte, dst []float32) (label int, x []float32, ok bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return 0, dst, false
	}
	fields := bytes.Split(line, []byte{','})
	if len(fields) < 2 {
		return 0, dst, false
	}
	label, err := strconv.Atoi(string(bytes.TrimSpace(fields[0])))
	if err != nil || label < 0 {
		return 0, dst, false
	}
	x = dst
	for _, f := range fields[1:] {
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(f)), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, dst, false
		}
		x = append(x, float32(v))
	}
	return label, x, true
}

// keep drops rows whose label is not below classes, counting them as bad.
func (s *samples) keep(classes int) {
	j := 0
	for i, y := range s.y {
		if y >= classes {
			s.bad++
			continue
		}
		copy(s.x[j*s.cols:(j+1)*s.cols], s.x[i*s.cols:(i+1)*s.cols])
		s.y[j] = y
		j++
	}
	s.y, s.x = s.y[:j], s.x[:j*s.cols]
}

// readCSV reads a validation set: label,features... per line; a first
// line that is not numbers is a header.
func readCSV(open func(string) (*os.File, error), path string) (*samples, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &samples{}
	r := bufio.NewScanner(f)
	r.Buffer(make([]byte, 1<<20), 16<<20)
	first := true
	for r.Scan() {
		before := s.bad
		s.add(r.Bytes())
		if first && s.bad > before {
			s.bad = before // a header
		}
		first = false
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if s.rows() == 0 {
		return nil, fmt.Errorf("%s: no rows of label,features", path)
	}
	if s.bad > 0 {
		return nil, fmt.Errorf("%s: %d lines are not label,features with %d features", path, s.bad, s.cols)
	}
	return s, nil
}

func (s *samples) classes() int {
	n := 0
	for _, y := range s.y {
		n = max(n, y+1)
	}
	return max(n, 2)
}

// datasetReport is what a training worker tells the aggregation worker of
// its Dataset, so that a job with nothing else to size its model by can
// be sized by its data: the width and the labels of the samples, and how
// many there are, never a sample.
type datasetReport struct {
	Inputs  int   `msgpack:"i"` // features of each usable sample (0: none usable)
	Classes int   `msgpack:"k"` // the largest label of a usable sample, plus one
	Rows    int64 `msgpack:"n"` // usable samples
	Bad     int64 `msgpack:"b"` // lines that are not label,features, or not of the first usable line's width
	// Settled: the last look found no new sample (the Dataset's file is
	// read to its end), or the worker has looked long enough; the labels
	// are then all seen.
	Settled bool `msgpack:"s"`
}

// usable reports whether the Dataset tells the model's size.
func (d datasetReport) usable() bool { return d.Settled && d.Rows > 0 && d.Inputs > 0 && d.Classes > 0 }

// changed reports whether n tells the aggregation worker something d did
// not: a new width or label, that the Dataset settled or became usable.
// A count that only grows does not.
func (d datasetReport) changed(n datasetReport) bool {
	return d.Inputs != n.Inputs || d.Classes != n.Classes || d.Settled != n.Settled || (d.Rows > 0) != (n.Rows > 0) || (d.Bad > 0) != (n.Bad > 0)
}

// settleLooks bounds how many looks at a Dataset that keeps growing (local
// apps publish samples to it all the time) a worker takes before it says
// it has settled anyway.
const settleLooks = 10

// datasetShape follows a Dataset's samples as they are added and keeps its
// shape (a datasetReport), not the samples.
type datasetShape struct {
	rep     datasetReport
	after   uint64 // the last sample looked at
	looks   int    // looks that found samples, or lines that are not
	scratch []float32
}

// look reads the samples added since the last look, through read (the
// edge's Samples from a sample number on), and settles the shape once a
// look finds nothing new.
func (d *datasetShape) look(read func(after uint64, fn func(i uint64, line []byte) error) error) error {
	fresh := false
	err := read(d.after, func(i uint64, line []byte) error {
		d.after, fresh = i, true
		label, x, ok := parseSample(line, d.scratch[:0])
		d.scratch = x
		switch {
		case !ok && len(bytes.TrimSpace(line)) == 0:
		case !ok, d.rep.Inputs > 0 && len(x) != d.rep.Inputs:
			d.rep.Bad++
		default:
			d.rep.Inputs = len(x)
			d.rep.Classes = max(d.rep.Classes, label+1)
			d.rep.Rows++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if d.rep.Rows+d.rep.Bad == 0 {
		return nil // nothing yet: the file is not there, or not read yet
	}
	d.looks++
	d.rep.Settled = !fresh || d.looks >= settleLooks
	return nil
}

// report is the shape so far.
func (d *datasetShape) report() datasetReport { return d.rep }
