package cluster

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distmv"
)

// Mixture is a Gaussian mixture: clusters of any orientation and
// elongation, which k-means (round clusters of one size) splits or
// merges. Its log density says how well it explains a sample: low for a
// sample of none of its clusters.
type Mixture struct {
	Dim     int         `json:"dim" msgpack:"dim"`
	Weights []float64   `json:"weights" msgpack:"weights"`
	Means   [][]float64 `json:"means" msgpack:"means"`
	// Covs are the covariance matrices, Dim×Dim each, row by row.
	Covs [][]float64 `json:"covs" msgpack:"covs"`
	// LogLik is the training rows' log-likelihood; BIC the Bayesian
	// information criterion (−2·LogLik + parameters·ln n), lower better.
	LogLik float64 `json:"logLik" msgpack:"logLik"`
	BIC    float64 `json:"bic" msgpack:"bic"`
	// ICL is the BIC plus twice the entropy of the rows' assignment
	// (Biernacki, Celeux and Govaert's integrated completed likelihood):
	// it also penalises clusters that overlap, so it counts groups
	// rather than the Gaussians a non-Gaussian group needs.
	ICL float64 `json:"icl" msgpack:"icl"`

	normals []*distmv.Normal
}

// K is the number of clusters.
func (m *Mixture) K() int { return len(m.Weights) }

// Reset drops what Predict prepared from the fields: call it after
// changing them (adding a component, say).
func (m *Mixture) Reset() { m.normals = nil }

// MixtureOptions tune FitMixture; zero values take the defaults.
type MixtureOptions struct {
	Options
	// Reg is added to each covariance's diagonal, keeping it invertible
	// (default 1e-4).
	Reg float64
	// Tol ends EM when the mean log-likelihood per row gains less
	// (default 1e-5).
	Tol float64
	// Criterion chooses the number of clusters in ChooseMixture:
	// CriterionBIC (the default) or CriterionICL.
	Criterion Criterion
}

// Criterion is what ChooseMixture minimises.
type Criterion string

// The criteria: the BIC finds the density's components, the ICL the
// groups (well-separated clusters).
const (
	CriterionBIC Criterion = "bic"
	CriterionICL Criterion = "icl"
)

func (m *Mixture) score(c Criterion) float64 {
	if c == CriterionICL {
		return m.ICL
	}
	return m.BIC
}

// FitMixture fits a mixture of k Gaussians to the rows of x by
// expectation-maximisation, started from k-means, and returns it with each
// row's most likely cluster.
func FitMixture(x []float32, dim, k int, o MixtureOptions) (*Mixture, []int, error) {
	n, err := check(x, dim)
	if err != nil {
		return nil, nil, err
	}
	if o.Reg <= 0 {
		o.Reg = 1e-4
	}
	if o.Tol <= 0 {
		o.Tol = 1e-5
	}
	o.Options = o.Options.withDefaults()
	km, labels, err := KMeans(x, dim, k, o.Options)
	if err != nil {
		return nil, nil, err
	}
	m := &Mixture{Dim: dim, Weights: make([]float64, k), Means: km.Centers, Covs: make([][]float64, k)}
	// Responsibilities from k-means' hard labels to start.
	resp := make([]float64, n*k)
	for i, c := range labels {
		resp[i*k+c] = 1
	}
	m.maximise(x, resp, o.Reg)
	prev := math.Inf(-1)
	for range o.MaxIter {
		ll, err := m.expect(x, resp)
		if err != nil {
			return nil, nil, err
		}
		m.LogLik = ll
		if ll-prev < o.Tol*float64(n) {
			break
		}
		prev = ll
		m.maximise(x, resp, o.Reg)
	}
	if _, err := m.expect(x, resp); err != nil {
		return nil, nil, err
	}
	params := float64(k*dim + k*dim*(dim+1)/2 + k - 1)
	m.BIC = -2*m.LogLik + params*math.Log(float64(n))
	var entropy float64
	for _, r := range resp {
		if r > 0 {
			entropy -= r * math.Log(r)
		}
	}
	m.ICL = m.BIC + 2*entropy
	out := make([]int, n)
	for i := range out {
		out[i] = floats.MaxIdx(resp[i*k : (i+1)*k])
	}
	return m, out, nil
}

// maximise sets the weights, means and covariances from the
// responsibilities.
func (m *Mixture) maximise(x []float32, resp []float64, reg float64) {
	k, d := len(m.Weights), m.Dim
	n := len(x) / d
	for c := range k {
		var nk float64
		mean := make([]float64, d)
		for i := range n {
			r := resp[i*k+c]
			nk += r
			for j := range d {
				mean[j] += r * float64(x[i*d+j])
			}
		}
		cov := make([]float64, d*d)
		if nk > 0 {
			floats.Scale(1/nk, mean)
			for i := range n {
				r := resp[i*k+c]
				if r == 0 {
					continue
				}
				for a := range d {
					da := float64(x[i*d+a]) - mean[a]
					for b := a; b < d; b++ {
						cov[a*d+b] += r * da * (float64(x[i*d+b]) - mean[b])
					}
				}
			}
			floats.Scale(1/nk, cov)
		} else {
			copy(mean, m.Means[c]) // an empty cluster keeps its place
		}
		for a := range d {
			cov[a*d+a] += reg
			for b := a + 1; b < d; b++ {
				cov[b*d+a] = cov[a*d+b]
			}
		}
		m.Weights[c] = max(nk/float64(n), 1e-12)
		m.Means[c], m.Covs[c] = mean, cov
	}
	m.normals = nil
}

// Prepare builds what Predict needs from the fields, or says why the
// fields are not a mixture (a decoded one, say): sizes that disagree, a
// weight that is not positive, a covariance that is not positive
// definite. Predict prepares on first use; a mixture Predict is called on
// from several goroutines must be prepared first.
func (m *Mixture) Prepare() error {
	if m.normals != nil {
		return nil
	}
	if m.Dim < 1 || len(m.Means) != len(m.Weights) || len(m.Covs) != len(m.Weights) {
		return fmt.Errorf("%w: a mixture of %d weights, %d means, %d covariances in %d dimensions",
			ErrInvalid, len(m.Weights), len(m.Means), len(m.Covs), m.Dim)
	}
	for c, w := range m.Weights {
		if !(w > 0) || len(m.Means[c]) != m.Dim || len(m.Covs[c]) != m.Dim*m.Dim {
			return fmt.Errorf("%w: cluster %d: weight %v, a mean of %d and a covariance of %d values in %d dimensions",
				ErrInvalid, c, w, len(m.Means[c]), len(m.Covs[c]), m.Dim)
		}
	}
	return m.prepare()
}

// prepare builds each cluster's distribution.
func (m *Mixture) prepare() error {
	if m.normals != nil {
		return nil
	}
	m.normals = make([]*distmv.Normal, len(m.Weights))
	for c := range m.Weights {
		nd, ok := distmv.NewNormal(m.Means[c], mat.NewSymDense(m.Dim, m.Covs[c]), nil)
		if !ok {
			m.normals = nil
			return fmt.Errorf("%w: cluster %d's covariance is not positive definite", ErrInvalid, c)
		}
		m.normals[c] = nd
	}
	return nil
}

// expect sets each row's responsibilities and returns the log-likelihood.
func (m *Mixture) expect(x []float32, resp []float64) (float64, error) {
	if err := m.prepare(); err != nil {
		return 0, err
	}
	k, d := len(m.Weights), m.Dim
	row := make([]float64, d)
	var ll float64
	for i := range len(x) / d {
		for j := range d {
			row[j] = float64(x[i*d+j])
		}
		r := resp[i*k : (i+1)*k]
		for c, nd := range m.normals {
			r[c] = math.Log(m.Weights[c]) + nd.LogProb(row)
		}
		lse := floats.LogSumExp(r)
		ll += lse
		for c := range r {
			r[c] = math.Exp(r[c] - lse)
		}
	}
	return ll, nil
}

// Predict returns the most likely cluster of row and the mixture's log
// density there.
func (m *Mixture) Predict(row []float32) (int, float64, error) {
	if len(row) != m.Dim {
		return 0, 0, fmt.Errorf("%w: a row of %d values for a mixture of %d", ErrInvalid, len(row), m.Dim)
	}
	if err := m.prepare(); err != nil {
		return 0, 0, err
	}
	x := make([]float64, m.Dim)
	for j, v := range row {
		x[j] = float64(v)
	}
	lp := make([]float64, len(m.Weights))
	for c, nd := range m.normals {
		lp[c] = math.Log(m.Weights[c]) + nd.LogProb(x)
	}
	return floats.MaxIdx(lp), floats.LogSumExp(lp), nil
}

// MixtureChoice is a mixture whose number of clusters was chosen from the
// data by the least BIC (or ICL).
type MixtureChoice struct {
	Mixture *Mixture
	Labels  []int
	// Scores are the criterion's value for each k tried (index k−KMin).
	Scores []float64
	KMin   int
}

// ChooseMixture fits mixtures of kmin to kmax (kmin ≥ 1) Gaussians and
// keeps the one of the least BIC (or ICL: o.Criterion).
func ChooseMixture(x []float32, dim, kmin, kmax int, o MixtureOptions) (*MixtureChoice, error) {
	n, err := check(x, dim)
	if err != nil {
		return nil, err
	}
	if kmin < 1 || kmax < kmin || kmax > n {
		return nil, fmt.Errorf("%w: k from %d to %d for %d rows", ErrInvalid, kmin, kmax, n)
	}
	if o.Criterion != "" && o.Criterion != CriterionBIC && o.Criterion != CriterionICL {
		return nil, fmt.Errorf("%w: criterion %q: want %s or %s", ErrInvalid, o.Criterion, CriterionBIC, CriterionICL)
	}
	best := &MixtureChoice{KMin: kmin}
	for k := kmin; k <= kmax; k++ {
		m, labels, err := FitMixture(x, dim, k, o)
		if err != nil {
			return nil, err
		}
		best.Scores = append(best.Scores, m.score(o.Criterion))
		if best.Mixture == nil || m.score(o.Criterion) < best.Mixture.score(o.Criterion) {
			best.Mixture, best.Labels = m, labels
		}
	}
	return best, nil
}
