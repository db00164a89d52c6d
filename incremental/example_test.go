package incremental_test

import (
	"fmt"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
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
