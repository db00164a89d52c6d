package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// SlowSubscriberOptions configure back-pressure for slow subscribers.
type SlowSubscriberOptions struct {
	// HighWater is the number of unacknowledged QoS 1/2 messages of one
	// connected subscriber above which publishers to its topics wait;
	// default 2048. The client queue is sized at twice this.
	HighWater int
	// LowWater is where waiting publishers resume; default HighWater/2.
	LowWater int
	// MaxWait bounds one publisher's wait, default 10 s, so that two
	// clients that each publish to the other cannot wait forever. A
	// publish that waited that long goes on (and is counted).
	MaxWait time.Duration
	// Disabled turns the hook off and leaves mochi's default client queue
	// (8,192), which drops messages, QoS 1 included, when it is full. For
	// measurements only.
	Disabled bool
}

// SlowSubscriberHook keeps a slow subscriber from losing QoS 1 messages.
//
// mochi drops a message, whatever its QoS, when a client's queue is full
// (measured: 46% of 100,000 QoS 1 messages lost by one paho subscriber fed
// by four publishers). This hook marks a connected subscriber "hot" when
// its unacknowledged messages reach HighWater; a QoS>0 publish to a topic
// a hot subscriber matches waits, before its PUBACK, until the subscriber
// has acknowledged down to LowWater. Since mochi reads each client's
// packets in order, waiting slows that publisher's connection only, and
// TCP carries the back-pressure to it.
//
// Offline persistent sessions are not waited for: their messages are kept
// in the session (up to 65,535) without slowing anyone.
type SlowSubscriberHook struct {
	mqtt.HookBase
	opts    SlowSubscriberOptions
	srv     *mqtt.Server
	metrics *Metrics
	log     *slog.Logger

	hotCount atomic.Int32
	mu       sync.Mutex
	hot      map[*mqtt.Client]struct{}
	wake     chan struct{} // closed and replaced whenever a hot client cools
	stop     chan struct{}
	stopOnce sync.Once
}

// NewSlowSubscriberHook makes the hook; the Server attaches its broker.
func NewSlowSubscriberHook(o SlowSubscriberOptions, m *Metrics, log *slog.Logger) *SlowSubscriberHook {
	if o.HighWater <= 0 {
		o.HighWater = 2048
	}
	if o.LowWater <= 0 || o.LowWater >= o.HighWater {
		o.LowWater = o.HighWater / 2
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 10 * time.Second
	}
	return &SlowSubscriberHook{opts: o, metrics: m, log: log, hot: map[*mqtt.Client]struct{}{},
		wake: make(chan struct{}), stop: make(chan struct{})}
}

// ID names the hook.
func (h *SlowSubscriberHook) ID() string { return "sedna-slow-subscribers" }

// Provides says which events the hook handles.
func (h *SlowSubscriberHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnDisconnect:
		return true
	}
	return false
}

func (h *SlowSubscriberHook) attach(s *mqtt.Server) { h.srv = s }

func (h *SlowSubscriberHook) shutdown() {
	h.stopOnce.Do(func() { close(h.stop) })
}

// OnQosPublish marks a subscriber hot when its in-flight count is high.
func (h *SlowSubscriberHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline || cl.Closed() || h.opts.Disabled {
		return
	}
	if cl.State.Inflight.Len() < h.opts.HighWater {
		return
	}
	h.mu.Lock()
	if _, ok := h.hot[cl]; !ok {
		h.hot[cl] = struct{}{}
		h.hotCount.Add(1)
	}
	h.mu.Unlock()
}

// OnQosComplete cools a hot subscriber that caught up.
func (h *SlowSubscriberHook) OnQosComplete(cl *mqtt.Client, _ packets.Packet) { h.maybeCool(cl, false) }

// OnQosDropped cools a hot subscriber that caught up.
func (h *SlowSubscriberHook) OnQosDropped(cl *mqtt.Client, _ packets.Packet) { h.maybeCool(cl, false) }

// OnDisconnect stops waiting for a subscriber that went away.
func (h *SlowSubscriberHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.maybeCool(cl, true) }

func (h *SlowSubscriberHook) maybeCool(cl *mqtt.Client, gone bool) {
	if h.hotCount.Load() == 0 {
		return
	}
	if !gone && cl.State.Inflight.Len() > h.opts.LowWater {
		return
	}
	h.mu.Lock()
	if _, ok := h.hot[cl]; ok {
		delete(h.hot, cl)
		h.hotCount.Add(-1)
		close(h.wake)
		h.wake = make(chan struct{})
	}
	h.mu.Unlock()
}

// OnPublish holds a QoS>0 publish while a subscriber it would reach is hot.
func (h *SlowSubscriberHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Qos == 0 || h.hotCount.Load() == 0 || h.srv == nil || h.opts.Disabled {
		return pk, nil
	}
	var deadline *time.Timer
	waited := false
	for {
		h.mu.Lock()
		blocked := h.blockedLocked(cl, pk.TopicName)
		wake := h.wake
		h.mu.Unlock()
		if !blocked {
			break
		}
		if !waited {
			waited = true
			deadline = time.NewTimer(h.opts.MaxWait)
			defer deadline.Stop()
			if h.metrics != nil {
				h.metrics.BackpressureWaits.Inc()
			}
		}
		select {
		case <-wake:
		case <-h.stop:
			return pk, nil
		case <-deadline.C:
			if h.metrics != nil {
				h.metrics.BackpressureTimeouts.Inc()
			}
			h.log.Warn("slow subscriber: publish went on after waiting", "publisher", cl.ID, "topic", pk.TopicName, "waited", h.opts.MaxWait)
			return pk, nil
		}
	}
	return pk, nil
}

func (h *SlowSubscriberHook) blockedLocked(pub *mqtt.Client, topic string) bool {
	subs := h.srv.Topics.Subscribers(topic)
	for id, sub := range subs.Subscriptions {
		if sub.Qos > 0 && id != pub.ID && h.isHotLocked(id) {
			return true
		}
	}
	for _, group := range subs.Shared {
		for id, sub := range group {
			if sub.Qos > 0 && id != pub.ID && h.isHotLocked(id) {
				return true
			}
		}
	}
	return false
}

func (h *SlowSubscriberHook) isHotLocked(id string) bool {
	cl, ok := h.srv.Clients.Get(id)
	if !ok {
		return false
	}
	_, hot := h.hot[cl]
	return hot && !cl.Closed()
}
