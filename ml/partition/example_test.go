package partition_test

import (
	"fmt"

	"github.com/sedna-go/sedna/ml/partition"
)

// Split 12 samples of 3 classes between 3 clients, IID and by label shards.
func Example() {
	y := []int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}
	iid, _ := partition.IID(len(y), 3, 1)
	shards, _ := partition.Shards(y, 3, 1, 1)
	for c := range 3 {
		fmt.Printf("client %d: %d samples IID; by shard, labels", c, len(iid[c]))
		for _, i := range shards[c] {
			fmt.Printf(" %d", y[i])
		}
		fmt.Println()
	}
	tasks, parts := partition.ByAttribute([]string{"summer", "winter", "summer"})
	fmt.Println(tasks, parts)
	// Output:
	// client 0: 4 samples IID; by shard, labels 1 1 1 1
	// client 1: 4 samples IID; by shard, labels 2 2 2 2
	// client 2: 4 samples IID; by shard, labels 0 0 0 0
	// [summer winter] [[0 2] [1]]
}
