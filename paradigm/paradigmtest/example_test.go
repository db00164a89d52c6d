package paradigmtest_test

import (
	"errors"
	"fmt"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
)

// A node sends to the cloud while its link is down: the durable send
// waits for the link, the best-effort one is refused.
func ExampleNet() {
	net := paradigmtest.NewNet()
	edge := net.Node("edge-1")
	stop, _ := net.Cloud.Subscribe("sedna/v1/node/+/job/#", func(m paradigm.Message) error {
		fmt.Println("cloud got", m.Topic, string(m.Payload))
		return nil
	})
	defer stop()
	net.SetLink("edge-1", false)
	topic := "sedna/v1/node/edge-1/job/FederatedLearningJob/default/fl/update"
	_ = edge.Send(paradigm.Outbound{Topic: topic, Payload: []byte("weights")})
	err := edge.SendNow(paradigm.Outbound{Topic: topic, Payload: []byte("now")})
	fmt.Println("best effort:", errors.Is(err, paradigm.ErrOffline))
	net.SetLink("edge-1", true)
	// Output:
	// best effort: true
	// cloud got sedna/v1/node/edge-1/job/FederatedLearningJob/default/fl/update weights
}
