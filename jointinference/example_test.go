package jointinference_test

import (
	"encoding/json"
	"fmt"

	"github.com/sedna-go/sedna/jointinference"
)

// A device asks about one 2×2 8-bit image and reads the answer; any MQTT
// client can do the same in JSON on the service's input topic.
func Example() {
	label := 3
	req, err := jointinference.EncodeRequest(jointinference.Request{ID: "frame-1", Shape: []int{2, 2}, Data: []byte{0, 64, 128, 255}, Label: &label},
		"devices/cam-1/results", "frame-1")
	if err != nil {
		panic(err)
	}
	fmt.Println("publish", len(req), "bytes on", jointinference.InputTopic("default", "fashion-classification"))

	// What the edge worker publishes back, here as a JSON client gets it.
	answer, _ := json.Marshal(jointinference.Result{ID: "frame-1", Class: 3, Score: 0.91, Source: "cloud", Hard: true, LatencyMicros: 2100})
	r, _, err := jointinference.DecodeResult(answer)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: class %d from the %s (hard: %v)\n", r.ID, r.Class, r.Source, r.Hard)
	// Output:
	// publish 129 bytes on ji/default/fashion-classification/input
	// frame-1: class 3 from the cloud (hard: true)
}
