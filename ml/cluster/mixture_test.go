package cluster_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sedna-go/sedna/ml/cluster"
)

// stripes draws n rows on each of two long, thin, parallel stripes (3
// apart, 40 long): clusters k-means cuts across, having no notion of
// shape.
func stripes(n int, seed uint64) ([]float32, []int) {
	rng := rand.New(rand.NewPCG(seed, 2))
	var x []float32
	var truth []int
	for i := range 2 * n {
		c := i % 2
		x = append(x, float32(10*rng.NormFloat64()), float32(3*c)+float32(0.3*rng.NormFloat64()))
		truth = append(truth, c)
	}
	return x, truth
}

// A Gaussian mixture finds two elongated clusters that k-means cuts
// across, and the BIC finds that there are two; its log density is lower
// far from both than at any training row.
func TestAMixtureFindsElongatedClusters(t *testing.T) {
	x, truth := stripes(300, 1)
	_, km, err := cluster.KMeans(x, 2, 2, cluster.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	kmARI, _ := cluster.AdjustedRandIndex(km, truth)
	ch, err := cluster.ChooseMixture(x, 2, 1, 5, cluster.MixtureOptions{Options: cluster.Options{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ari, _ := cluster.AdjustedRandIndex(ch.Labels, truth)
	t.Logf("k-means: ARI %.3f; mixture: k=%d (BICs %.0f from k=1), ARI %.3f", kmARI, ch.Mixture.K(), ch.Scores, ari)
	if ch.Mixture.K() != 2 || ari < 0.95 {
		t.Fatalf("the mixture chose %d clusters, ARI %.3f; want 2 and at least 0.95", ch.Mixture.K(), ari)
	}
	if kmARI > 0.5 {
		t.Fatalf("k-means' ARI %.3f: the stripes are meant to defeat it", kmARI)
	}
	lowest := math.Inf(1)
	for i := range len(x) / 2 {
		_, lp, err := ch.Mixture.Predict(x[2*i : 2*i+2])
		if err != nil {
			t.Fatal(err)
		}
		lowest = min(lowest, lp)
	}
	if _, lp, _ := ch.Mixture.Predict([]float32{0, 15}); lp >= lowest {
		t.Errorf("log density %.1f far from both stripes, %.1f at the least likely training row", lp, lowest)
	}
	if _, _, err := ch.Mixture.Predict([]float32{1}); !errors.Is(err, cluster.ErrInvalid) {
		t.Errorf("a row of 1 value: %v", err)
	}
}

// The same seed fits the same mixture.
func TestAMixtureIsReproducible(t *testing.T) {
	x, _ := stripes(100, 3)
	a, la, err := cluster.FitMixture(x, 2, 3, cluster.MixtureOptions{Options: cluster.Options{Seed: 9}})
	if err != nil {
		t.Fatal(err)
	}
	b, lb, _ := cluster.FitMixture(x, 2, 3, cluster.MixtureOptions{Options: cluster.Options{Seed: 9}})
	if a.LogLik != b.LogLik || len(la) != len(lb) {
		t.Fatalf("log-likelihoods %v and %v", a.LogLik, b.LogLik)
	}
	for i := range la {
		if la[i] != lb[i] {
			t.Fatalf("row %d: cluster %d then %d", i, la[i], lb[i])
		}
	}
	if _, err := cluster.ChooseMixture(x, 2, 0, 2, cluster.MixtureOptions{}); !errors.Is(err, cluster.ErrInvalid) {
		t.Errorf("k from 0: %v", err)
	}
}

// One group that is not Gaussian (rows spread evenly over a long strip):
// the BIC needs several Gaussians to describe its density, the ICL, which
// also penalises clusters that overlap, counts one group.
func TestTheICLCountsGroupsNotGaussians(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	var x []float32
	for range 800 {
		x = append(x, float32(10*rng.Float64()), float32(rng.Float64()))
	}
	o := cluster.MixtureOptions{Options: cluster.Options{Seed: 1}}
	bic, err := cluster.ChooseMixture(x, 2, 1, 5, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Criterion = cluster.CriterionICL
	icl, err := cluster.ChooseMixture(x, 2, 1, 5, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BIC chose %d (%.0f), ICL %d (%.0f)", bic.Mixture.K(), bic.Scores, icl.Mixture.K(), icl.Scores)
	if icl.Mixture.K() != 1 || bic.Mixture.K() < 2 {
		t.Errorf("BIC chose %d, ICL %d: want several and 1", bic.Mixture.K(), icl.Mixture.K())
	}
	o.Criterion = "aic"
	if _, err := cluster.ChooseMixture(x, 2, 1, 2, o); !errors.Is(err, cluster.ErrInvalid) {
		t.Errorf("criterion aic: %v", err)
	}
}
