package simulator

import (
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// devClient is a simulated device's MQTT connection to its node's broker.
//
// Its publish tokens succeed only on the broker's PUBACK. paho's own
// reconnection cannot promise that: on reconnecting, even with a clean
// session, it sends again what was in flight and completes the old
// token, without error, as it does so (messageIds.claimID), before any
// broker acknowledged it. A device that counted such a token acked and
// disconnected at once, before the repeat was written, promised a message
// no broker had (a board killed at 4 s: 105 acked, 104 delivered). So a
// clean-session device does not reconnect automatically: a lost
// connection fails what was in flight, and ready connects again with a
// clean start that drops it. A persistent-session device (a twin)
// reconnects automatically: its broker keeps the session, and paho's
// repeat is the protocol's own; it stays connected until the run has
// drained, so the repeat is written.
type devClient struct {
	paho.Client
	clean   bool
	connect paho.Token // the connection attempt of a clean client
}

// newDevClient connects to addr as id; onConnect runs on each connection
// and onLost when one is lost.
func newDevClient(addr, id string, clean bool, onConnect paho.OnConnectHandler, onLost paho.ConnectionLostHandler) *devClient {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(!clean).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetWriteTimeout(5 * time.Second).
		SetConnectionLostHandler(onLost)
	if onConnect != nil {
		o.SetOnConnectHandler(onConnect)
	}
	c := &devClient{Client: paho.NewClient(o), clean: clean}
	c.connect = c.Connect()
	return c
}

// ready reports whether the device is connected. A clean client whose
// connection was lost starts connecting again (in the background, retried
// until it connects or the client disconnects).
func (c *devClient) ready() bool {
	if c.IsConnectionOpen() {
		return true
	}
	if c.clean {
		select {
		case <-c.connect.Done():
			// Connected then lost (or given up): a new connection. paho
			// failed the lost one's tokens; its clean start drops what
			// they carried instead of sending it again.
			c.connect = c.Connect()
		default: // still connecting
		}
	}
	return false
}
