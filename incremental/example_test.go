package incremental_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
)

// A cycle driven by hand: the train trigger holds on 600 new samples, the
// training worker registers version 2, the evaluation finds it better by
// more than the deploy trigger asks, and it is deployed.
func Example() {
	train, _ := incremental.NewTrigger(&api.Trigger{Condition: &api.TriggerCondition{Operator: ">", Threshold: 500, Metric: "num_of_samples"}})
	deploy, _ := incremental.NewTrigger(&api.Trigger{Condition: &api.TriggerCondition{Operator: ">", Threshold: 0.05, Metric: "accuracy_delta"}})
	c := incremental.NewController(incremental.Rules{TrainTrigger: train, DeployTrigger: deploy}, incremental.State{Serving: 1})
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	show := func(acts []incremental.Action) {
		for _, a := range acts {
			if a.Kind == incremental.Start {
				fmt.Println("start", a.Stage, a.Attempt)
			}
		}
	}
	show(c.Samples(600, now))
	show(c.Succeeded("1-train-1", incremental.Output{Model: 2}, now))
	show(c.Succeeded("1-eval-1", incremental.Output{Eval: incremental.Metrics{"accuracy": {0.9}}, Base: incremental.Metrics{"accuracy": {0.8}}}, now))
	show(c.Succeeded("1-deploy-1", incremental.Output{Model: 2}, now))
	st := c.State()
	fmt.Println("cycle", st.Cycle, st.Stage, st.Phase, "serving version", st.Serving)
	// Output:
	// start Train 1-train-1
	// start Eval 1-eval-1
	// start Deploy 1-deploy-1
	// cycle 2 Train Waiting serving version 2
}

// An external train worker's dataset: WriteSet writes the index file and
// a NumPy array per input, as the agent hands them to the program;
// ReadSet reads them back (in a worker written in Go).
func ExampleWriteSet() {
	dir, _ := os.MkdirTemp("", "set-")
	defer os.RemoveAll(dir)
	index := filepath.Join(dir, "train.txt")
	examples := []incremental.Example{{Shape: []int{2, 2}, Data: []byte{0, 64, 128, 255}, Label: 7}}
	if err := incremental.WriteSet(index, jointinference.Task{}, examples); err != nil {
		fmt.Println(err)
		return
	}
	raw, _ := os.ReadFile(index)
	fmt.Print(string(raw))
	back, _ := incremental.ReadSet(index)
	fmt.Println(back[0].Shape, back[0].DType, back[0].Data, back[0].Label)
	// Output:
	// samples/train-000000.npy 7
	// [2 2] u8 [0 64 128 255] 7
}
