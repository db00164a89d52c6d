package comfort_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/lifelong/comfort"
)

// The example's files: a Dataset of A, B and C on edge1 (a header, then
// 600 surveys of each), and the job in Sedna's shape, which parses.
func Example() {
	dir, _ := os.MkdirTemp("", "ll")
	defer os.RemoveAll(dir)
	o := comfort.Options{Dir: dir, Node: "edge1"}
	if err := comfort.Write(o); err != nil {
		fmt.Println(err)
		return
	}
	data, _ := os.ReadFile(o.DatasetFile())
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	rs, err := api.Parse([]byte(comfort.YAML(o)), "lifelong.yaml")
	fmt.Println(filepath.Base(o.DatasetFile()), len(lines)-1, "surveys;", lines[0])
	for _, r := range rs {
		fmt.Println(r.Kind, r.Metadata.Name, err)
	}
	// Output:
	// comfort-ll-surveys.csv 1800 surveys; preference,task,air_temperature,radiant_temperature,air_speed,humidity,met,clo,outdoor_temperature
	// Dataset comfort-ll-surveys <nil>
	// LifelongLearningJob comfort-ll <nil>
}
