package cloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
)

// LogOptions says whose log Client.Logs streams, and how much of it.
type LogOptions struct {
	// Kind (as Resolve takes it: fl, ji, FederatedLearningJob, ...),
	// Namespace (default "default") and Name name the job.
	Kind, Namespace, Name string
	// Role is the worker's role in the job; empty names the job's only
	// worker.
	Role string
	// Follow goes on with what the worker writes, until ctx ends.
	Follow bool
	// Lines, if not negative, shows only the last Lines lines (0: none;
	// with Follow, only what is written from now on); negative shows
	// every whole line within Bytes.
	Lines int
	// Bytes bounds what is shown of the log's end; 0 is
	// topics.DefaultLogBytes, at most topics.MaxLogBytes.
	Bytes int64
	// Lease is how long the node follows without hearing from the
	// client; 0 is topics.DefaultLogLease. The request is sent again
	// every third of it: a renewal (without Follow, until the first chunk
	// comes, in case the request was lost).
	Lease time.Duration
	// Wait bounds the wait for each answer of the control plane and for
	// the node's chunks (without Follow; following, a quiet worker is
	// quiet); default 30s.
	Wait time.Duration
	// Notice, if set, is told what is not the log itself: bytes not
	// shown, skipped or repeated by the node.
	Notice func(string)
}

// Logs writes the log of a job's worker to out, as the worker wrote it:
// the end of it, and with Follow what the worker writes after, until ctx
// ends. It subscribes to the chunks first, then asks the control plane,
// which has the worker's node send them (through its bridge) or says why
// it cannot (the node is offline: its workers' logs stay on it). It
// returns the node that answered, and nil at the end of the log (without
// Follow), ctx's error when ctx ends, or what went wrong.
func (c *Client) Logs(ctx context.Context, o LogOptions, out io.Writer) (node string, err error) {
	kind, ok := Resolve(o.Kind)
	if !ok {
		return "", errors.New(api.UnknownKind(o.Kind))
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	ref := topics.JobRef{Kind: kind, Namespace: o.Namespace, Name: o.Name}
	if err := ref.Validate(); err != nil {
		return "", err
	}
	if o.Role != "" {
		if err := topics.ValidateName("role", o.Role); err != nil {
			return "", err
		}
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Notice == nil {
		o.Notice = func(string) {}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	req := topics.LogRequest{Stream: "logs-" + hex.EncodeToString(b[:]), Role: o.Role, Follow: o.Follow,
		Lease: o.Lease, Bytes: o.Bytes, Lines: o.Lines}
	req.Lease = req.LeaseOrDefault()

	q := &chunkQueue{stream: req.Stream, notify: make(chan struct{}, 1)}
	if err := c.bus.Subscribe(topics.NodeJobLogsFilter(ref, "+", req.Stream), q.take); err != nil {
		return "", fmt.Errorf("subscribe to the log: %w", err)
	}
	// The stream is unique: what still comes on it once this returns is
	// dropped, and the subscription goes.
	defer func() { _ = c.bus.Unsubscribe(topics.NodeJobLogsFilter(ref, "+", req.Stream)) }()
	defer q.close()
	ask := func(ctx context.Context, r topics.LogRequest) (topics.APIReply, error) {
		ctx, cancel := context.WithTimeout(ctx, o.Wait)
		defer cancel()
		return c.Do(ctx, topics.APIRequest{Op: "logs", Kind: kind, Namespace: o.Namespace, Name: o.Name, Logs: &r})
	}
	rep, err := ask(ctx, req)
	if err != nil {
		return "", err
	}
	if len(rep.Nodes) > 0 {
		node = rep.Nodes[0].Name
	}

	// Renewals: the same request again, from where the log got to; a
	// request without Follow only until its answer starts to come.
	var (
		mu     sync.Mutex
		resume *int64
	)
	renewErr := make(chan error, 1)
	rctx, stopRenewing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopRenewing()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(req.Lease / 3)
		defer tick.Stop()
		answered := time.Now()
		for {
			select {
			case <-rctx.Done():
				return
			case <-tick.C:
			}
			r := req
			mu.Lock()
			if resume != nil {
				r.From, r.Resume = *resume, true
			}
			mu.Unlock()
			if r.Resume && !r.Follow {
				return
			}
			rep, err := ask(rctx, r)
			switch {
			case rctx.Err() != nil:
				return
			case err == nil:
				answered = time.Now()
				continue
			case rep.Error == "" && time.Since(answered) < req.Lease:
				continue // no answer this time: the next renewal may get one
			}
			renewErr <- err
			return
		}
	}()

	asm := logAssembler{lines: o.Lines}
	quiet := time.NewTimer(o.Wait)
	defer quiet.Stop()
	for {
		chunks := q.drain()
		if len(chunks) > 0 && !o.Follow {
			quiet.Reset(o.Wait)
		}
		for _, ch := range chunks {
			data, notes, eof, err := asm.take(ch)
			for _, n := range notes {
				o.Notice(n)
			}
			if err != nil {
				return node, err
			}
			if len(data) > 0 {
				if _, err := out.Write(data); err != nil {
					return node, err
				}
			}
			next := asm.next
			mu.Lock()
			resume = &next
			mu.Unlock()
			if eof && !o.Follow {
				return node, nil
			}
		}
		select {
		case <-q.notify:
		case err := <-renewErr:
			return node, err
		case <-ctx.Done():
			return node, ctx.Err()
		case <-quiet.C:
			if !asm.started || !o.Follow {
				return node, fmt.Errorf("node %s sent no log for %v", node, o.Wait)
			}
		}
	}
}

// chunkQueue takes the chunks of one stream from the bus. Its handler
// never blocks: the bus delivers the control plane's replies on the same
// goroutine.
type chunkQueue struct {
	stream string
	notify chan struct{}
	mu     sync.Mutex
	chunks []topics.LogChunk
	closed bool
}

func (q *chunkQueue) take(_ string, payload []byte) error {
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil || env.Kind != topics.KindLogChunk {
		return nil
	}
	var ch topics.LogChunk
	if env.DecodeBody(&ch) != nil || ch.Stream != q.stream {
		return nil
	}
	q.mu.Lock()
	if !q.closed {
		q.chunks = append(q.chunks, ch)
	}
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

func (q *chunkQueue) drain() []topics.LogChunk {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.chunks
	q.chunks = nil
	return out
}

func (q *chunkQueue) close() {
	q.mu.Lock()
	q.closed, q.chunks = true, nil
	q.mu.Unlock()
}

// logAssembler puts the chunks of a stream together: it drops bytes it
// already has (a chunk sent again) and says where bytes are missing.
type logAssembler struct {
	lines   int // the request's: a start inside the log is what was asked
	started bool
	next    int64 // the offset after the last byte given out
}

// take returns the new bytes of chunk c, what to tell the user beside
// them, whether c ends the log, and the node's error if it sent one.
func (a *logAssembler) take(c topics.LogChunk) (data []byte, notes []string, eof bool, err error) {
	if c.Error != "" {
		return nil, nil, false, errors.New(c.Error)
	}
	data = c.Data
	switch {
	case !a.started:
		a.started = true
		if c.Offset > 0 && a.lines < 0 {
			notes = append(notes, fmt.Sprintf("[%d earlier bytes of the log not shown]", c.Offset))
		}
		a.next = c.Offset
	case c.Truncated:
		notes = append(notes, "[the log was truncated or replaced: it starts again]")
		a.next = c.Offset
	case c.Offset > a.next:
		notes = append(notes, fmt.Sprintf("[%d bytes of the log skipped]", c.Offset-a.next))
		a.next = c.Offset
	case c.Offset < a.next:
		dup := a.next - c.Offset
		if dup >= int64(len(data)) {
			return nil, notes, c.EOF, nil
		}
		data = data[dup:]
	}
	a.next += int64(len(data))
	return data, notes, c.EOF, nil
}
