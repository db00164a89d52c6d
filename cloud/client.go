package cloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/topics"
)

// Client talks to the control plane over the cloud broker, as the CLI does:
// it authenticates like any client (a user of role operator, viewer or
// admin), sends requests on its user's request topic and waits for the
// replies, and watches status and events.
type Client struct {
	bus     *broker.ClientBus
	id      string
	user    string
	seq     atomic.Uint64
	mu      sync.Mutex
	waiting map[string]chan topics.APIReply
}

// Dial connects. cfg.ClientID, if empty, is made up; it names the reply
// topic, so it must be unique.
func Dial(cfg broker.ClientConfig) (*Client, error) {
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
	bus, err := broker.DialBus(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{bus: bus, id: cfg.ClientID, user: cfg.Username, waiting: map[string]chan topics.APIReply{}}
	if err := bus.Subscribe(topics.APIReplyTopic(c.user, c.id), c.onReply); err != nil {
		bus.Close()
		return nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	return c, nil
}

// Close disconnects.
func (c *Client) Close() error { return c.bus.Close() }

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
	const perDocument = 64 // msgpack framing of one document and its origin
	budget := MaxRequestBytes - 1024
	for _, r := range rs {
		if n := len(r.Source) + len(r.Origin) + perDocument; n > budget {
			return topics.APIReply{}, fmt.Errorf("%s: a document of %d bytes is over the limit of %d for one resource", r.Origin, n, budget)
		}
	}
	var all topics.APIReply
	for len(rs) > 0 {
		req := topics.APIRequest{Op: "apply"}
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
// and onEvent with each of its events, until ctx ends.
func (c *Client) Watch(ctx context.Context, ref topics.JobRef, onStatus func(api.Status), onEvent func(topics.JobEvent)) error {
	if err := c.bus.Subscribe(topics.JobEvents(ref), func(_ string, p []byte) error {
		if env, err := topics.UnmarshalEnvelope(p, topics.Limits{}); err == nil {
			var ev topics.JobEvent
			if env.DecodeBody(&ev) == nil && onEvent != nil {
				onEvent(ev)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := c.bus.Subscribe(topics.JobStatus(ref), func(_ string, p []byte) error {
		if len(p) == 0 {
			return nil
		}
		if env, err := topics.UnmarshalEnvelope(p, topics.Limits{}); err == nil {
			var st api.Status
			if env.DecodeBody(&st) == nil && onStatus != nil {
				onStatus(st)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
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
