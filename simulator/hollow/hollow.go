// Package hollow runs hollow nodes: light edge nodes that speak the
// bridge's protocol to the cloud broker (frames up with sequence numbers,
// acknowledged by PUBACK and sent again until they are; the node's status,
// its MQTT will and its answers to the cloud's status requests; downlink
// frames deduplicated and acknowledged, with a replay asked at every
// connection) without an edge broker, a store or an agent per node. One
// process holds thousands of them, one connection (one file descriptor)
// each: the way KubeEdge tested 100,000 nodes with simulated ones, for the
// cloud tier's scale tests (docs/SCALE.md). What a hollow node sends lives
// in its memory only: it survives a lost link, not the process.
package hollow

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/topics"
)

// Config configures a Fleet.
type Config struct {
	// URL is the cloud broker, or the nodes of a cluster separated by
	// commas; node i starts with the (i mod n)th, so the fleet spreads over
	// them, and tries the next when one fails.
	URL string
	// Nodes are the nodes' names.
	Nodes []string
	// Password gives a node's password (its username is its name).
	Password func(node string) string
	// Version is reported in the nodes' statuses; default "hollow".
	Version string
	// ConnectRate bounds new connections per second over the fleet, at
	// start and after a broker's loss; default 500.
	ConnectRate int
	// FrameMessages bounds one frame; default 64.
	FrameMessages int
	// KeepAlive of each connection; default 30 s.
	KeepAlive time.Duration
	Logger    *slog.Logger
	// OnDown, if set, is given each downlink message a node receives, once.
	OnDown func(node, topic string, payload []byte)
}

// Stats count what the fleet did.
type Stats struct {
	Nodes      int
	Connected  int    // nodes whose link is up now
	Connects   uint64 // connections made, reconnections included
	Failures   uint64 // connection attempts that failed
	Queued     uint64 // messages given to Send
	Acked      uint64 // messages the cloud acknowledged
	Pending    uint64 // messages not acknowledged yet
	Frames     uint64 // frames sent, again included
	Down       uint64 // downlink messages received (once each)
	DownDups   uint64 // downlink messages received again, dropped
	StatusAsks uint64 // status requests answered
}

// Fleet is a set of hollow nodes.
type Fleet struct {
	cfg   Config
	urls  []string
	nodes []*Node
	byKey map[string]*Node
	tick  chan struct{} // one token per connection allowed (ConnectRate)
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	connects, failures, frames, down, downDups, asks, queued, acked atomic.Uint64
}

// Node is one hollow node.
type Node struct {
	f     *Fleet
	name  string
	epoch uint64
	first int // index of its first URL

	mu        sync.Mutex
	client    paho.Client // the connection now; nil while down
	session   uint64
	nextSeq   uint64
	pending   []topics.FrameMessage // not acknowledged, in seq order
	inflight  int                   // messages of pending in the frame in flight
	kick      chan struct{}
	downEpoch uint64
	downMark  uint64              // every downlink seq <= downMark is had
	downSeen  map[uint64]struct{} // seqs above downMark had
	answering bool
}

// Start connects every node (at ConnectRate) in the background; Wait
// waits until they are all connected.
func Start(cfg Config) (*Fleet, error) {
	urls, err := broker.SplitURLs(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("hollow: %w", err)
	}
	if cfg.Password == nil {
		return nil, errors.New("hollow: no passwords")
	}
	if cfg.Version == "" {
		cfg.Version = "hollow"
	}
	if cfg.ConnectRate <= 0 {
		cfg.ConnectRate = 500
	}
	if cfg.FrameMessages <= 0 {
		cfg.FrameMessages = 64
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Fleet{cfg: cfg, urls: urls, byKey: map[string]*Node{}, tick: make(chan struct{}), stop: make(chan struct{})}
	for i, name := range cfg.Nodes {
		if err := topics.ValidateName("node", name); err != nil {
			return nil, fmt.Errorf("hollow: %w", err)
		}
		if _, dup := f.byKey[name]; dup {
			return nil, fmt.Errorf("hollow: node %s twice", name)
		}
		var b [8]byte
		_, _ = rand.Read(b[:])
		n := &Node{f: f, name: name, epoch: binary.BigEndian.Uint64(b[:]) | 1, first: i % len(urls),
			kick: make(chan struct{}, 1), downSeen: map[uint64]struct{}{}}
		f.nodes = append(f.nodes, n)
		f.byKey[name] = n
	}
	f.wg.Add(1 + len(f.nodes))
	go f.pace()
	for _, n := range f.nodes {
		go n.run()
	}
	return f, nil
}

// pace lets ConnectRate connections a second begin.
func (f *Fleet) pace() {
	defer f.wg.Done()
	t := time.NewTicker(time.Second / time.Duration(f.cfg.ConnectRate))
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		select {
		case f.tick <- struct{}{}:
		case <-f.stop:
			return
		}
	}
}

// Nodes returns the fleet's nodes, in the order of Config.Nodes.
func (f *Fleet) Nodes() []*Node { return f.nodes }

// Node returns the node named name, or nil.
func (f *Fleet) Node(name string) *Node { return f.byKey[name] }

// Wait waits until every node is connected, or ctx ends.
func (f *Fleet) Wait(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if s := f.Stats(); s.Connected == s.Nodes {
			return nil
		}
		select {
		case <-ctx.Done():
			s := f.Stats()
			return fmt.Errorf("hollow: %d of %d nodes connected: %w", s.Connected, s.Nodes, ctx.Err())
		case <-t.C: // polling counters the nodes keep: no one event says "all"
		}
	}
}

// Settled waits until every message given to Send is acknowledged, or
// ctx ends.
func (f *Fleet) Settled(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		s := f.Stats()
		if s.Pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hollow: %d of %d messages not acknowledged: %w", s.Pending, s.Queued, ctx.Err())
		case <-t.C: // polling counters, as Wait
		}
	}
}

// Stats counts what the fleet did so far.
func (f *Fleet) Stats() Stats {
	s := Stats{Nodes: len(f.nodes), Connects: f.connects.Load(), Failures: f.failures.Load(), Frames: f.frames.Load(),
		Down: f.down.Load(), DownDups: f.downDups.Load(), StatusAsks: f.asks.Load(), Queued: f.queued.Load(), Acked: f.acked.Load()}
	for _, n := range f.nodes {
		n.mu.Lock()
		if n.client != nil {
			s.Connected++
		}
		s.Pending += uint64(len(n.pending))
		n.mu.Unlock()
	}
	return s
}

// Close disconnects every node; what is not acknowledged is dropped.
func (f *Fleet) Close() {
	f.once.Do(func() {
		close(f.stop)
		f.wg.Wait()
	})
}

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// Epoch is the node's epoch: the third part of its messages' IDs.
func (n *Node) Epoch() uint64 { return n.epoch }

// Send queues a message for topic (under the node's own subtree, e.g.
// topics.NodeAppPrefix(name)+"t") on the telemetry stream, and returns its
// sequence number. It is sent in a frame when the link is up, again until
// the cloud acknowledges it.
func (n *Node) Send(topic string, payload []byte) uint64 {
	n.mu.Lock()
	n.nextSeq++
	seq := n.nextSeq
	n.pending = append(n.pending, topics.FrameMessage{Seq: seq, Topic: topic, Payload: payload, QoS: 1, Time: time.Now()})
	n.mu.Unlock()
	n.f.queued.Add(1)
	n.poke()
	return seq
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Node) status(state, reason string) []byte {
	n.mu.Lock()
	st := topics.NodeStatus{Node: n.name, State: state, Version: n.f.cfg.Version, Epoch: n.epoch, Session: n.session,
		Reason: reason, OS: runtime.GOOS, Arch: runtime.GOARCH}
	n.mu.Unlock()
	if state == topics.NodeOnline {
		st.Since = time.Now().UnixNano()
	}
	env, _ := topics.NewEnvelope(topics.KindNodeStatus, "hollow", st)
	raw, _ := env.Marshal()
	return raw
}

// run is the node's connection loop, as the bridge's: connect (to the next
// URL after a failure or a loss), serve until the link is lost, again.
func (n *Node) run() {
	defer n.f.wg.Done()
	next := n.first
	wait := time.Duration(0)
	// The ceiling of the next wait after a failure: doubling from 100 ms
	// to 10 s, a random wait below it (full jitter), back to 100 ms after
	// a connection. A fleet that retried every second or two after a
	// broker's loss kept a RabbitMQ cluster declaring its queues until it
	// ran out of memory.
	ceiling := 100 * time.Millisecond
	// The time an attempt gets: 10 s, twice that after each attempt a
	// busy broker took and did not answer in time, up to 2 min, as the
	// bridge's (an attempt abandoned before its CONNACK only makes the
	// broker do its work again).
	timeout := 10 * time.Second
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-n.f.stop:
				t.Stop()
				return
			}
		}
		select {
		case <-n.f.tick:
		case <-n.f.stop:
			return
		}
		url := n.f.urls[next]
		next = (next + 1) % len(n.f.urls)
		n.mu.Lock()
		n.session++
		n.mu.Unlock()
		lost := make(chan struct{})
		o := paho.NewClientOptions().AddBroker(url).SetClientID(access.BridgeClientID(n.name)).
			SetUsername(n.name).SetPassword(n.f.cfg.Password(n.name)).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).
			SetProtocolVersion(4).SetKeepAlive(n.f.cfg.KeepAlive).SetConnectTimeout(timeout).
			SetWriteTimeout(10*time.Second).SetMaxResumePubInFlight(0).
			SetBinaryWill(topics.NodeStatusTopic(n.name), n.status(topics.NodeOffline, "connection lost"), 1, true).
			SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
		c := paho.NewClient(o)
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-n.f.stop:
			c.Disconnect(0)
			return
		}
		if err := tok.Error(); err != nil {
			n.f.failures.Add(1)
			n.f.cfg.Logger.Debug("hollow: connect failed", "node", n.name, "url", url, "error", err)
			if bridge.BrokerBusy(err) {
				timeout = min(2*timeout, 2*time.Minute)
			}
			wait = time.Duration(mrand.Int64N(int64(ceiling)))
			ceiling = min(2*ceiling, 10*time.Second)
			continue
		}
		n.f.connects.Add(1)
		ceiling, timeout = 100*time.Millisecond, 10*time.Second
		n.serve(c, lost)
		wait = time.Duration(mrand.Int64N(int64(time.Second)))
	}
}

// serve runs one connection.
func (n *Node) serve(c paho.Client, lost chan struct{}) {
	// One subscription, as the bridge's: the downlink's frames and the
	// cloud's status requests.
	frames, requests := topics.Downlink(n.name), topics.StatusRequestTopic(n.name)
	c.Subscribe(topics.DownFilter(n.name), 0, func(_ paho.Client, m paho.Message) {
		switch m.Topic() {
		case frames:
			n.onDownlink(c, m)
		case requests:
			n.onStatusRequest(c, m)
		}
	})
	c.Publish(topics.NodeStatusTopic(n.name), 1, true, n.status(topics.NodeOnline, ""))
	n.mu.Lock()
	n.client, n.inflight = c, 0
	n.mu.Unlock()
	n.downAck(c, true)
	defer func() {
		n.mu.Lock()
		n.client, n.inflight = nil, 0
		n.mu.Unlock()
	}()
	done := make(chan error, 1)
	var sent int // messages in the frame in flight
	sendOne := func() {
		n.mu.Lock()
		if n.inflight > 0 || len(n.pending) == 0 {
			n.mu.Unlock()
			return
		}
		k := min(len(n.pending), n.f.cfg.FrameMessages)
		acked := n.pending[0].Seq - 1
		f := topics.Frame{Node: n.name, Stream: topics.StreamTelemetry, Epoch: n.epoch, Floor: acked, Sent: time.Now(),
			Messages: append([]topics.FrameMessage(nil), n.pending[:k]...)}
		n.inflight = k
		n.mu.Unlock()
		raw, err := f.Marshal()
		if err != nil {
			n.f.cfg.Logger.Error("hollow: frame not encoded", "node", n.name, "error", err)
			return
		}
		sent = k
		n.f.frames.Add(1)
		t := c.Publish(topics.Uplink(n.name, topics.StreamTelemetry), 1, false, raw)
		go func() {
			select {
			case <-t.Done():
				done <- t.Error() // buffered: the frame in flight is the only one
			case <-n.f.stop:
			}
		}()
	}
	sendOne()
	for {
		select {
		case <-n.f.stop:
			c.Publish(topics.NodeStatusTopic(n.name), 1, true, n.status(topics.NodeOffline, "stopped")).WaitTimeout(time.Second)
			c.Disconnect(100)
			return
		case <-lost:
			return
		case <-n.kick:
			sendOne()
		case err := <-done:
			n.mu.Lock()
			if err == nil && n.inflight == sent && len(n.pending) >= sent {
				n.pending = n.pending[sent:]
				n.f.acked.Add(uint64(sent))
			}
			n.inflight = 0
			n.mu.Unlock()
			if err != nil {
				return // paho says why through the lost handler too
			}
			sendOne()
		}
	}
}

// onDownlink keeps each downlink message once and acknowledges the
// frame's watermark.
func (n *Node) onDownlink(c paho.Client, m paho.Message) {
	f, err := topics.UnmarshalFrame(m.Payload(), topics.Limits{})
	if err != nil || f.Node != n.name || f.Stream != topics.StreamDown {
		n.f.cfg.Logger.Warn("hollow: a downlink frame refused", "node", n.name, "error", err)
		return
	}
	var fresh []topics.FrameMessage
	n.mu.Lock()
	if f.Epoch != n.downEpoch {
		n.downEpoch, n.downMark = f.Epoch, 0
		clear(n.downSeen)
	}
	if f.Floor > n.downMark {
		n.downMark = f.Floor
		for s := range n.downSeen {
			if s <= f.Floor {
				delete(n.downSeen, s)
			}
		}
	}
	for _, fm := range f.Messages {
		if fm.Seq == 0 {
			fresh = append(fresh, fm)
			continue
		}
		if _, had := n.downSeen[fm.Seq]; had || fm.Seq <= n.downMark {
			n.f.downDups.Add(1)
			continue
		}
		n.downSeen[fm.Seq] = struct{}{}
		fresh = append(fresh, fm)
	}
	for {
		if _, ok := n.downSeen[n.downMark+1]; !ok {
			break
		}
		n.downMark++
		delete(n.downSeen, n.downMark)
	}
	n.mu.Unlock()
	n.f.down.Add(uint64(len(fresh)))
	if n.f.cfg.OnDown != nil {
		for _, fm := range fresh {
			n.f.cfg.OnDown(n.name, fm.Topic, fm.Payload)
		}
	}
	n.downAck(c, false)
}

func (n *Node) downAck(c paho.Client, replay bool) {
	n.mu.Lock()
	a := topics.DownAck{Epoch: n.downEpoch, Seq: n.downMark, Replay: replay}
	n.mu.Unlock()
	env, err := topics.NewEnvelope(topics.KindDownAck, "hollow", a)
	if err != nil {
		return
	}
	raw, _ := env.Marshal()
	c.Publish(topics.DownAckTopic(n.name), 1, false, raw)
}

// onStatusRequest answers the cloud after a random delay below the
// request's spread, one answer pending at a time.
func (n *Node) onStatusRequest(c paho.Client, m paho.Message) {
	env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{})
	var req topics.StatusRequest
	if err != nil || env.Kind != topics.KindStatusRequest || env.DecodeBody(&req) != nil {
		return
	}
	n.mu.Lock()
	if n.answering {
		n.mu.Unlock()
		return
	}
	n.answering = true
	n.mu.Unlock()
	delay := time.Duration(0)
	if req.Spread > 0 {
		delay = time.Duration(mrand.Int64N(min(req.Spread, int64(time.Minute))))
	}
	time.AfterFunc(delay, func() {
		n.mu.Lock()
		n.answering = false
		up := n.client == c
		n.mu.Unlock()
		if up {
			c.Publish(topics.NodeStatusTopic(n.name), 1, true, n.status(topics.NodeOnline, ""))
			n.f.asks.Add(1)
		}
	})
}
