package bridge

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Config configures the bridge of an edge node.
type Config struct {
	// Node is the node's name, one topic level.
	Node string
	// CloudURL is the cloud broker: tcp://, ssl://, ws:// or wss://; or
	// the brokers of one cluster (RabbitMQ's nodes, say) separated by
	// commas. The bridge connects to one at a time and, when an attempt
	// fails or the link is lost, tries the next in turn: a node whose
	// broker died reconnects to another (docs/SCALE.md).
	CloudURL string
	// Username and Password authenticate the node on the cloud broker.
	Username, Password string
	// TLS is used for ssl:// and wss:// URLs.
	TLS *tls.Config
	// Rules say what goes up and down; nil means DefaultRules().
	Rules []Rule
	// Store is the process's store; the bridge keeps its queue, inbox,
	// dedup windows and dead letters in it.
	Store store.Store
	// Server is the node's broker; the bridge captures from it and
	// republishes downlink messages on it.
	Server *broker.Server
	// Queue bounds the uplink queue.
	Queue queue.Options
	// Window is the number of frames in flight per stream; default 8.
	Window int
	// FrameMessages and FrameBytes bound one frame; defaults 512 messages
	// and 256 KiB (a single larger message goes alone).
	FrameMessages int
	FrameBytes    int
	// Limits bound envelopes and payloads; default topics.DefaultLimits.
	Limits topics.Limits
	// MaxRefusals is how often the cloud may drop the connection on the
	// same lone message before it is dead-lettered; default 5.
	MaxRefusals int
	// KeepAlive of the cloud connection; default 15 s.
	KeepAlive time.Duration
	// Reconnect backoff (see backoff): the first step's ceiling, default
	// 100 ms, doubling with each failure up to FastBackoff (default 1 s)
	// while the link was up less than FastBackoffFor ago (default 1 min),
	// up to MaxBackoff (default 10 s) after that and after failures that
	// only a change of configuration mends.
	MinBackoff, MaxBackoff      time.Duration
	FastBackoff, FastBackoffFor time.Duration
	// ConnectTimeout is the least time a connection attempt is given
	// (dial, TLS handshake, CONNECT and CONNACK together); default 1 s. An
	// attempt is given the longest of this, its backoff step and 3 times
	// what the last successful connection took (at most MaxBackoff), and
	// no more: an attempt swallowed by a dead link does not hold the next
	// one back. A broker that took the connection and did not answer
	// CONNECT in time (busy) gets twice as long the next time, up to 2 min.
	ConnectTimeout time.Duration
	// Version is reported in the node's status.
	Version string
	Metrics *metrics.Set
	Logger  *slog.Logger
}

// Bridge carries an edge node's traffic to and from the cloud broker:
// captured publishes go up from the durable Queue in frames, acknowledged
// per frame; the downlink comes in frames, is deduplicated and kept in the
// inbox, then republished on the edge broker. It also keeps the node's
// status (online, or offline by MQTT will).
type Bridge struct {
	cfg     Config
	node    string
	epoch   uint64
	rules   Rules
	up      *queue.Queue
	inbox   *queue.Queue
	dedup   *queue.Dedup
	dead    *queue.DeadLetters
	capture *CaptureHook
	srv     *broker.Server
	log     *slog.Logger
	metrics *metrics.Set
	meta    store.Store
	metaAbs string // prefix of meta in the root store, for queue extra batches
	urls    []string

	mu        sync.Mutex
	client    paho.Client
	connected bool
	linkCh    chan struct{} // closed and replaced when the link goes up or down
	downEpoch uint64        // the cloud outbox epoch we last received from
	session   uint64        // number of the current (or last) connection to the cloud
	downFIFO  []paho.Message
	downKick  chan struct{}
	sentHigh  map[string]uint64
	refusals  map[string]refusal

	jitter    func(n int64) int64 // the backoff's random source; nil: math/rand/v2 (tests set it)
	firstDone chan struct{}       // closed when the first connection attempt has ended
	firstErr  error               // its error (a *LinkError), set before firstDone is closed

	consumers atomic.Pointer[[]consumer] // in-process consumers of downlink messages (Consume); read per delivery without a lock

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type consumer struct {
	filter string
	take   func(topic string, payload []byte)
}

// Consume gives the downlink messages whose local topic matches filter to
// take instead of the node's broker: for the one part of the node that
// reconciles them (the edge agent's jobs take the specs, and serve the
// accepted ones on the broker). take runs on the bridge's inbox goroutine,
// in the order the messages came; it must keep what it must not lose
// before it returns (the message is done with then) and must not block
// for long. Call it before Start.
func (b *Bridge) Consume(filter string, take func(topic string, payload []byte)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var cs []consumer
	if old := b.consumers.Load(); old != nil {
		cs = append(cs, *old...)
	}
	cs = append(cs, consumer{filter: filter, take: take})
	b.consumers.Store(&cs)
}

func (b *Bridge) consumer(topic string) func(string, []byte) {
	cs := b.consumers.Load()
	if cs == nil {
		return nil
	}
	for _, c := range *cs {
		if topics.Match(c.filter, topic) {
			return c.take
		}
	}
	return nil
}

// metaPrefix holds the bridge's small state in the process store.
const metaPrefix = "bridge/meta/"

type refusal struct {
	seq   uint64
	count int
}

// New opens the bridge's durable parts and registers its capture
// hook on cfg.Server, which must not be started yet. Call Start to connect.
func New(cfg Config) (*Bridge, error) {
	if err := topics.ValidateName("node", cfg.Node); err != nil {
		return nil, fmt.Errorf("broker: bridge: %w", err)
	}
	if cfg.Store == nil || cfg.Server == nil {
		return nil, errors.New("broker: bridge needs a store and the edge server")
	}
	if cfg.Rules == nil {
		cfg.Rules = DefaultRules()
	}
	if cfg.Window <= 0 {
		cfg.Window = 8
	}
	if cfg.FrameMessages <= 0 {
		cfg.FrameMessages = 512
	}
	if cfg.FrameBytes <= 0 {
		cfg.FrameBytes = 256 << 10
	}
	cfg.Limits = cfg.Limits.OrDefault()
	if cfg.MaxRefusals <= 0 {
		cfg.MaxRefusals = 5
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.FastBackoff <= 0 {
		cfg.FastBackoff = time.Second
	}
	if cfg.FastBackoffFor <= 0 {
		cfg.FastBackoffFor = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	urls, err := broker.SplitURLs(cfg.CloudURL)
	if err != nil {
		return nil, fmt.Errorf("broker: bridge: %w", err)
	}
	rules, err := NewRules(cfg.Node, cfg.Rules)
	if err != nil {
		return nil, err
	}
	b := &Bridge{cfg: cfg, urls: urls, node: cfg.Node, epoch: cfg.Store.Epoch(), rules: rules, srv: cfg.Server,
		log: cfg.Logger.With("node", cfg.Node), metrics: cfg.Metrics,
		meta:   store.Sub(cfg.Store, metaPrefix),
		linkCh: make(chan struct{}), downKick: make(chan struct{}, 1), sentHigh: map[string]uint64{}, refusals: map[string]refusal{},
		firstDone: make(chan struct{}), stop: make(chan struct{})}
	b.dead, err = queue.OpenDeadLetters(store.Sub(cfg.Store, "dl/"), 0, b.reportError, cfg.Metrics, b.log)
	if err != nil {
		return nil, err
	}
	qo := cfg.Queue
	qo.Name, qo.Node, qo.Metrics, qo.Logger, qo.Clock = "uplink", cfg.Node, cfg.Metrics, b.log, cfg.Server.Now
	if qo.OnDrop == nil {
		qo.OnDrop = func(stream string, n int, reason string) {
			b.reportError(topics.ErrorEvent{Component: "edge/queue", Reason: "dropped-" + reason,
				Detail: fmt.Sprintf("%d messages of stream %s dropped: queue %s", n, stream, reason)})
		}
	}
	if b.up, err = queue.Open(store.Sub(cfg.Store, "bridge/up/"), qo); err != nil {
		return nil, err
	}
	if b.inbox, err = queue.Open(store.Sub(cfg.Store, "bridge/in/"), queue.Options{Name: "inbox", Node: cfg.Node, Metrics: cfg.Metrics, Logger: b.log, Clock: cfg.Server.Now}); err != nil {
		_ = b.up.Close()
		return nil, err
	}
	root, pfx := store.Split(cfg.Store)
	b.dedup = queue.NewDedup(root, pfx+"bridge/dd/")
	b.metaAbs = pfx + metaPrefix
	if v, err := b.meta.Get([]byte("down-epoch")); err == nil && len(v) == 8 {
		b.downEpoch = beUint64(v)
	}
	if v, err := b.meta.Get([]byte("session")); err == nil && len(v) == 8 {
		b.session = beUint64(v)
	}
	cfg.Server.SetDeadLetters(b.dead)
	cfg.Server.SetDefaultReport(b.reportError)
	b.capture = &CaptureHook{rules: rules, queue: b.up, dead: b.dead, limits: cfg.Limits, direct: b.sendDirect,
		srv: cfg.Server.Mochi(), metrics: cfg.Metrics, log: b.log, clock: cfg.Server.Now}
	cfg.Server.ObserveAcks(b.capture.ackWritten)
	if err := cfg.Server.AddHook(b.capture); err != nil {
		_ = b.up.Close()
		_ = b.inbox.Close()
		return nil, err
	}
	return b, nil
}

// Start connects to the cloud in the background and keeps reconnecting.
func (b *Bridge) Start() {
	b.wg.Add(3)
	go b.run()
	go b.receive()
	go b.republish()
}

// Queue returns the uplink queue (for statistics).
func (b *Bridge) Queue() *queue.Queue { return b.up }

// DeadLetters returns the node's dead-letter store.
func (b *Bridge) DeadLetters() *queue.DeadLetters { return b.dead }

// Connected reports whether the cloud link is up, and returns a channel
// closed at the next change.
func (b *Bridge) Connected() (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connected, b.linkCh
}

// ErrClosed: the bridge was closed before what was waited for
// happened.
var ErrClosed = errors.New("bridge: closed")

// FirstAttempt waits until the bridge's first attempt to connect to the
// cloud has ended and returns its error: nil if it connected, else a
// *LinkError that says why (LinkBadCredentials: the cloud refused the
// node's user or password). It returns ctx's error if ctx ends first, and
// ErrClosed if the bridge is closed first. The bridge goes on trying
// either way; `sedna edge --fail-fast` stops on refused credentials.
func (b *Bridge) FirstAttempt(ctx context.Context) error {
	select {
	case <-b.firstDone:
		return b.firstErr
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return ErrClosed
	}
}

func (b *Bridge) setLink(c paho.Client, up bool) {
	b.mu.Lock()
	b.client, b.connected = c, up
	close(b.linkCh)
	b.linkCh = make(chan struct{})
	b.mu.Unlock()
}

// Close says goodbye to the cloud (status offline), stops every goroutine
// and closes the queues. It does not close the store or the server. New
// local publishes are refused from now on, and those already taken get
// their PUBACK first (for up to 2 s), so a planned stop makes no app send
// a message twice.
func (b *Bridge) Close() error {
	b.once.Do(func() {
		b.capture.Drain(2 * time.Second)
		close(b.stop)
		b.wg.Wait()
		_ = b.up.Close()
		_ = b.inbox.Close()
	})
	return nil
}

// nextSession numbers a new connection, and keeps the number so that a
// restarted node goes on from it.
func (b *Bridge) nextSession() {
	b.session++
	var batch store.Batch
	batch.Put([]byte("session"), binary.BigEndian.AppendUint64(nil, b.session))
	if err := b.meta.Write(&batch); err != nil {
		b.log.Warn("session number not stored", "error", err)
	}
}

func (b *Bridge) statusPayload(state, reason string) []byte {
	st := topics.NodeStatus{Node: b.node, State: state, Version: b.cfg.Version, Epoch: b.epoch, Reason: reason, Session: b.session,
		OS: runtime.GOOS, Arch: runtime.GOARCH}
	if state == topics.NodeOnline {
		st.Since = time.Now().UnixNano()
	}
	env, _ := topics.NewEnvelope(topics.KindNodeStatus, "edge/bridge", st)
	raw, _ := env.Marshal()
	return raw
}

// newClient makes the paho client of one connection attempt, whose dial,
// TLS handshake and CONNECT/CONNACK must together end within timeout.
func (b *Bridge) newClient(url string, lost chan struct{}, timeout time.Duration) paho.Client {
	o := paho.NewClientOptions().
		AddBroker(url).
		SetClientID(access.BridgeClientID(b.node)).
		SetUsername(b.cfg.Username).
		SetPassword(b.cfg.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetKeepAlive(b.cfg.KeepAlive).
		SetPingTimeout(b.cfg.KeepAlive).
		// Bounds the dial too (paho sets its dialer's timeout from it).
		SetConnectTimeout(timeout).
		// Explicit: otherwise paho retries a refused or failed CONNECT as
		// MQTT 3.1, on a new connection with a new timeout (a black-holed
		// attempt took twice its timeout, and refused credentials were
		// reported as the 3.1 attempt's error).
		SetProtocolVersion(4).
		SetWriteTimeout(5*time.Second).
		SetMaxResumePubInFlight(0).
		SetBinaryWill(topics.NodeStatusTopic(b.node), b.statusPayload(topics.NodeOffline, "connection lost"), 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			b.log.Warn("cloud link lost", "error", err)
			close(lost)
		})
	if b.cfg.TLS != nil {
		o.SetTLSConfig(b.cfg.TLS)
	}
	return paho.NewClient(o)
}

// run is the bridge's connection loop: connect, serve until the link is
// lost, again, on the schedule of a backoff. An attempt that fails says so
// at WARN once per class of failure (LinkFailure), with what to check; the
// same failure again is logged at DEBUG, until the class changes or the
// link comes back.
func (b *Bridge) run() {
	defer b.wg.Done()
	sched := newBackoff(backoffConfig{Min: b.cfg.MinBackoff, Fast: b.cfg.FastBackoff, FastFor: b.cfg.FastBackoffFor,
		Max: b.cfg.MaxBackoff, Timeout: b.cfg.ConnectTimeout, Rand: b.jitter}, time.Now())
	var (
		wait     time.Duration // before the next attempt
		reported LinkFailure   // the class last logged at WARN
		said     bool          // whether a failure was logged since the link was last up
		first    = true
		next     int // the URL of the next attempt
	)
	for {
		if !b.sleep(wait) {
			return
		}
		start := time.Now()
		step := sched.Next(start)
		lost := make(chan struct{})
		b.nextSession()
		url := b.urls[next]
		next = (next + 1) % len(b.urls)
		c := b.newClient(url, lost, step.Timeout)
		err := b.connect(c, step.Timeout)
		if errors.Is(err, ErrClosed) {
			return
		}
		var lerr *LinkError
		if err != nil {
			lerr = &LinkError{Failure: ClassifyLinkError(err), Err: err}
		}
		if first {
			if lerr != nil {
				b.firstErr = lerr
			}
			close(b.firstDone)
			first = false
		}
		if lerr != nil {
			sched.Failed(lerr.Failure, isTimeout(err), BrokerBusy(err))
			if !said || lerr.Failure != reported {
				reason, advice := lerr.Failure.String(), lerr.Failure.Advice()
				switch {
				case lerr.Failure == LinkBadCredentials && b.byCertificate():
					reason, advice = "the cloud refused the node's certificate",
						"the node may be revoked (sedna node revoke; the cloud's log says): it joins again with a new token"
				case errors.Is(err, io.EOF) && strings.HasPrefix(url, "tcp://"):
					advice += "; a connection closed before the cloud answered may also be a TLS listener's (the cloud's :8883), " +
						"which takes ssl:// URLs only: join with a token, or give ssl:// and --cloud-ca"
				}
				b.log.Warn("cannot connect to the cloud", "reason", reason, "url", url, "error", err, "check", advice)
				reported, said = lerr.Failure, true
			} else {
				b.log.Debug("cloud connect failed", "reason", lerr.Failure.String(), "url", url, "error", err)
			}
			wait = time.Until(start.Add(step.Period))
			continue
		}
		now := time.Now()
		sched.Connected(now, now.Sub(start))
		said = false
		// The next attempt after a loss goes to the next broker too: the
		// one just lost may have died.
		b.serve(c, url, lost)
		wait = sched.Lost(time.Now())
	}
}

// connect makes one connection attempt with c. paho ends it by its own
// deadline (timeout, dial included); the guard beyond it only keeps the
// loop going if paho did not.
func (b *Bridge) connect(c paho.Client, timeout time.Duration) error {
	tok := c.Connect()
	guard := time.NewTimer(timeout + time.Second)
	defer guard.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-guard.C:
		c.Disconnect(0)
		return errConnectTimeout
	case <-b.stop:
		c.Disconnect(0)
		return ErrClosed
	}
}

// isTimeout reports whether a connection attempt ended because its time
// was up (rather than being refused or reset).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, errConnectTimeout) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// sleep waits d, or returns false at once if the bridge stops.
func (b *Bridge) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-b.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.stop:
		return false
	}
}

type inflightFrame struct {
	stream string
	seqs   []uint64
	bytes  int
	token  paho.Token
}

// serve runs one connection: downlink subscription, status, then the
// uplink sender until the link is lost or the bridge stops.
func (b *Bridge) serve(c paho.Client, url string, lost chan struct{}) {
	if b.metrics != nil {
		b.metrics.Reconnects.WithLabelValues("cloud").Inc()
		b.metrics.LinkUp.WithLabelValues("cloud").Set(1)
		defer b.metrics.LinkUp.WithLabelValues("cloud").Set(0)
	}
	b.setLink(c, true)
	defer b.setLink(nil, false)
	b.log.Info("cloud link up", "url", url)

	// One subscription, the node's downlink subtree: its frames and the
	// cloud's status requests (on RabbitMQ 3.10 each subscription is a
	// binding in the cluster's database, so a fleet costs one per node).
	// QoS 0: the downlink's durability is the cloud's outbox, the node's
	// acknowledgements and the replay at each connection, not the MQTT
	// session (a clean one, lost with the connection anyway). A QoS 1
	// subscription of a clean session is, on RabbitMQ, a durable queue on
	// the broker node the bridge connected to: after that node died, no
	// other would let the bridge (the same client ID) subscribe again
	// until it came back ("home node ... of durable queue ... is down").
	// At QoS 0 it is a transient queue, gone with its node.
	online := b.statusPayload(topics.NodeOnline, "")
	answer := &statusAnswerer{b: b, c: c, status: online, on: true}
	defer answer.stop()
	frames, requests := topics.Downlink(b.node), topics.StatusRequestTopic(b.node)
	st := c.Subscribe(topics.DownFilter(b.node), 0, func(c paho.Client, m paho.Message) {
		switch m.Topic() {
		case frames:
			b.onDownlink(c, m)
		case requests:
			answer.onRequest(c, m)
		default:
			b.log.Debug("a message below the downlink ignored: not a topic of the bridge's", "topic", m.Topic())
		}
	})
	// Not st.Wait(): on a link that went silent the SUBACK comes only
	// with the keepalive's verdict, and Close must not wait for that.
	select {
	case <-st.Done():
	case <-lost:
		return
	case <-b.stop:
		c.Disconnect(0)
		return
	}
	if err := st.Error(); err != nil {
		b.log.Warn("downlink subscribe failed", "error", err)
		c.Disconnect(0)
		return
	}
	c.Publish(topics.NodeStatusTopic(b.node), 1, true, online)
	b.sendDownAck(c, true)

	// The acker waits for the tokens of frames in the order sent (the
	// broker acknowledges one connection's publishes in order) and hands
	// them back to the sender loop.
	toAck := make(chan *inflightFrame, 8*len(topics.UplinkStreams)*b.cfg.Window)
	acked := make(chan *inflightFrame, cap(toAck))
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		for f := range toAck {
			<-f.token.Done()
			acked <- f
		}
	}()
	next := map[string]uint64{}
	inflight := map[string]int{}
	failed := map[string][]uint64{}
	defer func() {
		close(toAck)
		<-ackerDone
		b.settle(failed, acked)
	}()
	for _, s := range topics.UplinkStreams {
		done, _ := b.up.Cursor(string(s))
		next[string(s)] = done + 1
	}
	for {
		changed := b.up.Changed()
		for _, s := range topics.UplinkStreams {
			name := string(s)
			for inflight[name] < b.window(name) {
				f, err := b.nextFrame(name, next)
				if err != nil {
					b.log.Error("uplink read failed", "stream", name, "error", err)
					break
				}
				if f == nil {
					break
				}
				fr := &inflightFrame{stream: name, seqs: f.seqs, bytes: f.bytes,
					token: c.Publish(topics.Uplink(b.node, s), 1, false, f.payload)}
				inflight[name]++
				toAck <- fr
			}
		}
		select {
		case <-b.stop:
			b.sayGoodbye(c)
			return
		case <-lost:
			return
		case <-changed:
		case f := <-acked:
			inflight[f.stream]--
			if err := f.token.Error(); err != nil {
				b.log.Debug("frame not acknowledged", "stream", f.stream, "error", err)
				if _, ok := failed[f.stream]; !ok {
					failed[f.stream] = f.seqs
				}
				// The link is going down; its loss is signalled on lost.
				select {
				case <-lost:
					return
				case <-b.stop:
					return
				}
			}
			n := b.up.Ack(f.stream, f.seqs...)
			b.clearRefusal(f.stream)
			if b.metrics != nil {
				b.metrics.Acked.WithLabelValues(f.stream).Add(float64(n))
			}
		}
	}
}

func (b *Bridge) sayGoodbye(c paho.Client) {
	t := c.Publish(topics.NodeStatusTopic(b.node), 1, true, b.statusPayload(topics.NodeOffline, "stopped"))
	t.WaitTimeout(2 * time.Second)
	c.Disconnect(250)
}

type builtFrame struct {
	payload []byte
	seqs    []uint64
	bytes   int
}

// window is the frames in flight for a stream: one while a message is
// suspected of being refused by the cloud (to find it), else the config.
func (b *Bridge) window(stream string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, suspect := b.refusals[stream]; suspect {
		return 1
	}
	return b.cfg.Window
}

// nextFrame reads the next records of stream, drops expired ones and
// encodes a frame, or returns nil if nothing is waiting.
func (b *Bridge) nextFrame(stream string, next map[string]uint64) (*builtFrame, error) {
	maxMsgs := b.cfg.FrameMessages
	b.mu.Lock()
	_, suspect := b.refusals[stream]
	b.mu.Unlock()
	if suspect {
		maxMsgs = 1
	}
	for {
		recs, after, err := b.up.Read(stream, next[stream], maxMsgs, b.cfg.FrameBytes)
		if err != nil || len(recs) == 0 {
			return nil, err
		}
		next[stream] = after
		now := b.srv.Now()
		maxAge := b.up.MaxAge()
		f := &topics.Frame{Node: b.node, Stream: topics.Stream(stream), Epoch: b.epoch, Sent: now}
		var expired []uint64
		out := &builtFrame{}
		for i := range recs {
			r := &recs[i]
			if topics.Expired(r.Time, r.Expires, now, maxAge) {
				expired = append(expired, r.Seq)
				continue
			}
			f.Messages = append(f.Messages, topics.FrameMessage{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload,
				Retain: r.Retain, QoS: r.QoS, Time: r.Time, Expires: r.Expires})
			out.seqs = append(out.seqs, r.Seq)
			out.bytes += len(r.Payload)
		}
		if len(expired) > 0 {
			n := b.up.Ack(stream, expired...)
			if b.metrics != nil {
				b.metrics.Expired.WithLabelValues(stream).Add(float64(n))
			}
			b.log.Debug("dropped expired messages", "stream", stream, "messages", n)
		}
		if len(f.Messages) == 0 {
			continue
		}
		f.Floor, _ = b.up.Cursor(stream)
		payload, err := f.Marshal()
		if err != nil {
			return nil, err
		}
		out.payload = payload
		b.mu.Lock()
		high := b.sentHigh[stream]
		resent := 0
		for _, s := range out.seqs {
			if s <= high {
				resent++
			}
		}
		if last := out.seqs[len(out.seqs)-1]; last > high {
			b.sentHigh[stream] = last
		}
		b.mu.Unlock()
		if b.metrics != nil {
			b.metrics.Frames.WithLabelValues(stream).Inc()
			b.metrics.Sent.WithLabelValues(stream).Add(float64(len(out.seqs)))
			b.metrics.SentBytes.WithLabelValues(stream).Add(float64(out.bytes))
			if resent > 0 {
				b.metrics.Resent.WithLabelValues(stream).Add(float64(resent))
			}
		}
		return out, nil
	}
}

// settle runs when a connection ends with frames unacknowledged. Frames
// acknowledged before the loss are marked done; the rest are sent again on
// the next connection, from the queue. If the oldest failed frame of a
// stream is the same lone message as last time, the cloud may be refusing
// it (a packet it will not take drops the connection in MQTT 3.1.1): after
// MaxRefusals it is dead-lettered so it cannot block its stream. The first
// failure makes the stream send one message at a time, so the message is
// found; any acknowledgement ends the suspicion.
func (b *Bridge) settle(failed map[string][]uint64, acked chan *inflightFrame) {
	for drained := false; !drained; {
		select {
		case f := <-acked:
			if f.token.Error() == nil {
				n := b.up.Ack(f.stream, f.seqs...)
				b.clearRefusal(f.stream)
				if b.metrics != nil {
					b.metrics.Acked.WithLabelValues(f.stream).Add(float64(n))
				}
			} else if _, ok := failed[f.stream]; !ok {
				failed[f.stream] = f.seqs
			}
		default:
			drained = true
		}
	}
	type verdict struct {
		stream string
		seq    uint64
		times  int
	}
	var dead []verdict
	b.mu.Lock()
	for stream, seqs := range failed {
		head, lone := seqs[0], len(seqs) == 1
		r, suspect := b.refusals[stream]
		switch {
		case suspect && r.seq == head && lone:
			r.count++
		case lone:
			r = refusal{seq: head, count: 1}
		default:
			r = refusal{seq: head}
		}
		b.refusals[stream] = r
		if r.count >= b.cfg.MaxRefusals {
			delete(b.refusals, stream)
			dead = append(dead, verdict{stream, head, r.count})
		}
	}
	b.mu.Unlock()
	for _, v := range dead {
		b.deadLetterRefused(v.stream, v.seq, v.times)
	}
}

func (b *Bridge) clearRefusal(stream string) {
	b.mu.Lock()
	delete(b.refusals, stream)
	b.mu.Unlock()
}

func (b *Bridge) deadLetterRefused(stream string, seq uint64, times int) {
	recs, _, err := b.up.Read(stream, seq, 1, 1<<30)
	if err != nil || len(recs) == 0 || recs[0].Seq != seq {
		return
	}
	r := recs[0]
	b.dead.Add(queue.DeadLetter{Component: "edge/uplink", Reason: "refused",
		Detail:  fmt.Sprintf("the cloud dropped the connection %d times on this message; dead-lettered so stream %s can go on", times, stream),
		Topic:   r.Topic,
		Message: topics.ID{Node: b.node, Stream: topics.Stream(stream), Epoch: b.epoch, Seq: seq}.String(),
		Payload: r.Payload})
	b.up.Ack(stream, seq)
}

// ErrLinkDown: the node's link to the cloud is down.
var ErrLinkDown = errors.New("bridge: the link to the cloud is down")

// SendNow sends a message to the cloud at once, best effort, without the
// durable queue: for requests worth nothing after a deadline, which their
// sender watches (an offload of joint inference). It fails with
// ErrLinkDown when the link is down; a message lost with a link that
// breaks is not sent again.
func (b *Bridge) SendNow(stream topics.Stream, topic string, payload []byte, expires time.Time) error {
	if !strings.HasPrefix(topic, topics.NodePrefix(b.node)) {
		return fmt.Errorf("bridge: %s is not under the node's subtree %s", topic, topics.NodePrefix(b.node))
	}
	b.mu.Lock()
	c := b.client
	b.mu.Unlock()
	if c == nil {
		return ErrLinkDown
	}
	f := topics.Frame{Node: b.node, Stream: stream, Epoch: b.epoch, Sent: b.srv.Now(), Messages: []topics.FrameMessage{{
		Topic: topic, Payload: payload, QoS: 0, Time: b.srv.Now(), Expires: expires}}}
	raw, err := f.Marshal()
	if err != nil {
		return err
	}
	c.Publish(topics.Uplink(b.node, stream), 0, false, raw)
	return nil
}

// sendDirect sends a best-effort (QoS 0 rule) message now if the link is
// up, and drops it otherwise.
func (b *Bridge) sendDirect(stream topics.Stream, r queue.Record) {
	b.mu.Lock()
	c := b.client
	b.mu.Unlock()
	if c == nil {
		if b.metrics != nil {
			b.metrics.Dropped.WithLabelValues("direct", "link-down").Inc()
		}
		return
	}
	f := topics.Frame{Node: b.node, Stream: stream, Epoch: b.epoch, Messages: []topics.FrameMessage{{
		Topic: r.Topic, Payload: r.Payload, Retain: r.Retain, QoS: 0, Time: r.Time, Expires: r.Expires}}}
	if raw, err := f.Marshal(); err == nil {
		c.Publish(topics.Uplink(b.node, stream), 0, false, raw)
	}
}

func (b *Bridge) reportError(ev topics.ErrorEvent) {
	env, err := topics.NewEnvelope(topics.KindError, "edge/bridge", ev)
	if err != nil {
		return
	}
	raw, err := env.Marshal()
	if err != nil {
		return
	}
	// Queued for the cloud (kept while the link is down) when there is room:
	// a report must not evict the messages it reports on (a full queue that
	// drops the oldest would otherwise fill with reports of its drops).
	rec := queue.Record{Topic: topics.NodeEvents(b.node, "error"), Payload: raw, QoS: 1, Time: b.srv.Now()}
	if _, err := b.up.AppendIfRoom(string(topics.StreamEvents), []queue.Record{rec}); err != nil {
		b.log.Warn("error event not queued", "error", err)
	}
	_ = b.srv.Publish(access.SystemPrincipal("bridge"), topics.NodeEvents(b.node, "error"), raw, false, 0)
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// Send queues a message of the node's own (an agent's report) for the cloud,
// durably, as a captured publish would be. The topic must be under the
// node's subtree.
func (b *Bridge) Send(stream topics.Stream, topic string, payload []byte, retain bool) error {
	return b.SendUntil(stream, topic, payload, retain, time.Time{})
}

// SendUntil is Send for a message worth sending only until expires (zero:
// always): one still queued then is dropped, not sent late, and the cloud
// drops one that arrives after it.
func (b *Bridge) SendUntil(stream topics.Stream, topic string, payload []byte, retain bool, expires time.Time) error {
	if !strings.HasPrefix(topic, topics.NodePrefix(b.node)) {
		return fmt.Errorf("bridge: %s is not under the node's subtree %s", topic, topics.NodePrefix(b.node))
	}
	rec := queue.Record{Topic: topic, Payload: payload, Retain: retain, QoS: 1, Time: b.srv.Now(), Expires: expires}
	_, err := b.up.Append(string(stream), []queue.Record{rec}, nil)
	return err
}

// statusAnswerer answers the cloud's status requests on one connection:
// after a random delay below the request's spread (one answer pending at
// a time), the status the node published when it connected, again.
type statusAnswerer struct {
	b      *Bridge
	c      paho.Client
	status []byte // the connection's online status
	mu     sync.Mutex
	t      *time.Timer // the pending answer
	on     bool        // false once the connection is over
}

func (a *statusAnswerer) onRequest(_ paho.Client, m paho.Message) {
	env, err := topics.UnmarshalEnvelope(m.Payload(), a.b.cfg.Limits)
	var req topics.StatusRequest
	if err == nil && env.Kind == topics.KindStatusRequest {
		err = env.DecodeBody(&req)
	} else if err == nil {
		err = fmt.Errorf("kind %q, want %s", env.Kind, topics.KindStatusRequest)
	}
	if err != nil {
		a.b.log.Warn("a status request not read", "topic", m.Topic(), "error", err)
		return
	}
	delay := time.Duration(0)
	if req.Spread > 0 {
		delay = time.Duration(rand.Int64N(min(req.Spread, int64(time.Minute))))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.on || a.t != nil {
		return // over, or an answer is on its way already
	}
	a.t = time.AfterFunc(delay, func() {
		a.mu.Lock()
		a.t = nil
		on := a.on
		a.mu.Unlock()
		if on {
			a.c.Publish(topics.NodeStatusTopic(a.b.node), 1, true, a.status)
		}
	})
}

// stop ends the answers of a connection that is over.
func (a *statusAnswerer) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.on = false
	if a.t != nil {
		a.t.Stop()
		a.t = nil
	}
}

// byCertificate says whether the node logs in by a client certificate
// (an identity it joined with) rather than a password.
func (b *Bridge) byCertificate() bool {
	t := b.cfg.TLS
	return t != nil && b.cfg.Username == "" && (t.GetClientCertificate != nil || len(t.Certificates) > 0)
}
