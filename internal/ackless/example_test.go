package ackless_test

import (
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/internal/ackless"
)

// A broker that never acknowledges a repeat: the first publish is
// acknowledged, its token completes; the broker records both kinds.
func Example() {
	addr, err := ackless.FreeAddr()
	if err != nil {
		panic(err)
	}
	b, err := ackless.Start(addr, func(p ackless.Publish) bool { return p.Dup })
	if err != nil {
		panic(err)
	}
	defer b.Close()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("example"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		panic(tok.Error())
	}
	defer c.Disconnect(50)
	tok := c.Publish("t", 1, false, "hello")
	fmt.Println(tok.WaitTimeout(10*time.Second) && tok.Error() == nil, b.Seen()[0].Payload)
	// Output: true hello
}
