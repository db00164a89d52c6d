package cluster_test

import (
	"testing"

	"github.com/sedna-go/sedna/ml/cluster"
	"github.com/sedna-go/sedna/ml/comfort"
)

// Tasks of the thermal-comfort generator (the lifelong-learning example's
// data), told apart without their names: a mixture on the columns that
// describe a sample's context (air temperature, humidity, clothing,
// outdoor temperature) finds four tasks and recovers them (adjusted Rand
// index at least 0.9), where k-means with the silhouette, whose clusters
// are round, settles on two.
func TestAMixtureRecoversComfortTasks(t *testing.T) {
	context := []int{0, 3, 5, 6} // of comfort.FeatureNames
	var x []float32
	var truth []int
	for i, name := range []string{"tropical-summer-nv", "cold-winter-nv", "temperate-summer-ac", "temperate-winter-nv"} {
		task, err := comfort.ParseTask(name)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := comfort.Generate(task, 500, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			f := s.Features()
			for _, c := range context {
				x = append(x, f[c])
			}
			truth = append(truth, i)
		}
	}
	mix, err := cluster.ChooseMixture(x, len(context), 1, 8, cluster.MixtureOptions{Options: cluster.Options{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ari, _ := cluster.AdjustedRandIndex(mix.Labels, truth)
	km, err := cluster.ChooseK(x, len(context), 2, 8, 800, cluster.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	kmARI, _ := cluster.AdjustedRandIndex(km.Labels, truth)
	t.Logf("mixture: %d tasks, ARI %.3f; k-means and silhouette: %d, ARI %.3f", mix.Mixture.K(), ari, km.Model.K(), kmARI)
	if mix.Mixture.K() != 4 || ari < 0.9 {
		t.Errorf("the mixture found %d tasks, ARI %.3f; want 4 and at least 0.9", mix.Mixture.K(), ari)
	}
}
