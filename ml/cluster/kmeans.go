package cluster

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// ErrInvalid: the data or the options cannot be clustered.
var ErrInvalid = errors.New("cluster: invalid input")

// Options tune KMeans; zero values take the defaults.
type Options struct {
	// Restarts is how many seedings run; the one with the least inertia
	// is kept (default 4).
	Restarts int
	// MaxIter bounds Lloyd's iterations of a restart (default 100).
	MaxIter int
	Seed    uint64
}

func (o Options) withDefaults() Options {
	if o.Restarts <= 0 {
		o.Restarts = 4
	}
	if o.MaxIter <= 0 {
		o.MaxIter = 100
	}
	return o
}

// Model is a clustering: the centres of its clusters.
type Model struct {
	Dim     int         `json:"dim" msgpack:"dim"`
	Centers [][]float64 `json:"centers" msgpack:"centers"`
	// Inertia is the sum of squared distances of the training rows to
	// their centres.
	Inertia float64 `json:"inertia" msgpack:"inertia"`
}

// K is the number of clusters.
func (m *Model) K() int { return len(m.Centers) }

// Nearest returns the cluster whose centre is nearest to row and the
// Euclidean distance to it.
func (m *Model) Nearest(row []float32) (int, float64) {
	best, bestD := 0, math.Inf(1)
	for c, ctr := range m.Centers {
		if d := sqdist(row, ctr); d < bestD {
			best, bestD = c, d
		}
	}
	return best, math.Sqrt(bestD)
}

// Assign returns the cluster of each row of x.
func (m *Model) Assign(x []float32) []int {
	n := len(x) / m.Dim
	out := make([]int, n)
	for i := range n {
		out[i], _ = m.Nearest(x[i*m.Dim : (i+1)*m.Dim])
	}
	return out
}

func sqdist(row []float32, c []float64) float64 {
	var s float64
	for j, v := range row {
		d := float64(v) - c[j]
		s += d * d
	}
	return s
}

// check validates x as rows of dim values.
func check(x []float32, dim int) (int, error) {
	if dim < 1 || len(x) == 0 || len(x)%dim != 0 {
		return 0, fmt.Errorf("%w: %d values are not rows of %d", ErrInvalid, len(x), dim)
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0, fmt.Errorf("%w: value %d of row %d is not finite", ErrInvalid, i%dim, i/dim)
		}
	}
	return len(x) / dim, nil
}

// KMeans clusters the rows of x (dim values each) into k clusters and
// returns the model and each row's cluster.
func KMeans(x []float32, dim, k int, o Options) (*Model, []int, error) {
	n, err := check(x, dim)
	if err != nil {
		return nil, nil, err
	}
	if k < 1 || k > n {
		return nil, nil, fmt.Errorf("%w: %d clusters of %d rows", ErrInvalid, k, n)
	}
	o = o.withDefaults()
	var best *Model
	var bestLabels []int
	for r := range o.Restarts {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(r)+0x6b6d))
		m, labels := lloyd(x, dim, n, seed(x, dim, n, k, rng), o.MaxIter)
		if best == nil || m.Inertia < best.Inertia {
			best, bestLabels = m, labels
		}
	}
	return best, bestLabels, nil
}

// seed picks k centres by k-means++: each next one a row drawn with
// probability proportional to its squared distance to the nearest centre
// already picked.
func seed(x []float32, dim, n, k int, rng *rand.Rand) [][]float64 {
	centers := make([][]float64, 0, k)
	pick := func(i int) {
		c := make([]float64, dim)
		for j := range c {
			c[j] = float64(x[i*dim+j])
		}
		centers = append(centers, c)
	}
	pick(rng.IntN(n))
	d := make([]float64, n)
	for i := range d {
		d[i] = sqdist(x[i*dim:(i+1)*dim], centers[0])
	}
	for len(centers) < k {
		var total float64
		for _, v := range d {
			total += v
		}
		i := 0
		if total > 0 {
			r := rng.Float64() * total
			for i = 0; i < n-1 && r >= d[i]; i++ {
				r -= d[i]
			}
		} else {
			i = rng.IntN(n) // every row on a centre: any will do
		}
		pick(i)
		last := centers[len(centers)-1]
		for j := range d {
			d[j] = min(d[j], sqdist(x[j*dim:(j+1)*dim], last))
		}
	}
	return centers
}

// lloyd moves the centres to their rows' means until no row changes
// cluster (or maxIter); an empty cluster takes the row farthest from its
// centre.
func lloyd(x []float32, dim, n int, centers [][]float64, maxIter int) (*Model, []int) {
	k := len(centers)
	labels := make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	m := &Model{Dim: dim, Centers: centers}
	for range maxIter {
		changed := false
		for i := range n {
			c, _ := m.Nearest(x[i*dim : (i+1)*dim])
			if c != labels[i] {
				labels[i], changed = c, true
			}
		}
		if !changed {
			break
		}
		sums := make([][]float64, k)
		counts := make([]int, k)
		for c := range sums {
			sums[c] = make([]float64, dim)
		}
		for i, c := range labels {
			counts[c]++
			for j := range dim {
				sums[c][j] += float64(x[i*dim+j])
			}
		}
		for c := range k {
			if counts[c] == 0 {
				far := farthest(x, dim, m, labels)
				copy(sums[c], toF64(x[far*dim:(far+1)*dim]))
				counts[c] = 1
				labels[far] = c
			}
			for j := range dim {
				m.Centers[c][j] = sums[c][j] / float64(counts[c])
			}
		}
	}
	m.Inertia = 0
	for i, c := range labels {
		m.Inertia += sqdist(x[i*dim:(i+1)*dim], m.Centers[c])
	}
	return m, labels
}

func farthest(x []float32, dim int, m *Model, labels []int) int {
	best, bestD := 0, -1.0
	for i, c := range labels {
		if d := sqdist(x[i*dim:(i+1)*dim], m.Centers[c]); d > bestD {
			best, bestD = i, d
		}
	}
	return best
}

func toF64(row []float32) []float64 {
	out := make([]float64, len(row))
	for i, v := range row {
		out[i] = float64(v)
	}
	return out
}

// Silhouette is the mean silhouette coefficient of a clustering of the
// rows of x: for each row, (b−a)/max(a, b) with a its mean distance to the
// rest of its cluster and b the least mean distance to another cluster
// (0 for a row alone in its cluster). It ranges from −1 to 1; higher is
// better separated. It costs n² distances: give it a sample of a large set.
func Silhouette(x []float32, dim int, labels []int) (float64, error) {
	n, err := check(x, dim)
	if err != nil {
		return 0, err
	}
	if len(labels) != n {
		return 0, fmt.Errorf("%w: %d labels for %d rows", ErrInvalid, len(labels), n)
	}
	k := slices.Max(labels) + 1
	if k < 2 {
		return 0, fmt.Errorf("%w: a silhouette needs two clusters at least", ErrInvalid)
	}
	size := make([]int, k)
	for _, c := range labels {
		if c < 0 {
			return 0, fmt.Errorf("%w: a negative cluster", ErrInvalid)
		}
		size[c]++
	}
	var total float64
	sum := make([]float64, k)
	for i := range n {
		clear(sum)
		for j := range n {
			if i != j {
				var s float64
				for t := range dim {
					d := float64(x[i*dim+t] - x[j*dim+t])
					s += d * d
				}
				sum[labels[j]] += math.Sqrt(s)
			}
		}
		own := labels[i]
		if size[own] == 1 {
			continue
		}
		a := sum[own] / float64(size[own]-1)
		b := math.Inf(1)
		for c := range k {
			if c != own && size[c] > 0 {
				b = min(b, sum[c]/float64(size[c]))
			}
		}
		if m := max(a, b); m > 0 && !math.IsInf(b, 1) {
			total += (b - a) / m
		}
	}
	return total / float64(n), nil
}

// Choice is a clustering whose number of clusters was chosen from the data.
type Choice struct {
	Model  *Model
	Labels []int
	// Scores are the mean silhouettes of each k tried (index k−KMin).
	Scores []float64
	KMin   int
}

// ChooseK clusters x with each k from kmin to kmax (kmin ≥ 2) and keeps
// the k of the highest mean silhouette, computed on at most sample rows
// drawn from the seed (all when sample ≤ 0 or larger than the set).
func ChooseK(x []float32, dim, kmin, kmax, sample int, o Options) (*Choice, error) {
	n, err := check(x, dim)
	if err != nil {
		return nil, err
	}
	if kmin < 2 || kmax < kmin || kmax > n {
		return nil, fmt.Errorf("%w: k from %d to %d for %d rows", ErrInvalid, kmin, kmax, n)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if sample > 0 && sample < n {
		rng := rand.New(rand.NewPCG(o.Seed, 0x5111))
		rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		idx = idx[:sample]
		slices.Sort(idx)
	}
	sub := make([]float32, 0, len(idx)*dim)
	for _, i := range idx {
		sub = append(sub, x[i*dim:(i+1)*dim]...)
	}
	best := &Choice{KMin: kmin}
	bestScore := math.Inf(-1)
	for k := kmin; k <= kmax; k++ {
		m, labels, err := KMeans(x, dim, k, o)
		if err != nil {
			return nil, err
		}
		subLabels := make([]int, len(idx))
		for s, i := range idx {
			subLabels[s] = labels[i]
		}
		score, err := Silhouette(sub, dim, subLabels)
		if err != nil {
			score = -1 // the sample saw one cluster only
		}
		best.Scores = append(best.Scores, score)
		if score > bestScore {
			bestScore, best.Model, best.Labels = score, m, labels
		}
	}
	return best, nil
}

// AdjustedRandIndex scores how alike two groupings of the same items are,
// corrected for chance: 1 when they agree (whatever the names of their
// groups), about 0 for unrelated groupings (Hubert and Arabie, 1985).
func AdjustedRandIndex(a, b []int) (float64, error) {
	if len(a) != len(b) || len(a) == 0 {
		return 0, fmt.Errorf("%w: groupings of %d and %d items", ErrInvalid, len(a), len(b))
	}
	type pair struct{ i, j int }
	cells, rows, cols := map[pair]int{}, map[int]int{}, map[int]int{}
	for t := range a {
		cells[pair{a[t], b[t]}]++
		rows[a[t]]++
		cols[b[t]]++
	}
	c2 := func(m int) float64 { return float64(m) * float64(m-1) / 2 }
	var index, sa, sb float64
	for _, v := range cells {
		index += c2(v)
	}
	for _, v := range rows {
		sa += c2(v)
	}
	for _, v := range cols {
		sb += c2(v)
	}
	expected := sa * sb / c2(len(a))
	most := (sa + sb) / 2
	if most == expected {
		return 1, nil // both trivial (one group, or every item alone)
	}
	return (index - expected) / (most - expected), nil
}
