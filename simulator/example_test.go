package simulator_test

import (
	"context"
	"fmt"

	"github.com/sedna-go/sedna/simulator"
)

// A scenario in YAML: one node, a sensor at 20 messages/s for a second, its
// link down for half of it. Every acknowledged message arrives once.
func Example() {
	s, err := simulator.Parse([]byte(`
name: one-node
duration: 1s
nodes: {count: 1}
devices: [{kind: sensor, rate: 20}]
faults: [{at: 200ms, nodes: [node-0], action: linkDown}, {at: 700ms, nodes: [node-0], action: linkUp}]
expect: {lost: 0, duplicated: 0}
`))
	if err != nil {
		panic(err)
	}
	rep, err := simulator.Run(context.Background(), s, simulator.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Println(rep.OK(), rep.Total.Lost, rep.Total.Duplicated, rep.Total.Acked == rep.Total.Delivered)
	// Output: true 0 0 true
}
