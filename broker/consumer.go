package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// ClientConfig says how to reach a broker as an MQTT client.
type ClientConfig struct {
	// URL is tcp://, ssl://, ws:// or wss://.
	URL string
	// ClientID must be unique on the broker; persistent sessions are
	// found by it.
	ClientID           string
	Username, Password string
	TLS                *tls.Config
	// CleanSession drops the session at disconnect; default false
	// (persistent: the broker keeps subscriptions and queues QoS 1
	// messages while the client is away).
	CleanSession bool
	// FailFast makes the first connection attempt's failure (refused
	// credentials, no broker) an error of DialBus instead of a retry in
	// the background: for a command a person waits on.
	FailFast bool
}

func (c ClientConfig) options() *paho.ClientOptions {
	o := paho.NewClientOptions().AddBroker(c.URL).SetClientID(c.ClientID).
		SetUsername(c.Username).SetPassword(c.Password).
		SetCleanSession(c.CleanSession).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(250 * time.Millisecond).
		SetMaxReconnectInterval(5 * time.Second).
		SetKeepAlive(15 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true).
		SetAutoAckDisabled(true)
	if c.TLS != nil {
		o.SetTLSConfig(c.TLS)
	}
	if c.FailFast {
		o.SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
	}
	return o
}

// ClientBus is a Bus over an MQTT client connection to an external broker
// (mosquitto, EMQX, ...). Handlers run one at a time in arrival order and
// must not publish on the same bus and wait (paho cannot then read the
// acknowledgements); a message is acknowledged after its handler returns
// nil.
type ClientBus struct {
	c    paho.Client
	mu   sync.Mutex
	subs map[string]func(topic string, payload []byte) error
}

// DialBus connects (retrying in the background until Close).
func DialBus(cfg ClientConfig) (*ClientBus, error) {
	b := &ClientBus{subs: map[string]func(string, []byte) error{}}
	o := cfg.options().SetOnConnectHandler(func(c paho.Client) {
		// Subscribe again on every connection: a clean session or a broker
		// that lost its state would otherwise stay silent.
		b.mu.Lock()
		defer b.mu.Unlock()
		for f, h := range b.subs {
			c.Subscribe(f, 1, wrap(h))
		}
	})
	b.c = paho.NewClient(o)
	tok := b.c.Connect()
	if tok.WaitTimeout(10*time.Second) && tok.Error() != nil {
		return nil, fmt.Errorf("broker: connect %s: %w", cfg.URL, tok.Error())
	}
	if cfg.FailFast && !b.c.IsConnected() {
		b.c.Disconnect(0)
		return nil, fmt.Errorf("broker: connect %s: no answer in 10s", cfg.URL)
	}
	return b, nil
}

func wrap(h func(string, []byte) error) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		if h(m.Topic(), m.Payload()) == nil {
			m.Ack()
		}
	}
}

// Publish publishes and waits for the broker's acknowledgement.
func (b *ClientBus) Publish(topic string, payload []byte, retain bool, qos byte) error {
	t := b.c.Publish(topic, qos, retain, payload)
	if !t.WaitTimeout(30 * time.Second) {
		return errors.New("broker: publish timed out")
	}
	return t.Error()
}

// Subscribe subscribes at QoS 1 (now if connected, and on every reconnect).
func (b *ClientBus) Subscribe(filter string, handler func(topic string, payload []byte) error) error {
	b.mu.Lock()
	b.subs[filter] = handler
	b.mu.Unlock()
	if !b.c.IsConnectionOpen() {
		return nil
	}
	t := b.c.Subscribe(filter, 1, wrap(handler))
	t.WaitTimeout(10 * time.Second)
	return t.Error()
}

// Close disconnects.
func (b *ClientBus) Close() error {
	b.c.Disconnect(250)
	return nil
}

// Delivery is one message a Consumer hands to its handler.
type Delivery struct {
	ID      topics.ID
	Topic   string
	Payload []byte
	Retain  bool
	QoS     byte
	Time    time.Time
	Expires time.Time
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Client ClientConfig
	// Filter selects the frames to consume; default every uplink frame.
	Filter string
	// Store keeps the consumer's dedup windows, and the handler's writes.
	Store store.Store
	// Limits bound frames; default topics.DefaultLimits.
	Limits topics.Limits
	// Handler is called once per new message, in order per stream. Writes
	// it adds to b are committed with the consumer's dedup window in one
	// atomic store write, so a handler that keeps its effects in b sees
	// each message exactly once, even across a crash of the consumer. An
	// error leaves the frame unacknowledged, to be delivered again.
	Handler func(d Delivery, b *store.Batch) error
	Metrics *Metrics
	Logger  *slog.Logger
}

// Consumer reads bridge frames from any MQTT broker (the embedded cloud
// broker, mosquitto, EMQX) with a persistent session, drops messages whose
// ID it has seen, and acknowledges a frame only once its window (and the
// handler's writes) are in the store. It is how a cloud application gets
// each message of every node exactly once.
type Consumer struct {
	cfg   ConsumerConfig
	dedup *Dedup
	c     paho.Client
	log   *slog.Logger
}

// NewConsumer makes a consumer; Start connects it.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Store == nil || cfg.Handler == nil {
		return nil, errors.New("broker: consumer needs a store and a handler")
	}
	if cfg.Client.ClientID == "" {
		return nil, errors.New("broker: consumer needs a client ID (its session is found by it)")
	}
	if cfg.Filter == "" {
		cfg.Filter = topics.UplinkFilter()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Consumer{cfg: cfg, dedup: NewDedup(cfg.Store, "consumer/"+cfg.Client.ClientID+"/"), log: cfg.Logger}
	return c, nil
}

// Start connects and subscribes, and returns once the broker has
// acknowledged the subscription (or after 10 s, if the broker cannot be
// reached yet); it keeps reconnecting until Close.
func (c *Consumer) Start() error {
	subscribed := make(chan error, 1)
	o := c.cfg.Client.options().SetOnConnectHandler(func(cl paho.Client) {
		// Subscribe on every connection (the session may be gone), and
		// tell Start about the first.
		t := cl.Subscribe(c.cfg.Filter, 1, c.onFrame)
		go func() {
			t.Wait()
			select {
			case subscribed <- t.Error():
			default:
			}
		}()
	})
	c.c = paho.NewClient(o)
	tok := c.c.Connect()
	if tok.WaitTimeout(10*time.Second) && tok.Error() != nil {
		return fmt.Errorf("broker: consumer connect %s: %w", c.cfg.Client.URL, tok.Error())
	}
	select {
	case err := <-subscribed:
		if err != nil {
			return fmt.Errorf("broker: consumer subscribe %s: %w", c.cfg.Filter, err)
		}
	case <-time.After(10 * time.Second):
		c.log.Warn("consumer: not subscribed yet; it keeps trying in the background", "url", c.cfg.Client.URL)
	}
	return nil
}

// Close disconnects; the broker keeps the session for the next Start.
func (c *Consumer) Close() error {
	if c.c != nil {
		c.c.Disconnect(250)
	}
	return nil
}

func (c *Consumer) onFrame(_ paho.Client, m paho.Message) {
	f, err := topics.UnmarshalFrame(m.Payload(), c.cfg.Limits)
	if err == nil {
		f.Rebase(time.Now())
	}
	if err != nil {
		c.log.Warn("consumer: bad frame skipped", "topic", m.Topic(), "error", err)
		m.Ack()
		return
	}
	txn, err := c.dedup.Lock(f.Node, f.Stream, f.Epoch)
	if err != nil {
		c.log.Error("consumer: dedup window unreadable", "error", err)
		return
	}
	// Floor holds for one hop: a frame from the cloud broker carries the
	// gaps the ingress closed in Skipped instead.
	txn.Skip(f.Skipped)
	var b store.Batch
	dups := 0
	for i := range f.Messages {
		fm := &f.Messages[i]
		if fm.Seq != 0 && !txn.Add(fm.Seq) {
			dups++
			continue
		}
		d := Delivery{ID: f.ID(fm), Topic: fm.Topic, Payload: fm.Payload, Retain: fm.Retain, QoS: fm.QoS,
			Time: fm.Time, Expires: fm.Expires}
		if err := c.cfg.Handler(d, &b); err != nil {
			txn.Done(err)
			c.log.Warn("consumer: handler failed; the frame will come again", "id", d.ID, "error", err)
			return
		}
	}
	txn.Put(&b)
	err = c.cfg.Store.Write(&b)
	txn.Done(err)
	if err != nil {
		c.log.Error("consumer: write failed; the frame will come again", "error", err)
		return
	}
	if dups > 0 && c.cfg.Metrics != nil {
		c.cfg.Metrics.Duplicates.WithLabelValues("consumer").Add(float64(dups))
	}
	m.Ack()
}
