package bench_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sedna-go/sedna/internal/bench"
)

// A full run takes minutes and its numbers vary, so this example shows
// what Run refuses before it measures anything. `sedna bench` builds the
// same Options from its flags, with the path of its own binary as Sedna.
func ExampleRun() {
	o := bench.Options{
		Sedna:      "/usr/local/bin/sedna",
		Version:    "dev",
		Messages:   20000,
		Size:       8, // too small for a send time and a number
		Publishers: []int{1, 4},
		Modes:      []string{"process", "sync"},
		Window:     64,
	}
	fmt.Println(bench.Run(context.Background(), io.Discard, o))

	// The reconnect part checks its outages before it starts a process.
	o.Size = 256
	o.Only = "reconnect"
	o.Reconnect = bench.ReconnectOptions{Outages: 20, Shortest: 30 * time.Second, Longest: time.Second, Seed: 1}
	fmt.Println(bench.Run(context.Background(), io.Discard, o))
	// Output:
	// --size must be at least 16 (the payload carries a send time and a number)
	// reconnect: want --outages > 0 and 0 < --outage-min <= --outage-max
}
