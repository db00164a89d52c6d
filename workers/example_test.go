package workers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// A supervisor runs a job's worker where the spec places it and reports each
// change of its state; here a built-in worker that finishes its work.
func Example() {
	done := make(chan struct{})
	s := workers.New(workers.Config{
		Node: "edge1",
		Log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Builtins: map[string]workers.Builtin{
			"FederatedLearningJob/train": func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
				fmt.Println("training with batch_size", spec.Params["batch_size"])
				return nil
			},
		},
		Report: func(spec workers.Spec, st api.WorkerStatus) {
			fmt.Println(spec.Role, st.Phase)
			if st.Phase == workers.PhaseSucceeded {
				close(done)
			}
		},
	})
	defer s.Close()
	s.Ensure(workers.Spec{
		Job:        topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"},
		Generation: 1,
		Worker:     api.Worker{Role: "train-0", Node: "edge1", Params: map[string]string{"batch_size": "32"}},
	})
	<-done
	// Output:
	// train-0 Running
	// training with batch_size 32
	// train-0 Succeeded
}
