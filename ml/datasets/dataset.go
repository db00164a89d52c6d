package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// ErrInvalid is wrapped by every error about a data set's shape or
// contents; test with errors.Is.
var ErrInvalid = errors.New("invalid data set")

// Dataset is a labelled table of float32 features, row-major.
//
// Images keep their shape in Width and Height (Width×Height == Cols),
// pixels in reading order, scaled to [0, 1].
type Dataset struct {
	Name    string    // for logs: "digits", "fashion14-train", ...
	X       []float32 // Rows×Cols features, row-major
	Y       []int     // Rows labels in [0, len(Classes))
	Rows    int
	Cols    int
	Width   int      // image width, or 0 when the rows are not images
	Height  int      // image height, or 0
	Classes []string // class names, indexed by label
}

// Validate checks that the shapes agree, labels are in range and every
// feature is finite.
func (d *Dataset) Validate() error {
	switch {
	case d.Rows < 1 || d.Cols < 1:
		return fmt.Errorf("datasets: %s: %w: %d rows of %d columns", d.Name, ErrInvalid, d.Rows, d.Cols)
	case len(d.X) != d.Rows*d.Cols:
		return fmt.Errorf("datasets: %s: %w: %d values for %d×%d", d.Name, ErrInvalid, len(d.X), d.Rows, d.Cols)
	case len(d.Y) != d.Rows:
		return fmt.Errorf("datasets: %s: %w: %d labels for %d rows", d.Name, ErrInvalid, len(d.Y), d.Rows)
	case len(d.Classes) < 2:
		return fmt.Errorf("datasets: %s: %w: %d classes", d.Name, ErrInvalid, len(d.Classes))
	case d.Width*d.Height != 0 && d.Width*d.Height != d.Cols:
		return fmt.Errorf("datasets: %s: %w: image %d×%d for %d columns", d.Name, ErrInvalid, d.Width, d.Height, d.Cols)
	}
	for i, y := range d.Y {
		if y < 0 || y >= len(d.Classes) {
			return fmt.Errorf("datasets: %s: %w: label %d of row %d", d.Name, ErrInvalid, y, i)
		}
	}
	if i := firstNonFinite(d.X); i >= 0 {
		return fmt.Errorf("datasets: %s: %w: row %d column %d is %v", d.Name, ErrInvalid, i/d.Cols, i%d.Cols, d.X[i])
	}
	return nil
}

// firstNonFinite returns the index of the first NaN or infinity in x, or
// -1. Like bytesToUnit it scans through an array on its stack.
func firstNonFinite(x []float32) int {
	const chunk = 4096
	var buf [chunk]float32
	for lo := 0; lo < len(x); lo += chunk {
		n := copy(buf[:], x[lo:])
		for i := 0; i < n; i++ {
			if v := buf[i]; v != v || v > math.MaxFloat32 || v < -math.MaxFloat32 {
				return lo + i
			}
		}
	}
	return -1
}

// Row returns the features of row i (a view, not a copy).
func (d *Dataset) Row(i int) []float32 { return d.X[i*d.Cols : (i+1)*d.Cols] }

// ClassCounts returns the number of rows of each class.
func (d *Dataset) ClassCounts() []int {
	n := make([]int, len(d.Classes))
	for _, y := range d.Y {
		n[y]++
	}
	return n
}

// Subset returns a copy of the rows idx, in that order (repeats allowed).
func (d *Dataset) Subset(idx []int) (*Dataset, error) {
	s := d.empty(len(idx))
	for r, i := range idx {
		if i < 0 || i >= d.Rows {
			return nil, fmt.Errorf("datasets: %s: subset: %w: row %d of %d", d.Name, ErrInvalid, i, d.Rows)
		}
		copy(s.X[r*d.Cols:], d.Row(i))
		s.Y[r] = d.Y[i]
	}
	return s, nil
}

func (d *Dataset) empty(rows int) *Dataset {
	return &Dataset{
		Name: d.Name, X: make([]float32, rows*d.Cols), Y: make([]int, rows),
		Rows: rows, Cols: d.Cols, Width: d.Width, Height: d.Height,
		Classes: append([]string(nil), d.Classes...),
	}
}

// Shuffled returns a copy of d with its rows in an order drawn from seed.
func (d *Dataset) Shuffled(seed uint64) *Dataset {
	idx := Permutation(d.Rows, seed)
	s, _ := d.Subset(idx) // a permutation is always in range
	return s
}

// Split returns a stratified split: from each class, a share testFraction
// of its rows (rounded to nearest, chosen with seed) goes to test and the
// rest to train. Rows keep their relative order in both parts.
func (d *Dataset) Split(testFraction float64, seed uint64) (train, test *Dataset, err error) {
	if !(testFraction > 0 && testFraction < 1) {
		return nil, nil, fmt.Errorf("datasets: %s: split: %w: test fraction %v, want (0, 1)", d.Name, ErrInvalid, testFraction)
	}
	byClass := make([][]int, len(d.Classes))
	for i, y := range d.Y {
		byClass[y] = append(byClass[y], i)
	}
	isTest := make([]bool, d.Rows)
	rng := rand.New(rand.NewPCG(seed, 0x5b117))
	for _, rows := range byClass {
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		k := int(math.Round(testFraction * float64(len(rows))))
		for _, i := range rows[:k] {
			isTest[i] = true
		}
	}
	var tr, te []int
	for i, t := range isTest {
		if t {
			te = append(te, i)
		} else {
			tr = append(tr, i)
		}
	}
	if len(tr) == 0 || len(te) == 0 {
		return nil, nil, fmt.Errorf("datasets: %s: split: %w: %d train and %d test rows", d.Name, ErrInvalid, len(tr), len(te))
	}
	train, _ = d.Subset(tr)
	test, _ = d.Subset(te)
	return train, test, nil
}

// Pool returns the images of d downsampled by averaging k×k blocks (the
// last partial block of a row or column is averaged over the pixels it has).
func (d *Dataset) Pool(k int) (*Dataset, error) {
	if d.Width == 0 || d.Height == 0 {
		return nil, fmt.Errorf("datasets: %s: pool: %w: rows are not images", d.Name, ErrInvalid)
	}
	if k < 1 || k > d.Width || k > d.Height {
		return nil, fmt.Errorf("datasets: %s: pool: %w: block %d for %d×%d images", d.Name, ErrInvalid, k, d.Width, d.Height)
	}
	w, h := (d.Width+k-1)/k, (d.Height+k-1)/k
	p := &Dataset{
		Name: fmt.Sprintf("%s-pool%d", d.Name, k), X: make([]float32, d.Rows*w*h), Y: append([]int(nil), d.Y...),
		Rows: d.Rows, Cols: w * h, Width: w, Height: h, Classes: append([]string(nil), d.Classes...),
	}
	for r := 0; r < d.Rows; r++ {
		src, dst := d.Row(r), p.X[r*w*h:(r+1)*w*h]
		for by := 0; by < h; by++ {
			for bx := 0; bx < w; bx++ {
				var sum float32
				n := 0
				for y := by * k; y < min(by*k+k, d.Height); y++ {
					for x := bx * k; x < min(bx*k+k, d.Width); x++ {
						sum += src[y*d.Width+x]
						n++
					}
				}
				dst[by*w+bx] = sum / float32(n)
			}
		}
	}
	return p, nil
}

// Permutation returns 0..n-1 in an order drawn from seed.
func Permutation(n int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	return rng.Perm(n)
}
