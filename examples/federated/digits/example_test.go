package digits_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/sedna-go/sedna/examples/federated/digits"
)

// Write splits the data over the nodes and writes one CSV Dataset per node
// and the validation set; YAML is what to apply.
func Example() {
	dir, _ := os.MkdirTemp("", "fl-example")
	defer os.RemoveAll(dir)
	o := digits.Options{Dir: dir, Nodes: []string{"edge-1", "edge-2", "edge-3"}, Alpha: 0.5, Rounds: 20}
	parts, err := digits.Write(o)
	if err != nil {
		fmt.Println(err)
		return
	}
	total := 0
	for _, p := range parts {
		total += p.Rows
	}
	fmt.Println(len(parts), "parts,", total, "training samples")
	yaml := digits.YAML(o)
	fmt.Println(strings.Count(yaml, "kind: Dataset"), "Datasets,", strings.Count(yaml, "kind: FederatedLearningJob"), "job")
	// Output:
	// 3 parts, 1438 training samples
	// 3 Datasets, 1 job
}
