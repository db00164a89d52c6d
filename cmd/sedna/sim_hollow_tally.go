package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// hollowTally counts, with a cloud consumer, the messages `sim hollow`'s
// nodes sent: each node i's message j (its payload: i and j, 8 bytes
// each, big-endian) on the node's app/hollow topic.
type hollowTally struct {
	cons   *cloudlink.Consumer
	st     *store.Badger
	client cloudlink.ClientConfig

	mu       sync.Mutex
	seen     []uint8 // per message: times consumed (saturating)
	once     int     // messages consumed at least once
	dups     int     // consumptions beyond the first
	messages int
	topics   map[string]int // a node's topic: its number
	all      chan struct{}  // closed once every message was consumed
}

// startHollowTally starts a consumer of every node's frames at url as
// user, with a persistent session of its own, before the nodes send.
func startHollowTally(url, user, password string, names []string, messages int, log *slog.Logger) (*hollowTally, error) {
	st, err := store.OpenTemp(store.Options{GCInterval: -1})
	if err != nil {
		return nil, err
	}
	h := &hollowTally{st: st, seen: make([]uint8, len(names)*messages), messages: messages,
		topics: make(map[string]int, len(names)), all: make(chan struct{})}
	for i, n := range names {
		h.topics[topics.NodeApp(n, "hollow")] = i
	}
	h.client = cloudlink.ClientConfig{URL: url, ClientID: fmt.Sprintf("sedna-sim-hollow-%d-%d", os.Getpid(), time.Now().UnixNano()),
		Username: user, Password: password, FailFast: true}
	h.cons, err = cloudlink.NewConsumer(cloudlink.ConsumerConfig{Client: h.client, Store: st, Handler: h.count, Logger: log})
	if err == nil {
		err = h.cons.Start()
	}
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return h, nil
}

// count is the consumer's handler.
func (h *hollowTally) count(d cloudlink.Delivery, _ *store.Batch) error {
	i, ok := h.topics[d.Topic]
	if !ok || len(d.Payload) != 16 {
		return nil // not a hollow node's message of this run
	}
	node, j := binary.BigEndian.Uint64(d.Payload[:8]), binary.BigEndian.Uint64(d.Payload[8:])
	if node != uint64(i) || j >= uint64(h.messages) {
		return nil
	}
	k := i*h.messages + int(j)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.seen[k] {
	case 0:
		h.once++
		if h.once == len(h.seen) {
			close(h.all)
		}
	default:
		h.dups++
	}
	if h.seen[k] < 255 {
		h.seen[k]++
	}
	return nil
}

// wait waits until every message was consumed, or ctx ends, and says how
// many were consumed once and how many again.
func (h *hollowTally) wait(ctx context.Context) (once, dups int, err error) {
	select {
	case <-h.all:
	case <-ctx.Done():
		err = fmt.Errorf("not every message reached the cloud's consumer: %w", ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.once, h.dups, err
}

// close stops the consumer and ends its persistent session on the broker
// (a clean session with the same client ID), so that the broker does not
// keep a queue of every node's frames for it.
func (h *hollowTally) close() {
	err := h.cons.Close()
	o := paho.NewClientOptions().SetClientID(h.client.ClientID).SetUsername(h.client.Username).
		SetPassword(h.client.Password).SetCleanSession(true).SetConnectTimeout(2 * time.Minute)
	if urls, uerr := broker.SplitURLs(h.client.URL); uerr == nil {
		for _, u := range urls {
			o.AddBroker(u)
		}
	}
	// RabbitMQ deletes the session's quorum queue before it answers: a
	// queue that took every node's frames can take a while.
	c := paho.NewClient(o)
	tok := c.Connect()
	switch {
	case !tok.WaitTimeout(2 * time.Minute):
		err = errors.Join(err, errors.New("the consumer's session was not ended: the broker did not answer in 2 min"))
	case tok.Error() != nil:
		err = errors.Join(err, fmt.Errorf("the consumer's session was not ended: %w", tok.Error()))
	default:
		c.Disconnect(100)
	}
	err = errors.Join(err, h.st.Close())
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim hollow:", err)
	}
}
