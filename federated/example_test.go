package federated_test

import (
	"fmt"
	"time"

	"github.com/sedna-go/sedna/federated"
)

// The rounds of a job are a pure state machine: updates and the time go
// in, the decision to close a round and to stop comes out. The
// aggregation worker drives it with the updates the nodes send.
func ExampleCoordinator() {
	c, _ := federated.NewCoordinator(federated.Rules{
		Clients: []string{"train-0", "train-1", "train-2"}, MinClients: 2, Rounds: 2, Deadline: time.Minute,
	}, federated.State{Run: 1})
	start := time.Unix(0, 0)
	for _, accuracy := range []float64{0.81, 0.9} {
		round := c.Begin(start)
		c.Offer(1, round, federated.Contribution{Role: "train-0", Samples: 100})
		c.Offer(1, round, federated.Contribution{Role: "train-1", Samples: 80})
		fmt.Println("round", round, "closes before the deadline:", c.Ready(start.Add(time.Second)))
		fmt.Println("round", round, "closes at the deadline:", c.Ready(start.Add(time.Minute)))
		rec := c.Close(start.Add(time.Minute), nil, nil, federated.Record{Accuracy: accuracy})
		fmt.Printf("round %d: %d of %d clients, missing %v\n", rec.Round, rec.Participants, rec.Clients, rec.Missing)
	}
	fmt.Println("late:", c.Offer(1, 1, federated.Contribution{Role: "train-2"}))
	fmt.Println(c.State().Reason)
	// Output:
	// round 1 closes before the deadline: false
	// round 1 closes at the deadline: true
	// round 1: 2 of 3 clients, missing [train-2]
	// round 2 closes before the deadline: false
	// round 2 closes at the deadline: true
	// round 2: 2 of 3 clients, missing [train-2]
	// late: late
	// 2 rounds done (exit_round)
}
