package lifelong_test

import (
	"context"
	"fmt"

	"github.com/sedna-go/sedna/lifelong"
)

// Two tasks that judge the same reading oppositely (a thermostat's "too
// warm" is another building's "fine"): one model per task answers each
// right, and a sample of a third building is recognised as of a task the
// knowledge base has not seen (and answered by the nearest task's model
// until that task is learnt).
func ExampleKB() {
	kb, err := lifelong.New(lifelong.Config{Method: lifelong.ByAttribute, Dim: 1, Classes: 2, Epochs: 200, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	var samples []lifelong.Sample
	for i := range 200 {
		x := float32(i%20)/10 - 1 // -1 to 0.9
		warm := 0
		if x > 0 {
			warm = 1
		}
		samples = append(samples, lifelong.Sample{X: []float32{x}, Y: warm, Attr: "office"},
			lifelong.Sample{X: []float32{x}, Y: 1 - warm, Attr: "sauna"})
	}
	if _, err := kb.Learn(context.Background(), samples); err != nil {
		fmt.Println(err)
		return
	}
	classes, unseen, _ := kb.Predict([]lifelong.Sample{{X: []float32{0.8}, Attr: "office"}, {X: []float32{0.8}, Attr: "sauna"},
		{X: []float32{0.8}, Attr: "greenhouse"}})
	fmt.Println(len(kb.Tasks), "tasks; answers", classes, "unseen", unseen)
	// Output:
	// 2 tasks; answers [1 0 1] unseen [false false true]
}
