package all_test

import (
	"fmt"

	"github.com/sedna-go/sedna/paradigm/all"
)

// The paradigms Sedna-Go ships, by kind.
func ExampleAll() {
	fmt.Println(all.All().Kinds())
	// Output: [JointInferenceService FederatedLearningJob IncrementalLearningJob LifelongLearningJob]
}
