package datasets_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/datasets/internal/subset"
)

func TestDigits(t *testing.T) {
	d, err := datasets.Digits()
	if err != nil {
		t.Fatal(err)
	}
	if d.Rows != 1797 || d.Cols != 64 || d.Width != 8 || d.Height != 8 || len(d.Classes) != 10 {
		t.Fatalf("%d rows × %d cols, %d×%d, %d classes", d.Rows, d.Cols, d.Width, d.Height, len(d.Classes))
	}
	// The class counts of the UCI test set, as scikit-learn documents them.
	want := []int{178, 182, 177, 183, 181, 182, 181, 179, 174, 180}
	if got := d.ClassCounts(); !slices.Equal(got, want) {
		t.Fatalf("class counts %v, want %v", got, want)
	}
	// The first row of the file is a 0: 0,0,5,13,9,1,0,0,...
	first := d.Row(0)
	if d.Y[0] != 0 || first[2] != 5.0/16 || first[3] != 13.0/16 || first[5] != 1.0/16 {
		t.Fatalf("first row %v, label %d", first[:8], d.Y[0])
	}
	for i, v := range d.X {
		if v < 0 || v > 1 {
			t.Fatalf("value %d is %v, want [0, 1]", i, v)
		}
	}
	again, _ := datasets.Digits()
	again.X[0] = 7 // each call returns a fresh copy
	if d.X[0] == 7 {
		t.Fatal("Digits shares its slices between calls")
	}
}

func TestFashionSubset(t *testing.T) {
	train, test, err := datasets.FashionSubset()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d        *datasets.Dataset
		rows     int
		perClass int
	}{{train, 20000, 2000}, {test, 2000, 200}} {
		d := tc.d
		if d.Rows != tc.rows || d.Cols != 196 || d.Width != 14 || d.Height != 14 || d.Classes[9] != "Ankle boot" {
			t.Fatalf("%s: %d rows × %d cols, %d×%d", d.Name, d.Rows, d.Cols, d.Width, d.Height)
		}
		for c, n := range d.ClassCounts() {
			if n != tc.perClass {
				t.Fatalf("%s: class %d has %d images, want %d", d.Name, c, n, tc.perClass)
			}
		}
		var mean float64
		for _, v := range d.X {
			mean += float64(v)
		}
		// Fashion-MNIST's mean pixel is about 0.286; averaging keeps it.
		if mean /= float64(len(d.X)); math.Abs(mean-0.286) > 0.01 {
			t.Fatalf("%s: mean pixel %.3f", d.Name, mean)
		}
	}
}

// fashionDir is where the Debian package dataset-fashion-mnist puts the
// full data set; SEDNA_FASHION_MNIST_DIR overrides it.
func fashionDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SEDNA_FASHION_MNIST_DIR")
	if dir == "" {
		dir = datasets.FashionMNISTDir
	}
	if _, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Fatalf("Fashion-MNIST is missing (%v): run `apt-get install dataset-fashion-mnist` "+
			"(or set SEDNA_FASHION_MNIST_DIR to a directory with the four IDX .gz files)", err)
	}
	return dir
}

// One test reads the full data set (60,000 + 10,000 images, slow under the
// race detector) and checks both the loader and the shipped subset.
func TestLoadFashionMNIST(t *testing.T) {
	train, test, err := datasets.LoadFashionMNIST(fashionDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d         *datasets.Dataset
		rows, per int
		first     int
	}{{train, 60000, 6000, 9}, {test, 10000, 1000, 9}} {
		d := tc.d
		if d.Rows != tc.rows || d.Cols != 784 || d.Width != 28 || d.Height != 28 {
			t.Fatalf("%s: %d rows × %d cols, %d×%d", d.Name, d.Rows, d.Cols, d.Width, d.Height)
		}
		for c, n := range d.ClassCounts() {
			if n != tc.per {
				t.Fatalf("%s: class %d has %d images, want %d", d.Name, c, n, tc.per)
			}
		}
		if d.Y[0] != tc.first {
			t.Fatalf("%s: first label %d, want %d (%s)", d.Name, d.Y[0], tc.first, d.Classes[tc.first])
		}
	}
	if _, _, err := datasets.LoadFashionMNIST(t.TempDir()); err == nil {
		t.Fatal("an empty directory loaded")
	}

	// The shipped subset must be exactly what mkfashion produces from these
	// files, so anyone can check or regenerate it.
	t.Run("shipped subset regenerates", func(t *testing.T) {
		files, err := subset.FromBytes(toBytes(train.X), toLabels(train.Y), toBytes(test.X), toLabels(test.Y))
		if err != nil {
			t.Fatal(err)
		}
		for i, raw := range files {
			name := subset.Files[i]
			shipped, err := os.ReadFile(filepath.Join("data", name))
			if err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(shipped))
			if err != nil {
				t.Fatal(err)
			}
			content, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(content, raw) {
				t.Fatalf("%s: the shipped data differs from what mkfashion builds", name)
			}
			gz, err := subset.Gzip(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gz, shipped) {
				t.Fatalf("%s: same data, but this Go release compresses it to other bytes; "+
					"rerun `go run ./ml/datasets/internal/mkfashion` and commit the files", name)
			}
		}
	})
}

// toBytes undoes the loader's scaling: every pixel was a byte over 255.
func toBytes(x []float32) []byte {
	b := make([]byte, len(x))
	for i, v := range x {
		b[i] = byte(math.Round(float64(v) * 255))
	}
	return b
}

func toLabels(y []int) []byte {
	b := make([]byte, len(y))
	for i, v := range y {
		b[i] = byte(v)
	}
	return b
}

func TestSelectIsBalancedAndSeeded(t *testing.T) {
	labels := make([]byte, 500)
	for i := range labels {
		labels[i] = byte(i * 7 % 10)
	}
	a, err := subset.Select(labels, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := subset.Select(labels, 20, 1)
	c, _ := subset.Select(labels, 20, 2)
	if !slices.Equal(a, b) || slices.Equal(a, c) || !slices.IsSorted(a) || len(a) != 200 {
		t.Fatalf("selection not seeded, sorted and of 200: %d", len(a))
	}
	per := make([]int, 10)
	for _, i := range a {
		per[labels[i]]++
	}
	for c, n := range per {
		if n != 20 {
			t.Fatalf("class %d: %d images", c, n)
		}
	}
	if _, err := subset.Select(labels, 51, 1); err == nil {
		t.Fatal("selected more images of a class than it has")
	}
}

func TestPool2x2RoundsHalfUp(t *testing.T) {
	img := make([]byte, 28*28)
	img[0], img[1], img[28], img[29] = 1, 2, 2, 2 // mean 1.75 -> 2
	img[2], img[3], img[30], img[31] = 1, 1, 1, 2 // mean 1.25 -> 1
	img[4], img[5], img[32], img[33] = 1, 1, 2, 2 // mean 1.5 -> 2
	out := subset.Pool2x2(img, []int{0})
	if len(out) != 196 || out[0] != 2 || out[1] != 1 || out[2] != 2 || out[3] != 0 {
		t.Fatalf("pooled %v", out[:4])
	}
}

func TestDatasetOperations(t *testing.T) {
	d := &datasets.Dataset{
		Name: "toy", Rows: 8, Cols: 4, Width: 2, Height: 2, Classes: []string{"a", "b"},
		Y: []int{0, 0, 0, 0, 1, 1, 1, 1},
	}
	for i := range 32 {
		d.X = append(d.X, float32(i))
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	train, test, err := d.Split(0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(train.ClassCounts(), []int{3, 3}) || !slices.Equal(test.ClassCounts(), []int{1, 1}) {
		t.Fatalf("split counts %v / %v, want stratified 3+3 / 1+1", train.ClassCounts(), test.ClassCounts())
	}
	var seen []float32
	for _, part := range []*datasets.Dataset{train, test} {
		for r := 0; r < part.Rows; r++ {
			seen = append(seen, part.Row(r)[0])
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []float32{0, 4, 8, 12, 16, 20, 24, 28}) {
		t.Fatalf("split lost or repeated rows: %v", seen)
	}
	s := d.Shuffled(5)
	if slices.Equal(s.Y, d.Y) && slices.Equal(s.X, d.X) {
		t.Fatal("shuffle kept the order")
	}
	sub, err := d.Subset([]int{7, 0, 7})
	if err != nil || sub.Rows != 3 || sub.Row(0)[0] != 28 || sub.Row(1)[0] != 0 || sub.Y[0] != 1 {
		t.Fatalf("subset %v: %v", sub, err)
	}
	p, err := d.Pool(2)
	if err != nil || p.Cols != 1 || p.X[1] != (4+5+6+7)/4.0 {
		t.Fatalf("pool: %v %v", p, err)
	}
}

func TestDatasetRefusals(t *testing.T) {
	good := func() *datasets.Dataset {
		return &datasets.Dataset{Name: "t", Rows: 2, Cols: 1, X: []float32{0, 1}, Y: []int{0, 1}, Classes: []string{"a", "b"}}
	}
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"no rows", func() error { d := good(); d.Rows = 0; return d.Validate() }},
		{"short X", func() error { d := good(); d.X = d.X[:1]; return d.Validate() }},
		{"short Y", func() error { d := good(); d.Y = d.Y[:1]; return d.Validate() }},
		{"one class", func() error { d := good(); d.Classes = d.Classes[:1]; d.Y = []int{0, 0}; return d.Validate() }},
		{"label out of range", func() error { d := good(); d.Y[1] = 2; return d.Validate() }},
		{"NaN", func() error { d := good(); d.X[0] = float32(math.NaN()); return d.Validate() }},
		{"image shape", func() error { d := good(); d.Width, d.Height = 2, 2; return d.Validate() }},
		{"subset out of range", func() error { _, err := good().Subset([]int{2}); return err }},
		{"split fraction 0", func() error { _, _, err := good().Split(0, 1); return err }},
		{"split fraction 1", func() error { _, _, err := good().Split(1, 1); return err }},
		{"pool of non-images", func() error { _, err := good().Pool(2); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.err(); !errors.Is(err, datasets.ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDecodeIDXRefusals(t *testing.T) {
	good := subset.EncodeIDX([]int{2, 2}, []byte{1, 2, 3, 4})
	dims, data, err := datasets.DecodeIDX(bytes.NewReader(good))
	if err != nil || !slices.Equal(dims, []int{2, 2}) || !bytes.Equal(data, []byte{1, 2, 3, 4}) {
		t.Fatalf("decode %v %v %v", dims, data, err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"float type", []byte{0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"no dimensions", []byte{0, 0, 8, 0}},
		{"five dimensions", []byte{0, 0, 8, 5}},
		{"cut in the dimensions", good[:6]},
		{"cut in the data", good[:len(good)-1]},
		{"zero dimension", []byte{0, 0, 8, 1, 0, 0, 0, 0}},
		{"huge dimension", []byte{0, 0, 8, 2, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := datasets.DecodeIDX(bytes.NewReader(tc.b)); !errors.Is(err, datasets.ErrIDX) {
				t.Fatalf("error %v, want ErrIDX", err)
			}
		})
	}
}
