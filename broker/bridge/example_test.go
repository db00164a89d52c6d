package bridge_test

import (
	"fmt"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// An edge node's broker with its bridge: a local app's QoS 1 publish on a
// KubeEdge topic is on disk, in the uplink queue, when its PUBACK arrives;
// the bridge sends it to the cloud when the link is up.
func Example() {
	quiet := slog.New(slog.DiscardHandler)
	s, _ := store.OpenTemp(store.Options{Logger: quiet})
	defer s.Close()

	srv, _ := broker.NewServer(broker.Config{Role: access.RoleEdge, Node: "edge-1", Listen: "127.0.0.1:0", Store: s, Logger: quiet})
	br, err := bridge.New(bridge.Config{Node: "edge-1", CloudURL: "tcp://127.0.0.1:1", // no cloud yet
		Store: s, Server: srv, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = srv.Start()
	defer srv.Close()
	br.Start()
	defer br.Close()

	app := paho.NewClient(paho.NewClientOptions().AddBroker(srv.URL()).SetClientID("mapper"))
	app.Connect().Wait()
	defer app.Disconnect(0)
	tok := app.Publish("$hw/events/upload/thermometer", 1, false, []byte(`{"temperature":21.5}`))
	tok.WaitTimeout(5 * time.Second)

	recs, _, _ := br.Queue().Read(string(topics.StreamTelemetry), 0, 10, 1<<20)
	fmt.Println(len(recs), recs[0].Topic)
	// Output:
	// 1 sedna/v1/node/edge-1/kubeedge/$hw/events/upload/thermometer
}
