package datasets

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Drift is a change in what a camera sees: the image moved, its
// brightness and contrast changed, sensor noise added, and a class mix
// that favours some classes over others. The zero Drift changes nothing.
type Drift struct {
	// ShiftX and ShiftY move the image right and down by that many
	// pixels (left and up when negative); what comes in is black.
	ShiftX, ShiftY int
	// Gain and Offset map a pixel v to Offset + Gain·v (Gain 0 means 1).
	Gain, Offset float32
	// Noise is the standard deviation of Gaussian noise added to each
	// pixel (clipped to [0, 1] after).
	Noise float32
	// ClassWeights, when set (one per class), is the class mix of
	// Resample: class k is drawn with weight ClassWeights[k].
	ClassWeights []float64
	// Seed drives the noise and the resampling.
	Seed uint64
}

// Drifted returns d's images changed by dr (the class mix is Resample's).
func (d *Dataset) Drifted(dr Drift) (*Dataset, error) {
	if d.Width == 0 || d.Height == 0 || d.Width*d.Height != d.Cols {
		return nil, fmt.Errorf("datasets: %s: drift: %w: rows are not images", d.Name, ErrInvalid)
	}
	gain := dr.Gain
	if gain == 0 {
		gain = 1
	}
	out := d.empty(d.Rows)
	out.Name = d.Name + "-drifted"
	copy(out.Y, d.Y)
	r := rand.New(rand.NewPCG(dr.Seed, 0x6472696674))
	w, h := d.Width, d.Height
	for i := 0; i < d.Rows; i++ {
		src, dst := d.Row(i), out.Row(i)
		for y := range h {
			for x := range w {
				sx, sy := x-dr.ShiftX, y-dr.ShiftY
				var v float32
				if sx >= 0 && sy >= 0 && sx < w && sy < h {
					v = src[sy*w+sx]
				}
				v = dr.Offset + gain*v
				if dr.Noise > 0 {
					v += float32(r.NormFloat64()) * dr.Noise
				}
				dst[y*w+x] = min(max(v, 0), 1)
			}
		}
	}
	return out, nil
}

// Resample draws n rows of d (with repeats) with the class mix of
// dr.ClassWeights, in the order drawn; without weights, every class alike.
func (d *Dataset) Resample(n int, dr Drift) (*Dataset, error) {
	k := len(d.Classes)
	if k == 0 {
		k = 1
		for _, y := range d.Y {
			k = max(k, y+1)
		}
	}
	weights := dr.ClassWeights
	if weights == nil {
		weights = make([]float64, k)
		for i := range weights {
			weights[i] = 1
		}
	}
	if len(weights) != k {
		return nil, fmt.Errorf("datasets: %s: resample: %w: %d class weights for %d classes", d.Name, ErrInvalid, len(weights), k)
	}
	byClass := make([][]int, k)
	for i, y := range d.Y {
		byClass[y] = append(byClass[y], i)
	}
	// Classes without rows or weight are never drawn.
	var classes []int
	var cum []float64
	var total float64
	for c, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("datasets: %s: resample: %w: class %d weighs %v", d.Name, ErrInvalid, c, w)
		}
		if w > 0 && len(byClass[c]) > 0 {
			total += w
			classes, cum = append(classes, c), append(cum, total)
		}
	}
	if total == 0 || n < 1 {
		return nil, fmt.Errorf("datasets: %s: resample: %w: nothing to draw", d.Name, ErrInvalid)
	}
	r := rand.New(rand.NewPCG(dr.Seed, 0x6d6978))
	idx := make([]int, n)
	for i := range idx {
		u := r.Float64() * total
		j, _ := slices.BinarySearch(cum, u)
		j = min(j, len(classes)-1)
		rows := byClass[classes[j]]
		idx[i] = rows[r.IntN(len(rows))]
	}
	return d.Subset(idx)
}
