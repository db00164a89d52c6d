package simulator

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/topics"
)

// companion is a learning job's device and labelling oracle in a run: the
// device sends n requests to the job's inference worker on a node's broker
// at a rate (waiting while the node is down), and the oracle labels each
// example the cloud announces as waiting, on the job's label topic, as an
// operator's labelling tool would.
type companion struct {
	device, oracle paho.Client
	sent, labelled atomic.Int64
	stop           chan struct{}
	wg             sync.WaitGroup
	n              int
}

// startCompanion starts the oracle, then the device on node's broker; name
// tells the two clients apart from another companion's.
func (r *realRun) startCompanion(ctx context.Context, name string, ref topics.JobRef, labels func(waiting []byte) ([]byte, bool),
	node, input string, rate float64, n int, request func(i int) jointinference.Request) (*companion, error) {
	c := &companion{stop: make(chan struct{}), n: n}
	c.oracle = paho.NewClient(paho.NewClientOptions().AddBroker(r.cloud.BrokerURL()).SetClientID("sim-" + name + "-oracle").
		SetUsername("sim-ops").SetPassword(r.password).SetAutoReconnect(true).
		SetOnConnectHandler(func(cl paho.Client) {
			cl.Subscribe(incremental.WaitingTopic(ref), 1, func(cl paho.Client, msg paho.Message) {
				if raw, ok := labels(msg.Payload()); ok {
					cl.Publish(incremental.LabelTopic(ref), 1, false, raw)
					c.labelled.Add(1)
				}
			})
		}))
	if tok := c.oracle.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("%s: the oracle: %v", name, tok.Error())
	}
	var nd *simNode
	for _, x := range r.nodes {
		if x.name == node {
			nd = x
		}
	}
	c.device = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + nd.addr).SetClientID("sim-" + name + "-device").
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond))
	c.device.Connect()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		for i := 0; i < n; {
			select {
			case <-c.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !c.device.IsConnectionOpen() {
				continue // the node is down: the device waits
			}
			raw, err := jointinference.EncodeRequest(request(i), "", "")
			if err != nil {
				return
			}
			c.device.Publish(input, 1, false, raw)
			c.sent.Add(1)
			i++
		}
	}()
	return c, nil
}

// end stops the device (the oracle labels on until close).
func (c *companion) end() {
	close(c.stop)
	c.wg.Wait()
}

func (c *companion) close() {
	c.device.Disconnect(100)
	c.oracle.Disconnect(100)
}
