package cloudlink

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Bus is how a cloud component talks to the cloud broker: the embedded one
// (InlineBus) or an external one (ClientBus).
type Bus interface {
	// Publish publishes; it returns once the broker has the message.
	Publish(topic string, payload []byte, retain bool, qos byte) error
	// Subscribe calls handler for each message on filter. A handler error
	// asks for redelivery where the bus can (ClientBus does not
	// acknowledge the message).
	Subscribe(filter string, handler func(topic string, payload []byte) error) error
	// Watch is Subscribe, with a way to end the subscription.
	Watch(filter string, handler func(topic string, payload []byte) error) (stop func() error, err error)
}

// InlineBus is a Bus over the embedded broker's inline client.
type InlineBus struct {
	srv  *broker.Server
	from access.Principal
}

// NewInlineBus makes a Bus over srv whose publishes are from (see
// Server.Publish).
func NewInlineBus(srv *broker.Server, from access.Principal) *InlineBus {
	return &InlineBus{srv: srv, from: from}
}

// Publish publishes from inside the process, on behalf of the bus's
// principal.
func (b *InlineBus) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(b.from, topic, payload, retain, qos)
}

// Subscribe adds an inline subscription; handler runs on the publisher's
// goroutine and must be quick.
func (b *InlineBus) Subscribe(filter string, handler func(topic string, payload []byte) error) error {
	_, err := b.Watch(filter, handler)
	return err
}

// Watch is Subscribe, with a way to remove the subscription.
func (b *InlineBus) Watch(filter string, handler func(topic string, payload []byte) error) (stop func() error, err error) {
	return b.srv.Watch(filter, func(topic string, payload []byte, _ bool) { _ = handler(topic, payload) })
}

// Server is the broker the bus is on.
func (b *InlineBus) Server() *broker.Server { return b.srv }

// DownlinkConfig configures the cloud's Downlink.
type DownlinkConfig struct {
	// Store is the cloud process's store.
	Store store.Store
	// Queue bounds the outbox (all nodes together).
	Queue queue.Options
	// Window is how many messages may be sent to a node beyond what it
	// acknowledged; default 4096.
	Window int
	// FrameMessages and FrameBytes bound one frame; defaults 512 and 256 KiB.
	FrameMessages, FrameBytes int
	// Limits bound payloads; default topics.DefaultLimits.
	Limits topics.Limits
	// Dead, if set, keeps a record of each message for a node refused for
	// its size (and reports it as an error event).
	Dead    *queue.DeadLetters
	Metrics *metrics.Set
	Logger  *slog.Logger
	// Owns, if set, says which nodes this Downlink sends to: the
	// statuses and acknowledgements of others are ignored (replicas of
	// the cloud manager that share the outboxes by partition).
	Owns func(node string) bool
	// Forward, if set, is given every message of Send instead of the
	// outbox: this Downlink keeps no outbox and sends nothing itself (the
	// partition's owner does, having been forwarded the message); it
	// still follows the nodes' statuses, for Online and SendNow.
	Forward func(node string, r queue.Record) error
}

// Downlink is the cloud's durable outbox per node. Messages for node N
// (published by cloud applications on topics.ToNodePrefix(N), or given to
// Send) are kept until N acknowledges them (topics.DownAck); they are sent
// in frames on topics.Downlink(N) while N is online, and from N's last
// acknowledged seq when it reconnects and asks for a replay. The outbox
// carries every message alike: the desired state of jobs travels as the
// control plane's specs, which the node reconciles.
//
// On the embedded broker the Downlink is also a hook: a publish on
// topics.ToNodePrefix is written to the outbox before its PUBACK and not
// delivered as such.
type Downlink struct {
	mqtt.HookBase
	cfg   DownlinkConfig
	q     *queue.Queue
	epoch uint64
	bus   Bus
	log   *slog.Logger
	srv   *mqtt.Server
	clock broker.Clock

	mu      sync.Mutex
	nodes   map[string]*nodeLink
	kick    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	unwatch []func() error
}

type nodeLink struct {
	status topics.NodeStatus // the latest the node said
	online bool
	next   uint64 // next seq to send
	acked  uint64 // highest seq the node acknowledged in this epoch
}

// NewDownlink opens the outbox.
func NewDownlink(cfg DownlinkConfig) (*Downlink, error) {
	if cfg.Store == nil {
		return nil, errors.New("broker: downlink needs a store")
	}
	if cfg.Window <= 0 {
		cfg.Window = 4096
	}
	if cfg.FrameMessages <= 0 {
		cfg.FrameMessages = 512
	}
	if cfg.FrameBytes <= 0 {
		cfg.FrameBytes = 256 << 10
	}
	cfg.Limits = cfg.Limits.OrDefault()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Downlink{cfg: cfg, epoch: cfg.Store.Epoch(), log: cfg.Logger, nodes: map[string]*nodeLink{},
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if cfg.Forward != nil {
		return d, nil
	}
	qo := cfg.Queue
	qo.Name, qo.Metrics, qo.Logger, qo.StreamsAreNodes = "downlink", cfg.Metrics, cfg.Logger, true
	q, err := queue.Open(store.Sub(cfg.Store, "downlink/"), qo)
	if err != nil {
		return nil, err
	}
	d.q = q
	return d, nil
}

// ID names the hook.
func (d *Downlink) ID() string { return "sedna-downlink" }

// Provides says which events the hook handles.
func (d *Downlink) Provides(b byte) bool { return b == mqtt.OnPublish }

// Attach gives the hook its broker, to refuse publishes properly.
func (d *Downlink) Attach(s *broker.Server) { d.srv, d.clock = s.Mochi(), s.Now }

// Queue returns the outbox (for statistics); nil with Forward.
func (d *Downlink) Queue() *queue.Queue { return d.q }

// Start listens to node status and acknowledgements on bus and sends.
// A Downlink of some nodes (Owns) ends its subscriptions at Close; the
// others keep them in the bus's session, for the next start.
func (d *Downlink) Start(bus Bus) error {
	d.bus = bus
	watch := func(filter string, h func(string, []byte) error) error {
		if d.cfg.Owns == nil {
			return bus.Subscribe(filter, h)
		}
		stop, err := bus.Watch(filter, h)
		if err == nil {
			d.unwatch = append(d.unwatch, stop)
		}
		return err
	}
	if err := watch(topics.NodeStatusFilter(), d.onStatus); err != nil {
		return fmt.Errorf("broker: downlink: %w", err)
	}
	if d.q == nil {
		return nil // Forward: the owner of each node's outbox sends it
	}
	if err := watch(topics.DownAckFilter(), d.onAck); err != nil {
		return fmt.Errorf("broker: downlink: %w", err)
	}
	d.wg.Add(1)
	go d.sender()
	return nil
}

// Close ends its subscriptions (Owns), stops the sender and closes the
// outbox.
func (d *Downlink) Close() error {
	d.once.Do(func() {
		for _, stop := range d.unwatch {
			_ = stop()
		}
		close(d.stop)
		d.wg.Wait()
		if d.q != nil {
			_ = d.q.Close()
		}
	})
	return nil
}

// Keep appends a message forwarded for node (see DownlinkConfig.Forward)
// to the outbox, with extra in the same atomic write (the forwarded
// copy's deletion: it moves exactly once).
func (d *Downlink) Keep(node string, r queue.Record, extra *store.Batch) error {
	if d.q == nil {
		return errors.New("broker: downlink: a forwarding downlink keeps no outbox")
	}
	_, err := d.q.Append(node, []queue.Record{r}, extra)
	return err
}

// Forget takes every node for offline until it says otherwise (a status,
// a replay request), and returns the nodes it has messages for: a
// Downlink whose subscriptions were made again on a clean session may
// have missed their statuses and replay requests, and the frames it sent
// them meanwhile; asked for their status, they answer, and are sent their
// outboxes again from what they acknowledged.
func (d *Downlink) Forget() []string {
	d.mu.Lock()
	for _, l := range d.nodes {
		l.online = false
		l.status = topics.NodeStatus{}
	}
	d.mu.Unlock()
	if d.q == nil {
		return nil
	}
	return d.q.Streams()
}

// Known says whether the downlink has had a status of node.
func (d *Downlink) Known(node string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.nodes[node]
	return ok && l.status.State != ""
}

// Send keeps a message for node until the node has it. topic must lie
// under topics.ToNodePrefix(node); the node maps it with its downlink rules.
func (d *Downlink) Send(node, topic string, payload []byte, retain bool, qos byte, ttl time.Duration) (uint64, error) {
	if err := topics.ValidateName("node", node); err != nil {
		return 0, err
	}
	if !strings.HasPrefix(topic, topics.ToNodePrefix(node)) {
		return 0, fmt.Errorf("broker: downlink: topic %q is not under %s", topic, topics.ToNodePrefix(node))
	}
	if len(payload) > d.cfg.Limits.MaxBody {
		return 0, fmt.Errorf("broker: downlink: payload of %d bytes is over the limit of %d", len(payload), d.cfg.Limits.MaxBody)
	}
	r := queue.Record{Topic: topic, Payload: payload, Retain: retain, QoS: qos}
	if ttl > 0 {
		r.Expires = d.clock.Now().Add(ttl)
	}
	if d.cfg.Forward != nil {
		r.Time = d.clock.Now()
		return 0, d.cfg.Forward(node, r)
	}
	return d.q.Append(node, []queue.Record{r}, nil)
}

// Online reports whether node is connected, as the latest status it gave
// says (topics.NodeStatus.Supersedes).
func (d *Downlink) Online(node string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.nodes[node]
	return ok && l.online
}

// ErrNodeOffline: the node is not connected.
var ErrNodeOffline = errors.New("broker: downlink: the node is offline")

// SendNow sends a message to node at once, best effort, without the outbox:
// for replies worth nothing after a deadline that their node watches (joint
// inference). It fails with ErrNodeOffline when the node is not connected;
// one lost with a link that breaks is not sent again. The node delivers it
// without its inbox.
func (d *Downlink) SendNow(node, topic string, payload []byte, ttl time.Duration) error {
	if err := topics.ValidateName("node", node); err != nil {
		return err
	}
	if !strings.HasPrefix(topic, topics.ToNodePrefix(node)) {
		return fmt.Errorf("broker: downlink: topic %q is not under %s", topic, topics.ToNodePrefix(node))
	}
	if len(payload) > d.cfg.Limits.MaxBody {
		return fmt.Errorf("broker: downlink: payload of %d bytes is over the limit of %d", len(payload), d.cfg.Limits.MaxBody)
	}
	d.mu.Lock()
	online := d.link(node).online
	d.mu.Unlock()
	if !online || d.bus == nil {
		return ErrNodeOffline
	}
	now := d.clock.Now()
	m := topics.FrameMessage{Topic: topic, Payload: payload, Time: now}
	if ttl > 0 {
		m.Expires = now.Add(ttl)
	}
	f := topics.Frame{Node: node, Stream: topics.StreamDown, Epoch: d.epoch, Sent: now, Messages: []topics.FrameMessage{m}}
	raw, err := f.Marshal()
	if err != nil {
		return err
	}
	return d.bus.Publish(topics.Downlink(node), raw, false, 0)
}

// OnPublish takes a cloud application's message for a node into the
// outbox before its PUBACK.
func (d *Downlink) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	p, err := topics.Parse(pk.TopicName)
	if err != nil || p.Class != topics.ClassToNode {
		return pk, nil
	}
	var ttl time.Duration
	if pk.Properties.MessageExpiryInterval > 0 {
		ttl = time.Duration(pk.Properties.MessageExpiryInterval) * time.Second
	}
	if len(pk.Payload) > d.cfg.Limits.MaxBody {
		// Over the message limit: acknowledged, so the publisher does not
		// send it again forever, and dead-lettered where it can read why;
		// an MQTT 5 publisher gets the reason code.
		detail := fmt.Sprintf("a message of %d bytes for node %s, over the limit of %d", len(pk.Payload), p.Node, d.cfg.Limits.MaxBody)
		d.log.Warn("downlink: publish too large", "topic", pk.TopicName, "client", cl.ID, "bytes", len(pk.Payload))
		if d.cfg.Dead != nil {
			d.cfg.Dead.Add(queue.DeadLetter{Component: "cloud/downlink", Reason: "too-large", Detail: detail, Topic: pk.TopicName, Client: cl.ID})
		}
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
			return pk, packets.ErrQuotaExceeded
		}
		return pk, packets.CodeSuccessIgnore
	}
	if _, err := d.Send(p.Node, pk.TopicName, append([]byte(nil), pk.Payload...), pk.FixedHeader.Retain, max(pk.FixedHeader.Qos, 1), ttl); err != nil {
		d.log.Warn("downlink: publish refused", "topic", pk.TopicName, "client", cl.ID, "error", err)
		if d.cfg.Metrics != nil {
			d.cfg.Metrics.Refused.WithLabelValues("downlink").Inc()
		}
		if pk.FixedHeader.Qos == 0 {
			return pk, packets.ErrRejectPacket
		}
		if cl.Properties.ProtocolVersion == 5 {
			return pk, packets.ErrQuotaExceeded
		}
		if d.srv != nil {
			_ = d.srv.DisconnectClient(cl, packets.ErrQuotaExceeded)
		}
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

func (d *Downlink) link(node string) *nodeLink {
	l, ok := d.nodes[node]
	if !ok {
		l = &nodeLink{next: 1}
		if d.q != nil {
			done, _ := d.q.Cursor(node)
			l.next = done + 1
		}
		d.nodes[node] = l
	}
	return l
}

func (d *Downlink) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Downlink) onStatus(topic string, payload []byte) error {
	p, err := topics.Parse(topic)
	if err != nil || p.Class != topics.ClassNodeStatus || (d.cfg.Owns != nil && !d.cfg.Owns(p.Node)) {
		return nil
	}
	online := false
	var st topics.NodeStatus
	if len(payload) > 0 {
		env, err := topics.UnmarshalEnvelope(payload, d.cfg.Limits)
		if err != nil {
			return nil
		}
		if env.DecodeBody(&st) == nil {
			online = st.State == topics.NodeOnline
		}
	}
	d.mu.Lock()
	l := d.link(p.Node)
	if len(payload) > 0 && !st.Supersedes(l.status) {
		d.mu.Unlock()
		return nil // a will of an older session: the node is as it was
	}
	l.status = st
	if online && !l.online && d.q != nil {
		done, _ := d.q.Cursor(p.Node)
		l.next = done + 1
	}
	l.online = online
	d.mu.Unlock()
	d.poke()
	return nil
}

func (d *Downlink) onAck(topic string, payload []byte) error {
	p, err := topics.Parse(topic)
	if err != nil || p.Class != topics.ClassDownAck || (d.cfg.Owns != nil && !d.cfg.Owns(p.Node)) {
		return nil
	}
	env, err := topics.UnmarshalEnvelope(payload, d.cfg.Limits)
	if err != nil {
		return nil
	}
	var a topics.DownAck
	if env.DecodeBody(&a) != nil {
		return nil
	}
	if a.Epoch == d.epoch && a.Seq > 0 {
		d.q.AckThrough(p.Node, a.Seq)
	}
	d.mu.Lock()
	l := d.link(p.Node)
	if a.Epoch == d.epoch && a.Seq > l.acked {
		l.acked = a.Seq
	}
	if a.Replay {
		done, _ := d.q.Cursor(p.Node)
		from := done
		if a.Epoch == d.epoch && a.Seq > from {
			from = a.Seq
		}
		l.next, l.online = from+1, true
	}
	d.mu.Unlock()
	d.poke()
	return nil
}

// sender sends waiting messages to online nodes, a window at a time.
func (d *Downlink) sender() {
	defer d.wg.Done()
	for {
		changed := d.q.Changed()
		busy := false
		for _, node := range d.q.Streams() {
			if d.sendSome(node) {
				busy = true
			}
		}
		if busy {
			continue
		}
		select {
		case <-d.stop:
			return
		case <-changed:
		case <-d.kick:
		}
	}
}

// sendSome sends one frame to node if it is online and within its window,
// and reports whether it sent anything.
func (d *Downlink) sendSome(node string) bool {
	d.mu.Lock()
	l := d.link(node)
	online, from := l.online, l.next
	done, _ := d.q.Cursor(node)
	if from <= done {
		from = done + 1
	}
	room := int(int64(d.cfg.Window) - int64(from-1-max(l.acked, done)))
	d.mu.Unlock()
	if !online || room <= 0 {
		return false
	}
	recs, after, err := d.q.Read(node, from, min(room, d.cfg.FrameMessages), d.cfg.FrameBytes)
	if err != nil {
		d.log.Error("downlink: read failed", "node", node, "error", err)
		return false
	}
	if len(recs) == 0 {
		return false
	}
	now := d.clock.Now()
	f := topics.Frame{Node: node, Stream: topics.StreamDown, Epoch: d.epoch, Floor: done, Sent: now}
	var expired []uint64
	for i := range recs {
		r := &recs[i]
		if topics.Expired(r.Time, r.Expires, now, 0) {
			expired = append(expired, r.Seq)
			continue
		}
		f.Messages = append(f.Messages, topics.FrameMessage{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload,
			Retain: r.Retain, QoS: r.QoS, Time: r.Time, Expires: r.Expires})
	}
	if len(expired) > 0 {
		n := d.q.Ack(node, expired...)
		if d.cfg.Metrics != nil {
			d.cfg.Metrics.Expired.WithLabelValues(string(topics.StreamDown)).Add(float64(n))
		}
	}
	if len(f.Messages) > 0 {
		raw, err := f.Marshal()
		if err != nil {
			d.log.Error("downlink: encode failed", "node", node, "error", err)
			return false
		}
		if err := d.bus.Publish(topics.Downlink(node), raw, false, 1); err != nil {
			d.log.Warn("downlink: publish failed", "node", node, "error", err)
			return false
		}
		if d.cfg.Metrics != nil {
			d.cfg.Metrics.Frames.WithLabelValues(string(topics.StreamDown)).Inc()
			d.cfg.Metrics.Sent.WithLabelValues(string(topics.StreamDown)).Add(float64(len(f.Messages)))
		}
	}
	d.mu.Lock()
	if l.next < after {
		l.next = after
	}
	d.mu.Unlock()
	return true
}
