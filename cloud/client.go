package cloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/topics"
)

// Client talks to the control plane over the cloud broker, as the CLI does:
// it authenticates like any client (a user of role operator, viewer or
// admin), sends requests on its user's request topic and waits for the
// replies, and watches status and events.
type Client struct {
	bus     *cloudlink.ClientBus
	id      string
	user    string
	seq     atomic.Uint64
	mu      sync.Mutex
	waiting map[string]chan topics.APIReply

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// subMu serializes the watches' subscribing and unsubscribing, which
	// wait for the broker; wmu guards watchers (each filter's watches),
	// which the bus's handlers read, and is never held while waiting.
	subMu    sync.Mutex
	wmu      sync.Mutex
	watchers map[string]map[*watch]struct{}
}

// ErrClosed is returned by a Watch or a Do that was waiting when the
// client was closed.
var ErrClosed = errors.New("cloud: the client is closed")

// Dial connects. cfg.ClientID, if empty, is made up; it names the reply
// topic, so it must be unique.
func Dial(cfg cloudlink.ClientConfig) (*Client, error) {
	if cfg.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.ClientID = "sedna-cli-" + hex.EncodeToString(b[:])
	}
	if err := topics.ValidateName("client", cfg.ClientID); err != nil {
		return nil, err
	}
	if err := topics.ValidateName("user", cfg.Username); err != nil {
		return nil, fmt.Errorf("the control plane's API needs a username: %w", err)
	}
	cfg.CleanSession = true
	cfg.FailFast = true
	c := &Client{id: cfg.ClientID, user: cfg.Username, waiting: map[string]chan topics.APIReply{},
		done: make(chan struct{}), watchers: map[string]map[*watch]struct{}{}}
	// A watch whose subscription is not made again after a reconnection
	// would wait for nothing: it ends with the error.
	next := cfg.OnResubscribeError
	cfg.OnResubscribeError = func(filter string, err error) {
		switch {
		case c.failWatches(filter, err):
		case next != nil:
			next(filter, err)
		default:
			slog.Default().Error("cloud: a subscription was not made again after a reconnection; nothing arrives on it",
				"client", c.id, "filter", filter, "error", err)
		}
	}
	bus, err := cloudlink.DialBus(cfg)
	if err != nil {
		return nil, err
	}
	c.bus = bus
	if err := bus.Subscribe(topics.APIReplyTopic(c.user, c.id), c.onReply); err != nil {
		bus.Close()
		return nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	return c, nil
}

// Close disconnects; a Watch or Do still waiting returns ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	return c.bus.Close()
}

func (c *Client) onReply(_ string, payload []byte) error {
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{MaxBody: 256 << 20})
	if err != nil {
		return nil
	}
	var rep topics.APIReply
	if env.DecodeBody(&rep) != nil {
		return nil
	}
	c.mu.Lock()
	ch := c.waiting[rep.ID]
	delete(c.waiting, rep.ID)
	c.mu.Unlock()
	if ch != nil {
		ch <- rep
	}
	return nil
}

// Do sends a request and waits for its reply or ctx.
func (c *Client) Do(ctx context.Context, req topics.APIRequest) (topics.APIReply, error) {
	req.Client = c.id
	req.ID = fmt.Sprintf("%s-%d", c.id, c.seq.Add(1))
	ch := make(chan topics.APIReply, 1)
	c.mu.Lock()
	c.waiting[req.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, req.ID)
		c.mu.Unlock()
	}()
	env, err := topics.NewEnvelope(topics.KindAPIRequest, c.id, req)
	if err != nil {
		return topics.APIReply{}, err
	}
	raw, err := env.Marshal()
	if err != nil {
		return topics.APIReply{}, err
	}
	if len(raw) > MaxRequestBytes {
		return topics.APIReply{}, fmt.Errorf("%s: a request of %d bytes is over the limit of %d", req.Op, len(raw), MaxRequestBytes)
	}
	if err := c.bus.Publish(topics.APIRequestTopic(c.user), raw, false, 1); err != nil {
		return topics.APIReply{}, fmt.Errorf("send %s: %w", req.Op, err)
	}
	select {
	case rep := <-ch:
		if rep.Error != "" {
			return rep, fmt.Errorf("%s", rep.Error)
		}
		return rep, nil
	case <-ctx.Done():
		return topics.APIReply{}, fmt.Errorf("no answer from the cloud manager: %w", ctx.Err())
	case <-c.done:
		return topics.APIReply{}, fmt.Errorf("%s: %w", req.Op, ErrClosed)
	}
}

// MaxRequestBytes bounds one request to the control plane: a message of
// the project (topics.DefaultLimits.MaxBody), less room for its envelope.
var MaxRequestBytes = topics.DefaultLimits.MaxBody - 4096

// Apply sends resources (their Source) for admission, as many requests as
// their size takes (each within MaxRequestBytes), and returns every
// result. A document too large for any request is refused here, naming
// it, before anything is sent.
func (c *Client) Apply(ctx context.Context, rs []*api.Resource) (topics.APIReply, error) {
	return c.ApplyWith(ctx, rs, false)
}

// ApplyWith is Apply; strict makes the control plane refuse a document
// with a field Sedna's CRDs do not define (it warns otherwise).
func (c *Client) ApplyWith(ctx context.Context, rs []*api.Resource, strict bool) (topics.APIReply, error) {
	const perDocument = 64 // msgpack framing of one document and its origin
	budget := MaxRequestBytes - 1024
	for _, r := range rs {
		if n := len(r.Source) + len(r.Origin) + perDocument; n > budget {
			return topics.APIReply{}, fmt.Errorf("%s: a document of %d bytes is over the limit of %d for one resource", r.Origin, n, budget)
		}
	}
	var all topics.APIReply
	for len(rs) > 0 {
		req := topics.APIRequest{Op: "apply", Strict: strict}
		size := 0
		for len(rs) > 0 {
			n := len(rs[0].Source) + len(rs[0].Origin) + perDocument
			if size+n > budget && len(req.Documents) > 0 {
				break
			}
			req.Documents = append(req.Documents, rs[0].Source)
			req.Origins = append(req.Origins, rs[0].Origin)
			size += n
			rs = rs[1:]
		}
		rep, err := c.Do(ctx, req)
		all.Results = append(all.Results, rep.Results...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// Watch calls onStatus with the resource's status (the retained one first)
// and onEvent with each of its events, in the order they arrive, until ctx
// ends (it then returns nil).
//
// The callbacks run on Watch's goroutine, one at a time and never after
// Watch returns; a slow one holds up only its own watch. A status or event
// that cannot be read ends the watch with an error naming it, as does a
// subscription the broker refused or did not acknowledge (also when made
// again after a reconnection), a watch more than MaxWatchBacklog messages
// behind, and Close (ErrClosed). When Watch returns, its subscriptions are
// ended. Several watches, of one resource too, may run at once on a
// client; each starts from the retained status. The empty status left by
// a deleted resource is not reported.
func (c *Client) Watch(ctx context.Context, ref topics.JobRef, onStatus func(api.Status), onEvent func(topics.JobEvent)) (err error) {
	w := &watch{kick: make(chan struct{}, 1)}
	statusF, eventsF := topics.JobStatus(ref), topics.JobEvents(ref)
	var joined []string
	defer func() {
		if lerr := c.leave(w, joined); err == nil && lerr != nil {
			err = fmt.Errorf("watch %s: %w", ref, lerr)
		}
	}()
	for _, f := range []string{eventsF, statusF} {
		if err := c.join(w, f); err != nil {
			return fmt.Errorf("watch %s: %w", ref, err)
		}
		joined = append(joined, f)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.done:
			return fmt.Errorf("watch %s: %w", ref, ErrClosed)
		case <-w.kick:
		}
		for _, m := range w.take() {
			if ctx.Err() != nil {
				return nil
			}
			if m.err != nil {
				return fmt.Errorf("watch %s: %w", ref, m.err)
			}
			if m.filter == statusF {
				if len(m.payload) == 0 {
					continue // the resource was deleted: its retained status cleared
				}
				var st api.Status
				if err := decodeWatched(m.payload, topics.KindStatus, &st); err != nil {
					return fmt.Errorf("watch %s: a status that cannot be read: %w", ref, err)
				}
				if onStatus != nil {
					onStatus(st)
				}
				continue
			}
			var ev topics.JobEvent
			if err := decodeWatched(m.payload, topics.KindJobEvent, &ev); err != nil {
				return fmt.Errorf("watch %s: an event that cannot be read: %w", ref, err)
			}
			if onEvent != nil {
				onEvent(ev)
			}
		}
	}
}

// MaxWatchBacklog bounds the messages a watch holds that its callbacks
// have not taken yet; past it the watch ends with an error rather than
// hold without bound or drop silently.
const MaxWatchBacklog = 4096

func decodeWatched(p []byte, kind string, v any) error {
	env, err := topics.UnmarshalEnvelope(p, topics.Limits{})
	if err != nil {
		return err
	}
	if env.Kind != kind {
		return fmt.Errorf("a message of kind %q, want %q", env.Kind, kind)
	}
	return env.DecodeBody(v)
}

// watch is one Watch's queue: the bus's handler (paho's single delivery
// goroutine, which must never wait on a callback) appends, Watch takes.
type watch struct {
	kick chan struct{} // capacity 1: something was queued
	mu   sync.Mutex
	q    []watchMsg
	over bool
}

type watchMsg struct {
	filter  string
	payload []byte
	err     error // the watch must end with it
}

func (w *watch) push(m watchMsg) {
	w.mu.Lock()
	switch {
	case m.err != nil:
		w.q = append(w.q, m)
	case w.over:
	case len(w.q) >= MaxWatchBacklog:
		w.over = true
		w.q = append(w.q, watchMsg{err: fmt.Errorf("more than %d messages not taken by the callbacks yet: the watch fell behind", MaxWatchBacklog)})
	default:
		w.q = append(w.q, m)
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *watch) take() []watchMsg {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.q
	w.q = nil
	return q
}

// join adds w to filter's watches and subscribes. The subscription is made
// (again) even when another watch has the filter: the broker then sends
// the retained status again, which the new watch starts from (the others
// see the latest status once more).
func (c *Client) join(w *watch, filter string) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.wmu.Lock()
	if c.watchers[filter] == nil {
		c.watchers[filter] = map[*watch]struct{}{}
	}
	c.watchers[filter][w] = struct{}{}
	c.wmu.Unlock()
	err := c.bus.Subscribe(filter, func(_ string, p []byte) error {
		c.wmu.Lock()
		for o := range c.watchers[filter] {
			o.push(watchMsg{filter: filter, payload: p})
		}
		c.wmu.Unlock()
		return nil
	})
	if err != nil {
		c.drop(w, filter)
	}
	return err
}

// drop removes w from filter's watches and reports whether none is left.
func (c *Client) drop(w *watch, filter string) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	delete(c.watchers[filter], w)
	if len(c.watchers[filter]) > 0 {
		return false
	}
	delete(c.watchers, filter)
	return true
}

// leave removes w from the filters' watches and unsubscribes from those
// no watch has left.
func (c *Client) leave(w *watch, filters []string) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	var errs []error
	for _, f := range filters {
		if c.drop(w, f) {
			if err := c.bus.Unsubscribe(f); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// failWatches ends every watch of filter with err; it reports whether
// there was one.
func (c *Client) failWatches(filter string, err error) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for w := range c.watchers[filter] {
		w.push(watchMsg{err: err})
	}
	return len(c.watchers[filter]) > 0
}

// PushModel uploads a new version of a model in pieces (one request each,
// so a slow link paces it) and returns the registry's answer.
func (c *Client) PushModel(ctx context.Context, namespace, name, format string, metrics map[string]string, r io.Reader) (topics.APIResult, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := "push-" + hex.EncodeToString(b[:])
	buf := make([]byte, ModelChunkSize)
	next := make([]byte, ModelChunkSize)
	n, err := io.ReadFull(r, buf)
	for i := 0; ; i++ {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return topics.APIResult{}, err
		}
		// Read ahead to know whether this piece is the last.
		m, nerr := 0, err
		if err == nil {
			m, nerr = io.ReadFull(r, next)
		}
		last := err != nil || m == 0 && nerr != nil
		up := &topics.ModelUpload{ID: id, Index: i, Data: buf[:n], Last: last}
		if last {
			up.Format, up.Metrics = format, metrics
		}
		rep, derr := c.Do(ctx, topics.APIRequest{Op: "model.push", Namespace: namespace, Name: name, Upload: up})
		if derr != nil {
			return topics.APIResult{}, derr
		}
		if last {
			if len(rep.Results) == 0 {
				return topics.APIResult{}, errors.New("model push: no result")
			}
			return rep.Results[0], nil
		}
		buf, next = next, buf
		n, err = m, nerr
	}
}
