package broker_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/topics"
)

// An edge node's broker: local apps on loopback connect without
// credentials; the process subscribes in-process (Watch) and publishes on
// behalf of a principal, which the one authorization point checks as it
// checks every client.
func Example() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := broker.NewServer(broker.Config{Role: access.RoleEdge, Node: "edge-1", Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	got := make(chan string, 1)
	stop, _ := srv.Watch("sensors/#", func(topic string, payload []byte, _ bool) { got <- topic + " " + string(payload) })
	defer stop()

	app := paho.NewClient(paho.NewClientOptions().AddBroker(srv.URL()).SetClientID("mapper"))
	app.Connect().Wait()
	defer app.Disconnect(0)
	app.Publish("sensors/t", 1, false, []byte("21.5")).WaitTimeout(5 * time.Second)
	select {
	case m := <-got:
		fmt.Println(m)
	case <-time.After(5 * time.Second):
		fmt.Println("nothing arrived")
	}

	// A local app does not speak for the node's bridge.
	err = srv.Publish(access.LocalAppPrincipal, topics.NodeStatusTopic("edge-1"), []byte("offline"), true, 1)
	fmt.Println(errors.Is(err, access.ErrNotAuthorized))
	// Output:
	// sensors/t 21.5
	// true
}
