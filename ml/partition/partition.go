package partition

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid partition request")

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9a27)) }

// IID deals n samples to clients at random: the parts differ in size by at
// most one and each is a uniform sample.
func IID(n, clients int, seed uint64) ([][]int, error) {
	if clients < 1 || n < clients {
		return nil, fmt.Errorf("partition: iid: %w: %d samples for %d clients", ErrInvalid, n, clients)
	}
	perm := newRand(seed).Perm(n)
	parts := make([][]int, clients)
	for c := range parts {
		parts[c] = sorted(perm[c*n/clients : (c+1)*n/clients])
	}
	return parts, nil
}

// Dirichlet gives each client a label distribution drawn from a symmetric
// Dirichlet(alpha): for each class, its samples are shuffled and cut among
// the clients in proportions drawn from Dir(alpha, ..., alpha). A small
// alpha (0.1) gives each client few labels; a large one (100) approaches
// IID. A draw that leaves a client empty is redrawn, up to 100 times.
func Dirichlet(labels []int, clients int, alpha float64, seed uint64) ([][]int, error) {
	if clients < 1 || len(labels) < clients {
		return nil, fmt.Errorf("partition: dirichlet: %w: %d samples for %d clients", ErrInvalid, len(labels), clients)
	}
	if !(alpha > 0) || math.IsInf(alpha, 0) {
		return nil, fmt.Errorf("partition: dirichlet: %w: alpha %v, want > 0", ErrInvalid, alpha)
	}
	byClass, err := groupLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("partition: dirichlet: %w", err)
	}
	rng := newRand(seed)
	p := make([]float64, clients)
	for attempt := 0; attempt < 100; attempt++ {
		parts := make([][]int, clients)
		for _, idx := range byClass {
			idx = slices.Clone(idx)
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			sum := 0.0
			for c := range p {
				p[c] = gamma(rng, alpha)
				sum += p[c]
			}
			if !(sum > 0) { // every draw underflowed (alpha ≪ 1): one client takes the class
				clear(p)
				p[rng.IntN(clients)], sum = 1, 1
			}
			cum, start := 0.0, 0
			for c := range p {
				cum += p[c] / sum
				end := int(math.Round(cum * float64(len(idx))))
				if c == clients-1 {
					end = len(idx)
				}
				end = max(end, start)
				parts[c] = append(parts[c], idx[start:end]...)
				start = end
			}
		}
		if !slices.ContainsFunc(parts, func(p []int) bool { return len(p) == 0 }) {
			for c := range parts {
				slices.Sort(parts[c])
			}
			return parts, nil
		}
	}
	return nil, fmt.Errorf("partition: dirichlet: %w: 100 draws with alpha %v left a client of %d without samples",
		ErrInvalid, alpha, clients)
}

// Shards sorts the samples by label, cuts them into clients×perClient
// shards of (nearly) equal size and deals perClient random shards to each
// client, as in McMahan et al.'s pathological non-IID split: with
// perClient 2, most clients see two labels.
func Shards(labels []int, clients, perClient int, seed uint64) ([][]int, error) {
	if clients < 1 || perClient < 1 || len(labels) < clients*perClient {
		return nil, fmt.Errorf("partition: shards: %w: %d samples for %d clients × %d shards",
			ErrInvalid, len(labels), clients, perClient)
	}
	byClass, err := groupLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("partition: shards: %w", err)
	}
	rng := newRand(seed)
	var order []int // by label; within a label, shuffled
	for _, idx := range byClass {
		idx = slices.Clone(idx)
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		order = append(order, idx...)
	}
	shards := clients * perClient
	deal := rng.Perm(shards)
	parts := make([][]int, clients)
	for k, s := range deal {
		c := k / perClient
		parts[c] = append(parts[c], order[s*len(order)/shards:(s+1)*len(order)/shards]...)
	}
	for c := range parts {
		slices.Sort(parts[c])
	}
	return parts, nil
}

// ByAttribute groups the samples by the value of an attribute (a task
// name, a climate, a building type): keys are the distinct values in
// ascending order and parts[i] holds the samples whose attribute is keys[i].
func ByAttribute[K cmp.Ordered](attr []K) (keys []K, parts [][]int) {
	keys = slices.Clone(attr)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	parts = make([][]int, len(keys))
	for i, a := range attr {
		k, _ := slices.BinarySearch(keys, a)
		parts[k] = append(parts[k], i)
	}
	return keys, parts
}

// groupLabels returns the sample indices of each label 0..max, in order.
func groupLabels(labels []int) ([][]int, error) {
	top := -1
	for i, l := range labels {
		if l < 0 {
			return nil, fmt.Errorf("%w: label %d of sample %d", ErrInvalid, l, i)
		}
		top = max(top, l)
	}
	byClass := make([][]int, top+1)
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	return byClass, nil
}

func sorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// gamma draws from Gamma(shape, 1) by Marsaglia and Tsang's method, with
// the usual boost U^(1/shape) for shapes below one.
func gamma(rng *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := rng.Float64()
		return gamma(rng, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
