package paradigm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sedna-go/sedna/topics"
)

// ErrNoDeadline refuses a request whose context has no deadline: a
// request nobody answers would wait forever.
var ErrNoDeadline = errors.New("paradigm: a request needs a deadline")

// RemoteError is the error a server answered a request with.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return "paradigm: the server answered: " + e.Message }

// Request publishes body as a request on topic, on env's bus, and waits
// for its one reply until ctx's deadline. owner names the requester in
// the reply topic (env.Node). A server's error comes back as a
// *RemoteError; ctx's error when no reply came in time.
func Request(ctx context.Context, bus Bus, owner, topic string, body []byte) ([]byte, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, ErrNoDeadline
	}
	var raw [12]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(raw[:])
	replyTo := topics.BusReplyTopic(owner, id)
	got := make(chan topics.BusReply, 1)
	stop, err := bus.Subscribe(replyTo, func(m Message) error {
		var r topics.BusReply
		env, err := topics.UnmarshalEnvelope(m.Payload, topics.DefaultLimits)
		if err != nil || env.Kind != topics.KindBusReply || env.DecodeBody(&r) != nil || r.ID != id {
			return nil // not the reply: nothing to redeliver
		}
		select {
		case got <- r:
		default:
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("paradigm: request on %s: %w", topic, err)
	}
	defer func() { _ = stop() }()
	req, err := topics.Encode(topics.KindBusRequest, owner, topics.BusRequest{ID: id, ReplyTo: replyTo, Deadline: deadline.UnixNano(), Body: body})
	if err != nil {
		return nil, err
	}
	if err := bus.Publish(topic, req, false, 1); err != nil {
		return nil, fmt.Errorf("paradigm: request on %s: %w", topic, err)
	}
	select {
	case r := <-got:
		if r.Error != "" {
			return nil, &RemoteError{Message: r.Error}
		}
		return r.Body, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("paradigm: no reply to the request on %s: %w", topic, ctx.Err())
	}
}

// Handler answers one request: the reply's body, or an error sent back
// as the reply's error. ctx ends at the requester's deadline or when the
// server stops.
type Handler func(ctx context.Context, topic string, body []byte) ([]byte, error)

// Server answers the requests on one filter (Serve).
type Server struct {
	bus    Bus
	owner  string
	h      Handler
	now    func() time.Time
	unsub  func() error
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
	once   sync.Once
	mu     sync.Mutex // guards stopped against wg.Add after Stop's Wait
	stop   bool
}

// Serve answers the requests on filter with h, each on a goroutine of its
// own (at most limit at once; a request beyond them waits its turn on the
// publisher's goroutine), until Stop. now is the side's clock (nil:
// time.Now); a request past its deadline is dropped unanswered.
func Serve(bus Bus, owner, filter string, limit int, now func() time.Time, h Handler) (*Server, error) {
	if limit < 1 {
		limit = 1
	}
	if now == nil {
		now = time.Now
	}
	s := &Server{bus: bus, owner: owner, h: h, now: now, sem: make(chan struct{}, limit)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	unsub, err := bus.Subscribe(filter, s.take)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("paradigm: serve %s: %w", filter, err)
	}
	s.unsub = unsub
	return s, nil
}

func (s *Server) take(m Message) error {
	if m.Retained {
		return nil // a retained request is an old one
	}
	env, err := topics.UnmarshalEnvelope(m.Payload, topics.DefaultLimits)
	var req topics.BusRequest
	if err == nil && env.Kind != topics.KindBusRequest {
		err = fmt.Errorf("a %s, not a request", env.Kind)
	}
	if err == nil {
		err = env.DecodeBody(&req)
	}
	if err == nil && req.ReplyTo == "" {
		err = errors.New("a request without a reply topic")
	}
	if err != nil {
		// Nobody to answer: said once in the log of the side.
		return nil
	}
	deadline := time.Time{}
	if req.Deadline != 0 {
		deadline = time.Unix(0, req.Deadline)
		if !s.now().Before(deadline) {
			return nil // the requester has given up
		}
	}
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		return nil
	}
	s.mu.Lock()
	if s.stop {
		s.mu.Unlock()
		<-s.sem
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		ctx := s.ctx
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, deadline.Sub(s.now()))
			defer cancel()
		}
		body, err := s.h(ctx, m.Topic, req.Body)
		r := topics.BusReply{ID: req.ID, Body: body}
		if err != nil {
			r = topics.BusReply{ID: req.ID, Error: err.Error()}
		}
		raw, err := topics.Encode(topics.KindBusReply, s.owner, r)
		if err == nil {
			_ = s.bus.Publish(req.ReplyTo, raw, false, 1)
		}
	}()
	return nil
}

// Stop stops taking requests, cancels the ones being answered and waits
// for them.
func (s *Server) Stop() {
	s.once.Do(func() {
		_ = s.unsub()
		s.mu.Lock()
		s.stop = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
}
