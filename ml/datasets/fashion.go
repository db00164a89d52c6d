package datasets

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"sync"
)

//go:embed data/fashion14-*.gz
var fashionFiles embed.FS

// fashionRaw holds the decompressed subset; it is decoded once and each
// call of FashionSubset converts it afresh, so callers own what they get.
var fashionRaw = sync.OnceValues(func() ([4][]byte, error) {
	var out [4][]byte
	for i, name := range []string{
		"fashion14-train-images-idx3-ubyte.gz", "fashion14-train-labels-idx1-ubyte.gz",
		"fashion14-test-images-idx3-ubyte.gz", "fashion14-test-labels-idx1-ubyte.gz",
	} {
		gz, err := fashionFiles.ReadFile("data/" + name)
		if err != nil {
			return out, fmt.Errorf("datasets: fashion subset: %w", err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return out, fmt.Errorf("datasets: fashion subset: %s: %w", name, err)
		}
		// Keep the IDX header: FashionSubset decodes it with DecodeIDX.
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(zr); err != nil {
			return out, fmt.Errorf("datasets: fashion subset: %s: %w", name, err)
		}
		out[i] = buf.Bytes()
	}
	return out, nil
})

// FashionSubset returns the Fashion-MNIST subset shipped with the package:
// 20,000 training images (2,000 per class) and 2,000 test images (200 per
// class), 14×14, pixels scaled to [0, 1]. ml/datasets/README.md says how it
// was chosen and how to regenerate it.
func FashionSubset() (train, test *Dataset, err error) {
	raw, err := fashionRaw()
	if err != nil {
		return nil, nil, err
	}
	sets := make([]*Dataset, 2)
	for i, name := range []string{"fashion14-train", "fashion14-test"} {
		dims, pixels, err := DecodeIDX(bytes.NewReader(raw[2*i]))
		if err != nil {
			return nil, nil, fmt.Errorf("datasets: %s: %w", name, err)
		}
		_, labels, err := DecodeIDX(bytes.NewReader(raw[2*i+1]))
		if err != nil {
			return nil, nil, fmt.Errorf("datasets: %s: %w", name, err)
		}
		if sets[i], err = fromBytes(name, dims, pixels, labels, 14); err != nil {
			return nil, nil, err
		}
	}
	return sets[0], sets[1], nil
}
