// Package paradigmtest gives paradigms' unit tests a bus without a broker:
// MemBus delivers in memory with MQTT's filter rules, and a Net joins one
// cloud bus and node buses as a link would (durable sends queued while a
// node's link is down, best-effort ones refused).
package paradigmtest

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
)

// MemBus is an in-memory paradigm.Bus for one side. Handlers run on the
// publisher's goroutine, as on the runtime's inline buses.
type MemBus struct {
	net  *Net
	node string // "" for the cloud

	mu       sync.Mutex
	subs     []*sub
	retained map[string][]byte
	// Published records every Publish and Answer on the bus, in order.
	published []Record
}

// Record is a message published on a bus.
type Record struct {
	Topic   string
	Payload []byte
	Answer  bool // published by Answer, with a local app's rights
}

type sub struct {
	filter string
	h      func(paradigm.Message) error
}

// NewMemBus is a bus on its own, without a link: Send and SendNow fail
// with paradigm.ErrOffline.
func NewMemBus() *MemBus { return &MemBus{retained: map[string][]byte{}} }

// Publish delivers to every matching subscription now; a retained
// message is kept for later subscriptions (an empty one clears it).
func (b *MemBus) Publish(topic string, payload []byte, retain bool, _ byte) error {
	if err := topics.ValidateTopic(topic); err != nil {
		return err
	}
	b.mu.Lock()
	b.published = append(b.published, Record{Topic: topic, Payload: payload})
	if retain {
		if len(payload) == 0 {
			delete(b.retained, topic)
		} else {
			b.retained[topic] = payload
		}
	}
	var hs []func(paradigm.Message) error
	for _, s := range b.subs {
		if topics.Match(s.filter, topic) {
			hs = append(hs, s.h)
		}
	}
	b.mu.Unlock()
	for _, h := range hs {
		_ = h(paradigm.Message{Topic: topic, Payload: payload})
	}
	return nil
}

// Answer publishes as Publish does, recorded as an answer.
func (b *MemBus) Answer(topic string, payload []byte) error {
	if err := b.Publish(topic, payload, false, 1); err != nil {
		return err
	}
	b.mu.Lock()
	b.published[len(b.published)-1].Answer = true
	b.mu.Unlock()
	return nil
}

// Subscribe adds a subscription; retained messages it matches are
// delivered first.
func (b *MemBus) Subscribe(filter string, h func(paradigm.Message) error) (func() error, error) {
	if err := topics.ValidateFilter(filter); err != nil {
		return nil, err
	}
	s := &sub{filter: filter, h: h}
	b.mu.Lock()
	b.subs = append(b.subs, s)
	var kept []paradigm.Message
	for t, p := range b.retained {
		if topics.Match(filter, t) {
			kept = append(kept, paradigm.Message{Topic: t, Payload: p, Retained: true})
		}
	}
	b.mu.Unlock()
	slices.SortFunc(kept, func(x, y paradigm.Message) int {
		if x.Topic < y.Topic {
			return -1
		}
		return 1
	})
	for _, m := range kept {
		_ = h(m)
	}
	var once sync.Once
	return func() error {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.subs = slices.DeleteFunc(b.subs, func(x *sub) bool { return x == s })
		})
		return nil
	}, nil
}

// Subscriptions is how many subscriptions the bus has.
func (b *MemBus) Subscriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Published returns the messages published on the bus so far whose
// topics match filter.
func (b *MemBus) Published(filter string) []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Record
	for _, r := range b.published {
		if topics.Match(filter, r.Topic) {
			out = append(out, r)
		}
	}
	return out
}

// Send queues m for the other side: delivered now when the link is up,
// else when it comes back.
func (b *MemBus) Send(m paradigm.Outbound) error {
	if b.net == nil {
		return paradigm.ErrOffline
	}
	return b.net.send(b, m, true)
}

// SendNow delivers m now, or fails with paradigm.ErrOffline.
func (b *MemBus) SendNow(m paradigm.Outbound) error {
	if b.net == nil {
		return paradigm.ErrOffline
	}
	return b.net.send(b, m, false)
}

// Link reports the node's link (the cloud's is always up).
func (b *MemBus) Link() (bool, <-chan struct{}) {
	if b.net == nil {
		return false, make(chan struct{})
	}
	return b.net.link(b.node)
}

// Net joins a cloud bus and node buses as the runtime's link does: what a
// node sends arrives on the cloud's bus under the same topic; what the
// cloud sends a node (under topics.ToNodePrefix) arrives on the node's bus
// where the default rules put it (topics.Delivered).
type Net struct {
	Cloud *MemBus

	mu    sync.Mutex
	nodes map[string]*node
}

type node struct {
	bus     *MemBus
	up      bool
	changed chan struct{}
	up2down []paradigm.Outbound // queued for the cloud while down
	down2up []paradigm.Outbound // queued for the node while down
}

// NewNet makes a net with a cloud bus and no nodes.
func NewNet() *Net {
	n := &Net{nodes: map[string]*node{}}
	n.Cloud = NewMemBus()
	n.Cloud.net = n
	return n
}

// Node returns the bus of node name, adding it (link up) the first time.
func (n *Net) Node(name string) *MemBus {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nd := n.nodes[name]; nd != nil {
		return nd.bus
	}
	b := NewMemBus()
	b.net, b.node = n, name
	n.nodes[name] = &node{bus: b, up: true, changed: make(chan struct{})}
	return b
}

// SetLink brings node name's link up or down; coming up delivers what
// was queued, in order.
func (n *Net) SetLink(name string, up bool) {
	n.Node(name)
	n.mu.Lock()
	nd := n.nodes[name]
	if nd.up == up {
		n.mu.Unlock()
		return
	}
	nd.up = up
	close(nd.changed)
	nd.changed = make(chan struct{})
	var toCloud, toNode []paradigm.Outbound
	if up {
		toCloud, toNode = nd.up2down, nd.down2up
		nd.up2down, nd.down2up = nil, nil
	}
	n.mu.Unlock()
	for _, m := range toCloud {
		_ = n.Cloud.Publish(m.Topic, m.Payload, false, 1)
	}
	for _, m := range toNode {
		if local, ok := topics.Delivered(name, m.Topic); ok {
			_ = nd.bus.Publish(local, m.Payload, false, 1)
		}
	}
}

func (n *Net) link(name string) (bool, <-chan struct{}) {
	if name == "" {
		return true, make(chan struct{})
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := n.nodes[name]
	return nd.up, nd.changed
}

func (n *Net) send(from *MemBus, m paradigm.Outbound, durable bool) error {
	name := from.node
	if from == n.Cloud {
		name = m.Node
		if name == "" {
			return errors.New("paradigmtest: a message from the cloud names no node")
		}
	}
	n.mu.Lock()
	nd := n.nodes[name]
	if nd == nil {
		n.mu.Unlock()
		return fmt.Errorf("paradigmtest: no node %q: %w", name, paradigm.ErrOffline)
	}
	if !nd.up {
		defer n.mu.Unlock()
		if !durable {
			return paradigm.ErrOffline
		}
		if from == n.Cloud {
			nd.down2up = append(nd.down2up, m)
		} else {
			nd.up2down = append(nd.up2down, m)
		}
		return nil
	}
	n.mu.Unlock()
	if from == n.Cloud {
		local, ok := topics.Delivered(name, m.Topic)
		if !ok {
			return fmt.Errorf("paradigmtest: %s is not a topic for node %s", m.Topic, name)
		}
		return nd.bus.Publish(local, m.Payload, false, 1)
	}
	return n.Cloud.Publish(m.Topic, m.Payload, false, 1)
}
