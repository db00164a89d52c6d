package jointinference

import (
	"fmt"
	"math"

	"github.com/sedna-go/sedna/ml"
)

// classifier is a model of the learning substrate with the input
// preprocessing the service does: a sample with k² times the model's
// inputs, square and divisible by k, is average-pooled k×k first (the edge
// model of the example sees 7×7 what the cloud model sees 14×14).
type classifier struct {
	net     *ml.Network
	version uint64
}

func loadClassifier(data []byte, version uint64) (*classifier, error) {
	n, err := ml.Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("model version %d is not a model of the learning substrate: %w", version, err)
	}
	return &classifier{net: n, version: version}, nil
}

// features fits sample x (of shape) to the model's inputs.
func (c *classifier) features(x []float32, shape []int) ([]float32, error) {
	in := c.net.Inputs()
	if len(x) == in {
		return x, nil
	}
	if len(shape) == 2 && len(x) > in && len(x)%in == 0 {
		k := int(math.Round(math.Sqrt(float64(len(x) / in))))
		h, w := shape[0], shape[1]
		if k > 1 && k*k*in == len(x) && h%k == 0 && w%k == 0 {
			out := make([]float32, 0, in)
			inv := 1 / float32(k*k)
			for r := 0; r < h; r += k {
				for col := 0; col < w; col += k {
					var s float32
					for i := range k {
						for j := range k {
							s += x[(r+i)*w+col+j]
						}
					}
					out = append(out, s*inv)
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("a sample of %d values (shape %v) does not fit a model of %d inputs", len(x), shape, in)
}

// predict returns the class probabilities of rows (each the model's
// inputs long), row-major.
func (c *classifier) predict(rows [][]float32) ([]float32, error) {
	in := c.net.Inputs()
	x := make([]float32, 0, len(rows)*in)
	for _, r := range rows {
		x = append(x, r...)
	}
	return c.net.PredictProba(x)
}

func argmax(p []float32) (int, float32) {
	best, score := 0, float32(-1)
	for i, v := range p {
		if v > score {
			best, score = i, v
		}
	}
	return best, score
}
