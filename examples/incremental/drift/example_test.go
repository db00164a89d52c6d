package drift_test

import (
	"fmt"
	"strings"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/incremental/drift"
)

// The example's YAML is Sedna's: a Dataset on the camera's node, the two
// Models and the IncrementalLearningJob, which parse as they are.
func ExampleYAML() {
	o := drift.Options{Dir: "/var/lib/sedna/il", Node: "edge1", MaxCycles: 3}
	rs, err := api.Parse([]byte(drift.YAML(o)), "incremental.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rs {
		fmt.Println(r.Kind, r.Metadata.Name)
	}
	fmt.Println(strings.Contains(drift.YAML(o), "maxCycles: 3"))
	// Output:
	// Dataset fashion-il-samples
	// Model fashion-il-initial
	// Model fashion-il-model
	// IncrementalLearningJob fashion-il
	// true
}
