package cluster_test

import (
	"fmt"

	"github.com/sedna-go/sedna/ml/cluster"
)

// Six rows in two groups: ChooseK finds two clusters, and a new row is
// allocated to the nearer one.
func ExampleChooseK() {
	x := []float32{0, 0, 0, 1, 1, 0, 9, 9, 9, 10, 10, 9}
	ch, err := cluster.ChooseK(x, 2, 2, 4, 0, cluster.Options{Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := ch.Model.Nearest([]float32{8, 8})
	fmt.Println(ch.Model.K(), "clusters; (8, 8) goes with row 4:", c == ch.Labels[3])
	ari, _ := cluster.AdjustedRandIndex(ch.Labels, []int{0, 0, 0, 1, 1, 1})
	fmt.Println("adjusted Rand index", ari)
	// Output:
	// 2 clusters; (8, 8) goes with row 4: true
	// adjusted Rand index 1
}
