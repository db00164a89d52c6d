package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker/metrics"
)

// metricsHook counts clients and publishes.
type metricsHook struct {
	mqtt.HookBase
	m *metrics.Set
}

func newMetricsHook(m *metrics.Set) *metricsHook { return &metricsHook{m: m} }

func (h *metricsHook) ID() string { return "sedna-metrics" }

func (h *metricsHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect || b == mqtt.OnPublished
}

func (h *metricsHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Conn != nil {
		h.m.Clients.Inc()
	}
}

// OnDisconnect is also called for sessions restored from the store, which
// have no connection and were never counted.
func (h *metricsHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.Net.Conn != nil {
		h.m.Clients.Dec()
	}
}

func (h *metricsHook) OnPublished(*mqtt.Client, packets.Packet) { h.m.Received.Inc() }
