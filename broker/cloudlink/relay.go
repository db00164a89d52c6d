package cloudlink

import (
	"context"
	"errors"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Client is the relay's consumer connection to the external broker;
	// its session must be persistent (the default).
	Client ClientConfig
	// Bus publishes the unwrapped messages: a second connection, since a
	// consumer's handler may not publish on its own connection and wait.
	Bus     Bus
	Store   store.Store
	Limits  topics.Limits
	Dead    *queue.DeadLetters
	Metrics *metrics.Set
	Logger  *slog.Logger
}

// Relay is the Ingress for an external cloud broker (mosquitto, EMQX),
// where no hook can run before the PUBACK: the cloud manager consumes the
// frames as a Consumer (persistent session, dedup by ID, acknowledged after
// its window is stored) and publishes each new message unwrapped on its
// destination topic. The frames themselves reach other consumers straight
// from the broker. Plain subscribers of the unwrapped topics get each
// message at least once (a crash of the manager between publishing and
// storing its window repeats it); consumers of frames or envelopes get it
// once by ID.
type Relay struct {
	c *Consumer
}

// NewRelay makes a relay; Start connects it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Bus == nil || cfg.Dead == nil {
		return nil, errors.New("broker: relay needs a bus and a dead-letter store")
	}
	cfg.Limits = cfg.Limits.OrDefault()
	// On a ClientBus a frame's messages are published together and waited
	// for once (Flush), in order on the bus's connection; the handler and
	// Flush run one frame at a time on the consumer's goroutine.
	async, _ := cfg.Bus.(interface {
		PublishAsync(topic string, payload []byte, retain bool, qos byte) paho.Token
	})
	var pending []paho.Token
	flush := func() error {
		toks := pending
		pending = nil
		for _, t := range toks {
			if !t.WaitTimeout(30 * time.Second) {
				return errors.New("broker: relay: publish timed out")
			}
			if err := t.Error(); err != nil {
				return err
			}
		}
		return nil
	}
	// The consumer checks each frame and message as the ingress does and
	// dead-letters what it refuses; the handler gets the rest, envelopes
	// stamped with their ID.
	c, err := NewConsumer(ConsumerConfig{Client: cfg.Client, Store: cfg.Store, Limits: cfg.Limits, Metrics: cfg.Metrics,
		Logger: cfg.Logger, Flush: flush, Dead: cfg.Dead, Component: "cloud/relay", Handler: func(d Delivery, _ *store.Batch) error {
			if topics.Expired(d.Time, d.Expires, time.Now(), 0) {
				return nil
			}
			if async != nil {
				pending = append(pending, async.PublishAsync(d.Topic, d.Payload, d.Retain, d.QoS))
				return nil
			}
			return cfg.Bus.Publish(d.Topic, d.Payload, d.Retain, d.QoS)
		}})
	if err != nil {
		return nil, err
	}
	return &Relay{c: c}, nil
}

// Start connects the relay's consumer.
func (r *Relay) Start() error { return r.c.Start() }

// Close disconnects it; the broker keeps its session.
func (r *Relay) Close() error { return r.c.Close() }

// ConsumeAMQP relays the frames of an AMQP queue (an uplink partition on
// RabbitMQ) until ctx ends, instead of Start's MQTT subscription
// (Consumer.ConsumeAMQP).
func (r *Relay) ConsumeAMQP(ctx context.Context, src AMQPSource) error {
	return r.c.ConsumeAMQP(ctx, src)
}
