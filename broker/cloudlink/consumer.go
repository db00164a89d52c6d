package cloudlink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// ClientConfig says how to reach a broker as an MQTT client.
type ClientConfig struct {
	// URL is tcp://, ssl://, ws:// or wss://; or the nodes of one broker
	// cluster separated by commas, tried in order at each (re)connection
	// (broker.SplitURLs).
	URL string
	// ClientID must be unique on the broker; persistent sessions are
	// found by it.
	ClientID           string
	Username, Password string
	TLS                *tls.Config
	// CleanSession drops the session at disconnect; default false
	// (persistent: the broker keeps subscriptions and queues QoS 1
	// messages while the client is away). A ClientBus of a clean session
	// subscribes at QoS 0.
	CleanSession bool
	// FailFast makes the first connection attempt's failure (refused
	// credentials, no broker) an error of DialBus instead of a retry in
	// the background: for a command a person waits on.
	FailFast bool
	// OnResubscribeError, if set, is told when a ClientBus could not
	// subscribe to a filter again after a reconnection (the broker
	// refused it, or did not answer in time): until the next reconnection
	// nothing arrives on that filter. Default: the error is logged.
	OnResubscribeError func(filter string, err error)
	// OnReconnect, if set, is called (on a goroutine of paho's) each time
	// a ClientBus connects again after a lost connection, once its
	// subscriptions are made again: with a clean session, what was
	// published on them meanwhile is gone, and the caller may ask again.
	OnReconnect func()
}

func (c ClientConfig) options() *paho.ClientOptions {
	o := paho.NewClientOptions()
	if urls, err := broker.SplitURLs(c.URL); err == nil {
		for _, u := range urls {
			o.AddBroker(u)
		}
	} else {
		o.AddBroker(c.URL) // paho says what is wrong with it at connect
	}
	o.SetClientID(c.ClientID).
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

// subscribeTimeout bounds the wait for a broker's SUBACK or UNSUBACK.
const subscribeTimeout = 10 * time.Second

// codePacketIDInUse is the SUBACK return code of a SUBSCRIBE refused
// because its packet ID is in use (MQTT 5's 0x91, which mochi also sends a
// 3.1.1 client).
const codePacketIDInUse = 0x91

// subscribe subscribes c to filter at qos and waits for the broker's
// SUBACK, reading its return code: a refused filter is an error, never a
// subscription taken for made (paho's token carries no error for it).
//
// mochi (v2.7.9, Server.processSubscribe) refuses a SUBSCRIBE with 0x91
// when its packet ID equals that of a QoS 1 message the broker sent this
// client and has not had acknowledged yet: it looks the client's packet ID
// up among its own, though MQTT numbers each direction independently
// (3.1.1 section 2.3.1). paho and mochi both number from 1, so the two
// meet easily: a watch subscribing to a job's status while the job's
// events were arriving was refused, and received nothing at all. Such a
// refusal is transient (paho takes the next free ID, and the client
// acknowledges what it was sent), so the subscription is made again, until
// subscribeTimeout.
// errSubscribeRefused: the broker answered a SUBSCRIBE with a failure
// code (not a lost connection).
var errSubscribeRefused = errors.New("refused by the broker")

func subscribe(c paho.Client, filter string, qos byte, h paho.MessageHandler) error {
	deadline := time.Now().Add(subscribeTimeout)
	for tries := 1; ; tries++ {
		t := c.Subscribe(filter, qos, h)
		if !t.WaitTimeout(time.Until(deadline)) {
			return fmt.Errorf("broker: subscribe %s: no answer from the broker in %s", filter, subscribeTimeout)
		}
		if err := t.Error(); err != nil {
			return fmt.Errorf("broker: subscribe %s: %w", filter, err)
		}
		st, ok := t.(*paho.SubscribeToken)
		if !ok {
			return nil
		}
		code, ok := st.Result()[filter]
		switch {
		case !ok || code < 0x80:
			return nil
		case code == codePacketIDInUse && time.Now().Before(deadline):
			continue
		case code == codePacketIDInUse:
			return fmt.Errorf("broker: subscribe %s: %w %d times, its packet ID in use by a message the client has not acknowledged (return code %#x)", filter, errSubscribeRefused, tries, code)
		default:
			return fmt.Errorf("broker: subscribe %s: %w (return code %#x)", filter, errSubscribeRefused, code)
		}
	}
}

// ClientBus is a Bus over an MQTT client connection to an external broker
// (mosquitto, EMQX, RabbitMQ). Handlers run one at a time in arrival order
// and must not publish on the same bus and wait (paho cannot then read the
// acknowledgements), nor subscribe on it; a message is acknowledged after
// its handlers return nil, and a message for no handler (of a filter
// unsubscribed) at once (a clean session's subscriptions are QoS 0: see
// qos). A persistent session's messages that arrive before their filter is
// subscribed again (at connection: RabbitMQ sends a session's stored
// messages before any SUBSCRIBE) are kept until the process has made its
// subscriptions and says so (Release), then handed over in arrival order.
// Several parts of a process may subscribe to the same filter (the
// downlink and the control plane both read node statuses): the bus makes
// one subscription at the broker and gives each message to every handler
// of the filter, in the order they subscribed; one handler's error leaves
// the message unacknowledged for all, so each must take a redelivery.
type ClientBus struct {
	c        paho.Client
	store    *ackStore // paho's, telling PUBACKs (acked.go)
	clean    bool
	resubErr func(filter string, err error)

	// ops serializes Subscribe, Unsubscribe and the subscriptions made
	// again at each connection, so that none of them resurrects a filter
	// another one removed. It is held while waiting for the broker; mu,
	// which guards the maps, never is.
	ops  sync.Mutex
	mu   sync.Mutex
	subs map[string][]*handler
	// gone are filters unsubscribed while the connection was down: a
	// persistent session still holds them, so they are unsubscribed at the
	// next connection.
	gone map[string]bool
	// dropped are the filters a persistent session unsubscribed (and has
	// not subscribed again): a message of theirs has no reader.
	dropped map[string]bool
	// conns counts the connections made (OnConnect): a subscription whose
	// connection was lost while the broker was asked is made at the next.
	conns atomic.Int64

	// A persistent session's stored messages arrive right after the
	// CONNACK, before the process has subscribed again: parked keeps
	// them, unacknowledged and in arrival order, until the process says it
	// has subscribed to everything (Release); then a flusher hands each to
	// every handler of a filter it matches, and acknowledges those that
	// have none (filters the session kept that this process no longer
	// subscribes to). Later messages for the same handlers wait behind
	// them. Left unacknowledged for want of a handler, they had filled
	// RabbitMQ's prefetch (10), and the session got nothing more until its
	// next connection. deliver is held while a persistent session's
	// handlers run, so that they run one at a time; last is the message
	// taken last (paho calls each matching route with the same message,
	// and it is taken once, for every filter).
	deliver  sync.Mutex
	parked   []paho.Message
	released bool
	flushing bool
	closed   bool
	last     paho.Message
}

// maxParked bounds the messages parked for want of a handler; past it
// they stay unacknowledged, for the broker to send at the next connection.
const maxParked = 4096

// qos is the bus's subscriptions' QoS: 1 for a persistent session, whose
// messages wait for it at the broker; 0 for a clean session, which loses
// them with the connection anyway. On RabbitMQ (3.10) a clean session's
// QoS 1 subscription is a durable queue on the broker node the client was
// connected to: once that node died, the client, connected again to
// another, received nothing until it came back (a replica's statuses and
// acknowledgements, an API client's replies: TestRabbitMQNamesRestartAndFailover);
// at QoS 0 it is a transient queue, made again where the client connects.
func (b *ClientBus) qos() byte {
	if b.clean {
		return 0
	}
	return 1
}

// handler is one Subscribe's handler (a pointer, so that its Watch can
// remove it alone).
type handler struct {
	h func(topic string, payload []byte) error
}

// DialBus connects (retrying in the background until Close).
func DialBus(cfg ClientConfig) (*ClientBus, error) {
	b := &ClientBus{subs: map[string][]*handler{}, gone: map[string]bool{}, dropped: map[string]bool{},
		clean: cfg.CleanSession, resubErr: cfg.OnResubscribeError, store: newAckStore()}
	if b.resubErr == nil {
		b.resubErr = func(filter string, err error) {
			slog.Default().Error("broker: a subscription was not made again after a reconnection; nothing arrives on it until the next one",
				"client", cfg.ClientID, "filter", filter, "error", err)
		}
	}
	// Subscribe again on every connection: a clean session or a broker
	// that lost its state would otherwise stay silent.
	// A lost connection and the next one are said (at warn and info): the
	// manager's clients of an external broker were otherwise silent about
	// a broker node's loss.
	o := cfg.options().SetOnConnectHandler(func(c paho.Client) {
		again := b.conns.Add(1) > 1
		if again {
			slog.Default().Info("broker: connected again", "client", cfg.ClientID)
		}
		b.resubscribe(c)
		if again && cfg.OnReconnect != nil {
			cfg.OnReconnect()
		}
	}).SetConnectionLostHandler(func(_ paho.Client, err error) {
		slog.Default().Warn("broker: connection lost; connecting again", "client", cfg.ClientID, "error", err)
	}).SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
		// What the lost connection parked, the broker sends again on the
		// next (unacknowledged); an acknowledgement of it now would go
		// nowhere. Called before each attempt, before any new message.
		b.mu.Lock()
		b.parked = nil
		b.mu.Unlock()
	}).SetDefaultPublishHandler(b.unrouted).SetStore(b.store)
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

// resubscribe makes every subscription again on a new connection (paho
// calls it on a goroutine of its own), and checks what the broker says of
// each: a subscription it refused or did not acknowledge is reported, not
// taken for made.
func (b *ClientBus) resubscribe(c paho.Client) {
	b.ops.Lock()
	defer b.ops.Unlock()
	if !c.IsConnectionOpen() {
		return // lost again, or closed: the next connection subscribes
	}
	b.mu.Lock()
	subs := make([]string, 0, len(b.subs))
	for f := range b.subs {
		subs = append(subs, f)
	}
	var gone []string
	for f := range b.gone {
		gone = append(gone, f)
	}
	clear(b.gone)
	b.mu.Unlock()
	if len(gone) > 0 {
		c.Unsubscribe(gone...) // acknowledged or not, strays are acked by the default handler
	}
	for _, f := range subs {
		if err := subscribe(c, f, b.qos(), b.dispatch(f)); err != nil && c.IsConnectionOpen() {
			b.resubErr(f, err) // else the next connection tries again
		}
	}
}

// unrouted takes a message that matches no handler. With acknowledgements
// left to the handlers, paho acknowledges none of these by itself: a
// message of a filter just unsubscribed (paho drops the route when it
// sends UNSUBSCRIBE, before the broker has stopped sending) would stay
// unacknowledged in the broker's in-flight set of the session, counting
// against the client until the broker's slow-subscriber limit
// (SubscriberLimits.MaxPending) disconnected it. Such a message has no
// reader: it is acknowledged and dropped. A persistent session's message
// of a filter not unsubscribed (delivered at connection before the
// application subscribed again) is parked, unacknowledged, until
// Release (take).
func (b *ClientBus) unrouted(_ paho.Client, m paho.Message) {
	if b.clean {
		m.Ack()
		return
	}
	b.take(m)
}

// take handles a message of a persistent session, once however many of
// its filters paho routed it to: to the handlers of every filter it
// matches, unless a message parked before it goes to one of them (then it
// is parked behind it); with no handler, parked until Release, and
// acknowledged after it (a filter unsubscribed, or one the session kept
// from an earlier process).
func (b *ClientBus) take(m paho.Message) {
	b.deliver.Lock()
	defer b.deliver.Unlock()
	if m == b.last {
		return // routed again for another filter: taken already
	}
	b.last = m
	b.mu.Lock()
	fs := b.filtersLocked(m.Topic())
	switch {
	case len(fs) > 0 && !b.parkedAheadLocked(fs):
		hs := b.handlersLocked(fs)
		b.mu.Unlock()
		b.handle(m, hs)
	case len(fs) == 0 && (b.released || b.strayLocked(m.Topic())):
		b.mu.Unlock()
		m.Ack()
	default:
		if len(b.parked) < maxParked {
			b.parked = append(b.parked, m)
		}
		b.mu.Unlock()
	}
}

// strayLocked says whether topic is of a filter this bus unsubscribed.
func (b *ClientBus) strayLocked(topic string) bool {
	for f := range b.dropped {
		if topics.Match(f, topic) {
			return true
		}
	}
	return false
}

// filtersLocked returns the subscribed filters topic matches.
func (b *ClientBus) filtersLocked(topic string) []string {
	var fs []string
	for f, hs := range b.subs {
		if len(hs) > 0 && topics.Match(f, topic) {
			fs = append(fs, f)
		}
	}
	slices.Sort(fs) // handlers in one order for every message
	return fs
}

// handlersLocked returns the handlers of filters fs.
func (b *ClientBus) handlersLocked(fs []string) []*handler {
	var hs []*handler
	for _, f := range fs {
		hs = append(hs, b.subs[f]...)
	}
	return hs
}

// parkedAheadLocked says whether a parked message goes to one of fs (it
// goes first).
func (b *ClientBus) parkedAheadLocked(fs []string) bool {
	for _, p := range b.parked {
		for _, f := range fs {
			if topics.Match(f, p.Topic()) {
				return true
			}
		}
	}
	return false
}

// Release says the process has made its subscriptions: what the
// persistent session kept and sent before them is handed over, in
// arrival order, each message to every handler of a filter it matches,
// and what matches none is acknowledged and dropped (from then on, at
// once). A clean session has nothing to release. Handing over runs on a
// goroutine of its own, stopped by Close.
func (b *ClientBus) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.clean || b.released || b.closed {
		return
	}
	b.released = true
	if len(b.parked) > 0 && !b.flushing {
		b.flushing = true
		go b.flush()
	}
}

// flush hands the parked messages over, oldest first, until none is left
// or the bus is closed.
func (b *ClientBus) flush() {
	for {
		b.deliver.Lock()
		b.mu.Lock()
		if len(b.parked) == 0 || b.closed {
			b.flushing = false
			b.mu.Unlock()
			b.deliver.Unlock()
			return
		}
		m := b.parked[0]
		b.parked = slices.Delete(b.parked, 0, 1)
		hs := b.handlersLocked(b.filtersLocked(m.Topic()))
		b.mu.Unlock()
		if len(hs) > 0 {
			b.handle(m, hs)
		} else {
			m.Ack()
		}
		b.deliver.Unlock()
	}
}

// handle gives m to each of hs and acknowledges it if none failed.
func (b *ClientBus) handle(m paho.Message, hs []*handler) {
	ok := true
	for _, h := range hs {
		if h.h(m.Topic(), m.Payload()) != nil {
			ok = false
		}
	}
	if ok {
		m.Ack()
	}
}

// dispatch gives a message of filter to each of its handlers, and
// acknowledges it if none failed. A message of a filter that has no
// handler any more is unrouted's.
func (b *ClientBus) dispatch(filter string) paho.MessageHandler {
	return func(c paho.Client, m paho.Message) {
		if !b.clean {
			b.take(m)
			return
		}
		b.mu.Lock()
		hs := b.subs[filter]
		b.mu.Unlock()
		if len(hs) == 0 {
			b.unrouted(c, m)
			return
		}
		b.handle(m, hs)
	}
}

// PublishAsync publishes and returns at once; at QoS 1 the token
// completes on the broker's acknowledgement (PUBACK), also across a
// reconnection (acked.go), or fails with ErrNotAcknowledged if the bus is
// closed first.
func (b *ClientBus) PublishAsync(topic string, payload []byte, retain bool, qos byte) paho.Token {
	t := b.c.Publish(topic, qos, retain, payload)
	if qos == 0 {
		return t
	}
	return &ackToken{pub: t, store: b.store, topic: topic, payload: payload}
}

// Publish publishes and waits for the broker's acknowledgement (as
// PublishAsync's token), at most 30 s.
func (b *ClientBus) Publish(topic string, payload []byte, retain bool, qos byte) error {
	t := b.PublishAsync(topic, payload, retain, qos)
	if !t.WaitTimeout(30 * time.Second) {
		return errors.New("broker: publish timed out")
	}
	return t.Error()
}

// Subscribe subscribes (at QoS 1 on a persistent session, 0 on a clean
// one: ClientBus.qos), now if connected (waiting for the
// broker's answer, and returning an error if it refused the filter or did
// not answer in 10 s) and again on every reconnection. A subscription
// that fails is removed, unless the filter was subscribed already: a
// filter subscribed again gets one more handler (and the broker is asked
// again, so that it sends the filter's retained messages, to every
// handler), and if that fails the filter stays subscribed, with the new
// handler among the others.
func (b *ClientBus) Subscribe(filter string, handler func(topic string, payload []byte) error) error {
	_, err := b.add(filter, handler)
	return err
}

// add subscribes handler to filter and returns its entry.
func (b *ClientBus) add(filter string, h func(topic string, payload []byte) error) (*handler, error) {
	b.ops.Lock()
	defer b.ops.Unlock()
	e := &handler{h: h}
	b.mu.Lock()
	had := len(b.subs[filter]) > 0
	b.subs[filter] = append(b.subs[filter], e)
	delete(b.gone, filter)
	delete(b.dropped, filter)
	b.mu.Unlock()
	if !b.c.IsConnectionOpen() {
		return e, nil // made at the next connection (resubscribe)
	}
	conn := b.conns.Load()
	err := subscribe(b.c, filter, b.qos(), b.dispatch(filter))
	if err != nil && !errors.Is(err, errSubscribeRefused) && (!b.c.IsConnectionOpen() || b.conns.Load() != conn) {
		// The connection was lost while the broker was asked (another
		// client took the session over, a broker node died): the next
		// connection makes it, as for one asked while disconnected
		// (resubscribe waits for ops, which this holds).
		return e, nil
	}
	if err != nil && !had {
		b.mu.Lock()
		delete(b.subs, filter)
		if !b.clean {
			b.dropped[filter] = true
		}
		b.mu.Unlock()
		// The broker may yet make a subscription it did not acknowledge
		// in time.
		b.c.Unsubscribe(filter)
	}
	return e, err
}

// Watch is Subscribe, with a way to end the subscription: stop removes
// this handler, and unsubscribes at the broker if it was the filter's last.
func (b *ClientBus) Watch(filter string, handler func(topic string, payload []byte) error) (stop func() error, err error) {
	e, err := b.add(filter, handler)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = b.remove(filter, e) })
		return err
	}, nil
}

// Unsubscribe ends the subscription to filter: its handlers are not called
// again. It waits for the broker's acknowledgement (10 s at most); what
// the broker sent before it is acknowledged and dropped.
func (b *ClientBus) Unsubscribe(filter string) error { return b.remove(filter, nil) }

// remove removes handler e of filter (every handler of it if e is nil),
// and unsubscribes at the broker when none is left.
func (b *ClientBus) remove(filter string, e *handler) error {
	b.ops.Lock()
	defer b.ops.Unlock()
	b.mu.Lock()
	hs := b.subs[filter]
	had := len(hs) > 0
	if e != nil {
		if i := slices.Index(hs, e); i >= 0 {
			hs = slices.Delete(slices.Clone(hs), i, i+1)
		}
		if len(hs) > 0 {
			b.subs[filter] = hs
			b.mu.Unlock()
			return nil // the filter's other handlers keep it
		}
		had = slices.Contains(b.subs[filter], e)
	}
	delete(b.subs, filter)
	if had && !b.clean {
		b.dropped[filter] = true
		if !b.c.IsConnectionOpen() {
			b.gone[filter] = true
		}
	}
	b.mu.Unlock()
	if !had || !b.c.IsConnectionOpen() {
		return nil // a clean session lost it with the connection; a persistent one, at the next (resubscribe)
	}
	t := b.c.Unsubscribe(filter)
	if !t.WaitTimeout(subscribeTimeout) {
		return fmt.Errorf("broker: unsubscribe %s: no answer from the broker in %s", filter, subscribeTimeout)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("broker: unsubscribe %s: %w", filter, err)
	}
	return nil
}

// Subscriptions returns the filters subscribed (and made again at each
// connection), sorted.
func (b *ClientBus) Subscriptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.subs))
	for f := range b.subs {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// Close disconnects; a flusher of parked messages stops after the
// message it is handing over.
func (b *ClientBus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.parked = nil
	b.mu.Unlock()
	b.c.Disconnect(250)
	b.store.shutdown() // publishes still unacknowledged fail (paho leaves them if the connection was down)
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
	// Flush, if set, is called once the handler has had every new message
	// of a frame, before the consumer stores its window: a handler that
	// starts work for each message (a publish) and waits for all of it
	// here makes a frame cost one wait instead of one per message. An
	// error leaves the frame unacknowledged, as the handler's would.
	Flush func() error
	// Dead, if set, keeps what the consumer refuses (see Consumer), as
	// Component's; else it is logged.
	Dead      *queue.DeadLetters
	Component string
	Metrics   *metrics.Set
	Logger    *slog.Logger
}

// errOtherNode: a frame names another node than the topic it came on.
var errOtherNode = errors.New("not the node of its topic")

// Consumer reads bridge frames from any MQTT broker (the embedded cloud
// broker, mosquitto, EMQX) with a persistent session, drops messages whose
// ID it has seen, and acknowledges a frame only once its window (and the
// handler's writes) are in the store. It is how a cloud application gets
// each message of every node exactly once.
//
// It makes the checks of the embedded broker's ingress itself, since on an
// external broker (RabbitMQ, mosquitto) the frames arrive as the bridges
// sent them: a frame that does not decode, or that names another node
// than the uplink topic it came on, is refused whole; a message whose
// destination lies outside its node's subtree, or whose envelope does not
// decode, is refused; envelopes are stamped with their message's ID. What
// is refused is acknowledged (it is not sent again) and dead-lettered in
// Dead, never given to the handler.
type Consumer struct {
	cfg   ConsumerConfig
	dedup *queue.Dedup
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
	c := &Consumer{cfg: cfg, dedup: queue.NewDedup(cfg.Store, "consumer/"+cfg.Client.ClientID+"/"), log: cfg.Logger}
	return c, nil
}

// Start connects and subscribes, and returns once the broker has
// acknowledged the subscription (or after 10 s, if the broker cannot be
// reached yet); it keeps reconnecting until Close.
func (c *Consumer) Start() error {
	subscribed := make(chan error, 1)
	var first sync.Once
	o := c.cfg.Client.options().SetOnConnectHandler(func(cl paho.Client) {
		// Subscribe on every connection (the session may be gone), and
		// tell Start about the first; paho runs this on a goroutine of
		// its own, which may wait for the broker's answer.
		err := subscribe(cl, c.cfg.Filter, 1, c.onFrame)
		if err != nil && !errors.Is(err, errSubscribeRefused) && !cl.IsConnectionOpen() {
			return // lost while subscribing: the next connection tries again
		}
		told := false
		first.Do(func() { subscribed <- err; told = true })
		if !told && err != nil && cl.IsConnectionOpen() { // else the next connection tries again
			c.log.Error("consumer: not subscribed again after a reconnection; nothing arrives until the next one",
				"filter", c.cfg.Filter, "error", err)
		}
	})
	c.c = paho.NewClient(o)
	// The route before the connection: the frames the session kept reach
	// the client right after the CONNACK (on RabbitMQ, before any
	// SUBSCRIBE); without a handler paho leaves them unacknowledged, and
	// RabbitMQ sent nothing more once its prefetch (10) was full.
	c.c.AddRoute(c.cfg.Filter, c.onFrame)
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

// refuse dead-letters (or logs) what the consumer will not deliver.
func (c *Consumer) refuse(dl queue.DeadLetter) {
	if c.cfg.Dead == nil {
		c.log.Warn("consumer: refused", "reason", dl.Reason, "topic", dl.Topic, "message", dl.Message, "detail", dl.Detail)
		return
	}
	dl.Component = c.cfg.Component
	if dl.Component == "" {
		dl.Component = "consumer"
	}
	c.cfg.Dead.Add(dl)
}

func (c *Consumer) onFrame(_ paho.Client, m paho.Message) {
	if c.take(m.Topic(), m.Payload()) {
		m.Ack()
	}
}

// take handles a frame that came on topic, and says whether to
// acknowledge it: true once its messages are handled and its window
// stored, or once it is refused (dead-lettered); false if it must come
// again (a store or handler failure).
func (c *Consumer) take(topic string, payload []byte) bool {
	f, err := topics.UnmarshalFrame(payload, c.cfg.Limits)
	if err == nil {
		f.Rebase(time.Now())
		if p, perr := topics.Parse(topic); perr != nil || p.Class != topics.ClassUplink || p.Node != f.Node {
			err = fmt.Errorf("%w: a frame of node %q on %s", errOtherNode, f.Node, topic)
		}
	}
	if err != nil {
		reason := topics.ReasonOf(err)
		if errors.Is(err, errOtherNode) {
			reason = "not-allowed"
		}
		c.refuse(queue.DeadLetter{Reason: reason, Detail: err.Error(), Topic: topic, Payload: payload})
		return true
	}
	txn, err := c.dedup.Lock(f.Node, f.Stream, f.Epoch)
	if err != nil {
		c.log.Error("consumer: dedup window unreadable", "error", err)
		return false
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
		id := f.ID(fm)
		if reason, detail := checkRelayed(f.Node, fm, id, c.cfg.Limits); reason != "" {
			c.refuse(queue.DeadLetter{Reason: reason, Detail: detail, Topic: fm.Topic, Message: id.String(), Payload: fm.Payload})
			continue
		}
		d := Delivery{ID: id, Topic: fm.Topic, Payload: fm.Payload, Retain: fm.Retain, QoS: fm.QoS,
			Time: fm.Time, Expires: fm.Expires}
		if err := c.cfg.Handler(d, &b); err != nil {
			txn.Done(err)
			c.log.Warn("consumer: handler failed; the frame will come again", "id", d.ID, "error", err)
			return false
		}
	}
	if c.cfg.Flush != nil {
		if err := c.cfg.Flush(); err != nil {
			txn.Done(err)
			c.log.Warn("consumer: flush failed; the frame will come again", "node", f.Node, "stream", f.Stream, "error", err)
			return false
		}
	}
	txn.Put(&b)
	err = c.cfg.Store.Write(&b)
	txn.Done(err)
	if err != nil {
		c.log.Error("consumer: write failed; the frame will come again", "error", err)
		return false
	}
	if dups > 0 && c.cfg.Metrics != nil {
		c.cfg.Metrics.Duplicates.WithLabelValues("consumer").Add(float64(dups))
	}
	return true
}
