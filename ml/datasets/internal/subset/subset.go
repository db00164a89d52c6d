package subset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"github.com/sedna-go/sedna/ml/datasets"
)

// The fixed choices that make the subset reproducible.
const (
	TrainPerClass = 2000 // of the 6,000 training images of each class
	TestPerClass  = 200  // of the 1,000 test images of each class
	TrainSeed     = 1
	TestSeed      = 2
	Side          = 14 // 28 / 2
)

// Files are the names of the shipped files, in the order Build returns them.
var Files = []string{
	"fashion14-train-images-idx3-ubyte.gz",
	"fashion14-train-labels-idx1-ubyte.gz",
	"fashion14-test-images-idx3-ubyte.gz",
	"fashion14-test-labels-idx1-ubyte.gz",
}

// Select returns, in ascending order, the indices of perClass images of
// each of the 10 classes: one value is drawn from PCG(seed, 0) for each
// image in file order, and each class keeps the perClass images with the
// smallest values (equal values, which do not occur, would go to the lower
// index). The PCG generator is fully specified, so the choice does not
// depend on the Go release.
func Select(labels []byte, perClass int, seed uint64) ([]int, error) {
	pcg := rand.NewPCG(seed, 0)
	keys := make([]uint64, len(labels))
	byClass := make([][]int, 10)
	for i, l := range labels {
		keys[i] = pcg.Uint64()
		if l > 9 {
			return nil, fmt.Errorf("subset: label %d of image %d", l, i)
		}
		byClass[l] = append(byClass[l], i)
	}
	var out []int
	for c, idx := range byClass {
		if len(idx) < perClass {
			return nil, fmt.Errorf("subset: class %d has %d images, want %d", c, len(idx), perClass)
		}
		slices.SortFunc(idx, func(a, b int) int {
			if keys[a] != keys[b] {
				if keys[a] < keys[b] {
					return -1
				}
				return 1
			}
			return a - b
		})
		out = append(out, idx[:perClass]...)
	}
	slices.Sort(out)
	return out, nil
}

// Pool2x2 returns the images idx of images (n×28×28 bytes) downsampled to
// 14×14: each pixel is the mean of a 2×2 block rounded half up,
// (a+b+c+d+2)/4.
func Pool2x2(images []byte, idx []int) []byte {
	const in = 28
	out := make([]byte, 0, len(idx)*Side*Side)
	for _, i := range idx {
		img := images[i*in*in : (i+1)*in*in]
		for y := 0; y < in; y += 2 {
			for x := 0; x < in; x += 2 {
				s := int(img[y*in+x]) + int(img[y*in+x+1]) + int(img[(y+1)*in+x]) + int(img[(y+1)*in+x+1])
				out = append(out, byte((s+2)/4))
			}
		}
	}
	return out
}

// EncodeIDX returns an IDX file of unsigned bytes with the given dimensions.
func EncodeIDX(dims []int, data []byte) []byte {
	b := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

// Build reads the full Fashion-MNIST from dir and returns the four files of
// the subset, uncompressed, in the order of Files.
func Build(dir string) ([][]byte, error) {
	var raw [4][]byte
	for i, name := range []string{
		"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
		"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
	} {
		dims, data, err := datasets.ReadIDXFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if i%2 == 0 && (len(dims) != 3 || dims[1] != 28 || dims[2] != 28) {
			return nil, fmt.Errorf("subset: %s: images of shape %v, want [n 28 28]", name, dims)
		}
		raw[i] = data
	}
	return FromBytes(raw[0], raw[1], raw[2], raw[3])
}

// FromBytes is Build for the contents of the four IDX files: 28×28 training
// images, their labels, test images, their labels.
func FromBytes(trainImages, trainLabels, testImages, testLabels []byte) ([][]byte, error) {
	var out [][]byte
	for _, part := range []struct {
		name           string
		images, labels []byte
		perClass       int
		seed           uint64
	}{
		{"train", trainImages, trainLabels, TrainPerClass, TrainSeed},
		{"test", testImages, testLabels, TestPerClass, TestSeed},
	} {
		if len(part.images) != 28*28*len(part.labels) {
			return nil, fmt.Errorf("subset: %s: %d bytes of images for %d labels", part.name, len(part.images), len(part.labels))
		}
		idx, err := Select(part.labels, part.perClass, part.seed)
		if err != nil {
			return nil, fmt.Errorf("subset: %s: %w", part.name, err)
		}
		sel := make([]byte, len(idx))
		for r, i := range idx {
			sel[r] = part.labels[i]
		}
		out = append(out,
			EncodeIDX([]int{len(idx), Side, Side}, Pool2x2(part.images, idx)),
			EncodeIDX([]int{len(idx)}, sel))
	}
	return out, nil
}

// Gzip compresses b at the default level (level 9 saves 0.6% and takes
// twelve times as long) with an empty header (no name, no time), so the
// output depends on the bytes and on the Go release's compress/flate only.
func Gzip(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
