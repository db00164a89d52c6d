package datasets

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrIDX is wrapped by every error about a malformed IDX file.
var ErrIDX = errors.New("malformed IDX file")

// maxIDXBytes bounds what DecodeIDX allocates (the 60,000 Fashion-MNIST
// training images are 47 MB).
const maxIDXBytes = 1 << 28

// DecodeIDX reads one IDX file of unsigned bytes (type 0x08), the format of
// MNIST and Fashion-MNIST: a zero uint16, the type byte, the number of
// dimensions, each dimension as a big-endian uint32, then the data. It
// returns the dimensions and the data.
func DecodeIDX(r io.Reader) (dims []int, data []byte, err error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", ErrIDX, err)
	}
	if head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] < 1 || head[3] > 4 {
		return nil, nil, fmt.Errorf("%w: magic % x, want 00 00 08 and 1 to 4 dimensions", ErrIDX, head)
	}
	raw := make([]byte, 4*int(head[3]))
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, fmt.Errorf("%w: dimensions: %v", ErrIDX, err)
	}
	total := 1
	for i := range int(head[3]) {
		d := int(binary.BigEndian.Uint32(raw[4*i:]))
		if d < 1 || d > maxIDXBytes || total*d > maxIDXBytes {
			return nil, nil, fmt.Errorf("%w: dimension %d is %d", ErrIDX, i, d)
		}
		dims = append(dims, d)
		total *= d
	}
	data = make([]byte, total)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("%w: data: want %d bytes: %v", ErrIDX, total, err)
	}
	return dims, data, nil
}

// FashionNames are the class names of Fashion-MNIST, indexed by label.
var FashionNames = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// FashionMNISTDir is where Debian's dataset-fashion-mnist package installs
// the four gzipped IDX files of Fashion-MNIST.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// LoadFashionMNIST reads the full Fashion-MNIST (60,000 training and 10,000
// test images, 28×28) from the four gzipped IDX files in dir, named as
// Zalando ships them (train-images-idx3-ubyte.gz, ...). Pixels are scaled
// from 0..255 to [0, 1].
func LoadFashionMNIST(dir string) (train, test *Dataset, err error) {
	train, err = loadIDXPair(dir, "train", "fashion-train", 28)
	if err != nil {
		return nil, nil, err
	}
	test, err = loadIDXPair(dir, "t10k", "fashion-test", 28)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// ReadIDXFile decodes one gzipped IDX file.
func ReadIDXFile(path string) (dims []int, data []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %s: %w", path, err)
	}
	dims, data, err = DecodeIDX(zr)
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %s: %w", path, err)
	}
	return dims, data, nil
}

func loadIDXPair(dir, prefix, name string, side int) (*Dataset, error) {
	imgPath := filepath.Join(dir, prefix+"-images-idx3-ubyte.gz")
	dims, pixels, err := ReadIDXFile(imgPath)
	if err != nil {
		return nil, err
	}
	_, labels, err := ReadIDXFile(filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz"))
	if err != nil {
		return nil, err
	}
	return fromBytes(name, dims, pixels, labels, side)
}

// fromBytes builds a data set of images from IDX contents.
func fromBytes(name string, dims []int, pixels, labels []byte, side int) (*Dataset, error) {
	if len(dims) != 3 || dims[1] != side || dims[2] != side {
		return nil, fmt.Errorf("datasets: %s: %w: images of shape %v, want [n %d %d]", name, ErrIDX, dims, side, side)
	}
	if len(labels) != dims[0] {
		return nil, fmt.Errorf("datasets: %s: %w: %d labels for %d images", name, ErrIDX, len(labels), dims[0])
	}
	d := &Dataset{
		Name: name, X: make([]float32, len(pixels)), Y: make([]int, len(labels)),
		Rows: dims[0], Cols: side * side, Width: side, Height: side,
		Classes: append([]string(nil), FashionNames...),
	}
	bytesToUnit(d.X, pixels)
	for i, l := range labels {
		d.Y[i] = int(l)
		if int(l) >= len(d.Classes) {
			return nil, fmt.Errorf("datasets: %s: %w: label %d of image %d", name, ErrIDX, l, i)
		}
	}
	return d, nil // bytes scaled by 1/255 are always finite: no need for Validate
}

// bytesToUnit sets dst[i] = src[i]/255. It converts through arrays on its
// stack, which a race-detector build checks per chunk instead of per pixel:
// a data set has tens of millions of pixels.
func bytesToUnit(dst []float32, src []byte) {
	const chunk = 4096
	var in [chunk]byte
	var out [chunk]float32
	for lo := 0; lo < len(src); lo += chunk {
		n := copy(in[:], src[lo:])
		for i := 0; i < n; i++ {
			out[i] = float32(in[i]) / 255
		}
		copy(dst[lo:lo+n], out[:n])
	}
}
