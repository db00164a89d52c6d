package topics_test

import (
	"fmt"

	"github.com/sedna-go/sedna/topics"
)

// Topics are built here and nowhere else, and parse back into their parts.
func Example() {
	t := topics.Uplink("edge-1", topics.StreamEvents)
	p, _ := topics.Parse(t)
	fmt.Println(t)
	fmt.Println(p.Class, p.Node, p.Stream)
	fmt.Println(topics.Match("+/user/#", "$hw/user/x"), topics.Match("$hw/events/upload/#", "$hw/events/upload/dev1"))
	// Output:
	// sedna/v1/node/edge-1/up/events
	// uplink edge-1 events
	// false true
}

// An envelope carries a typed body; decoding refuses bad input with a
// reason a dead-letter store can record.
func ExampleUnmarshalEnvelope() {
	e, _ := topics.NewEnvelope(topics.KindDownAck, "edge/bridge", topics.DownAck{Epoch: 7, Seq: 42})
	raw, _ := e.Marshal()
	back, _ := topics.UnmarshalEnvelope(raw, topics.Limits{})
	var ack topics.DownAck
	_ = back.DecodeBody(&ack)
	fmt.Println(back.Kind, ack.Seq)

	_, err := topics.UnmarshalEnvelope([]byte("not msgpack"), topics.Limits{})
	fmt.Println(topics.ReasonOf(err))
	// Output:
	// bridge.downack 42
	// malformed
}
