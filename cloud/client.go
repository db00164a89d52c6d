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
// it authenticates like any client (role cloud), sends requests and waits
// for the replies, and watches status and events.
type Client struct {
	bus     *broker.ClientBus
	id      string
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
	cfg.CleanSession = true
	cfg.FailFast = true
	bus, err := broker.DialBus(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{bus: bus, id: cfg.ClientID, waiting: map[string]chan topics.APIReply{}}
	if err := bus.Subscribe(topics.APIReplyTopic(c.id), c.onReply); err != nil {
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
	if err := c.bus.Publish(topics.APIRequestTopic(), raw, false, 1); err != nil {
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

// Apply sends resources (their Source) for admission.
func (c *Client) Apply(ctx context.Context, rs []*api.Resource) (topics.APIReply, error) {
	req := topics.APIRequest{Op: "apply"}
	for _, r := range rs {
		req.Documents = append(req.Documents, r.Source)
		req.Origins = append(req.Origins, r.Origin)
	}
	return c.Do(ctx, req)
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
