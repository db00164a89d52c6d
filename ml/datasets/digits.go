package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed" // the data files ship inside the binary
	"fmt"
	"strconv"
	"strings"
)

//go:embed data/digits.csv.gz
var digitsCSV []byte

// DigitNames are the class names of Digits: "0" to "9".
var DigitNames = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// Digits returns the 1,797 8×8 handwritten digits of the UCI "Optical
// Recognition of Handwritten Digits" test set (as shipped by scikit-learn),
// pixels scaled from 0..16 to [0, 1], in the file's order. Each call returns
// a fresh copy.
func Digits() (*Dataset, error) {
	zr, err := gzip.NewReader(bytes.NewReader(digitsCSV))
	if err != nil {
		return nil, fmt.Errorf("datasets: digits: %w", err)
	}
	d := &Dataset{Name: "digits", Cols: 64, Width: 8, Height: 8, Classes: append([]string(nil), DigitNames...)}
	sc := bufio.NewScanner(zr)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Split(sc.Text(), ",")
		if len(fields) != 65 {
			return nil, fmt.Errorf("datasets: digits: line %d has %d fields, want 65", line, len(fields))
		}
		for i, f := range fields {
			v, err := strconv.Atoi(f)
			if err != nil || v < 0 || (i < 64 && v > 16) || (i == 64 && v > 9) {
				return nil, fmt.Errorf("datasets: digits: line %d field %d: bad value %q", line, i+1, f)
			}
			if i < 64 {
				d.X = append(d.X, float32(v)/16)
			} else {
				d.Y = append(d.Y, v)
			}
		}
		d.Rows++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("datasets: digits: %w", err)
	}
	if err := zr.Close(); err != nil {
		return nil, fmt.Errorf("datasets: digits: %w", err)
	}
	return d, d.Validate()
}
