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
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	fields := bytes.Split(line, []byte{','})
	if len(fields) < 2 || (s.cols > 0 && len(fields)-1 != s.cols) {
		s.bad++
		return
	}
	label, err := strconv.Atoi(string(bytes.TrimSpace(fields[0])))
	if err != nil || label < 0 {
		s.bad++
		return
	}
	start := len(s.x)
	for _, f := range fields[1:] {
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(f)), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			s.x = s.x[:start]
			s.bad++
			return
		}
		s.x = append(s.x, float32(v))
	}
	s.cols = len(fields) - 1
	s.y = append(s.y, label)
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
