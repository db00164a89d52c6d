package classify_test

import (
	"fmt"
	"strings"

	"github.com/sedna-go/sedna/examples/jointinference/classify"
)

// The example's resources, placed on another node, and a test frame as a
// camera sends it.
func Example() {
	yaml := classify.YAMLFor("edge-7")
	fmt.Println(strings.Contains(yaml, "nodeName: edge-7"), strings.Count(yaml, "kind: "))
	_, test, err := classify.Data()
	if err != nil {
		panic(err)
	}
	fmt.Println(len(classify.Bytes(test, 0)), "bytes per frame,", test.Rows, "test frames")
	// Output:
	// true 3
	// 196 bytes per frame, 2000 test frames
}
