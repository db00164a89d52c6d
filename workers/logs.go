package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sedna-go/sedna/topics"
)

// Every worker has a log file in Config.LogDir: an external worker's
// stdout and stderr, a built-in worker's log records. A LogServer serves
// them to `sedna logs` (topics.LogRequest): the end of one, and what the
// worker writes after for as long as the requester renews its lease.

// LogName is the name of the log file of job's worker role in
// Config.LogDir.
func LogName(job topics.JobRef, role string) string {
	return strings.NewReplacer("/", "_").Replace(job.String()+"/"+role) + ".log"
}

// builtinLog is the logger of one run of a built-in worker: log, and the
// worker's log file too, as an external worker's output goes there, so
// that every worker has a log to serve. end records why the run failed
// (err, unless ctx was stopped), as a process's last words would be, and
// closes the file.
func (s *Supervisor) builtinLog(spec Spec, log *slog.Logger) (_ *slog.Logger, end func(ctx context.Context, err error)) {
	none := func(context.Context, error) {}
	if s.cfg.LogDir == "" {
		return log, none
	}
	if err := os.MkdirAll(s.cfg.LogDir, 0o755); err != nil {
		log.Warn("worker log not kept", "error", err)
		return log, none
	}
	f, err := os.OpenFile(filepath.Join(s.cfg.LogDir, LogName(spec.Job, spec.Role)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Warn("worker log not kept", "error", err)
		return log, none
	}
	file := slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo})
	return slog.New(slog.NewMultiHandler(log.Handler(), file)), func(ctx context.Context, err error) {
		if err != nil && ctx.Err() == nil {
			slog.New(file).Error("worker failed", "error", err)
		}
		_ = f.Close()
	}
}

// TailStart is where the part of a log of size bytes that a request gets
// begins: within the last maxBytes (all of it if maxBytes <= 0), at the
// start of a line unless a line is longer than the bound, and at the
// start of the last lines lines if lines is not negative (none if 0).
func TailStart(r io.ReaderAt, size, maxBytes int64, lines int) (int64, error) {
	if size <= 0 {
		return 0, nil
	}
	if lines == 0 {
		return size, nil
	}
	floor := int64(0)
	if maxBytes > 0 && size > maxBytes {
		floor = size - maxBytes
	}
	if lines > 0 {
		last, err := byteAt(r, size-1)
		if err != nil {
			return 0, err
		}
		end := size
		if last == '\n' {
			end-- // the last line's own end
		}
		n := 0
		buf := make([]byte, 32<<10)
		for pos := end; pos > floor; {
			k := min(int64(len(buf)), pos-floor)
			b := buf[:k]
			if _, err := r.ReadAt(b, pos-k); err != nil && !errors.Is(err, io.EOF) {
				return 0, err
			}
			for i := len(b) - 1; i >= 0; i-- {
				if b[i] == '\n' {
					if n++; n == lines {
						return pos - k + int64(i) + 1, nil
					}
				}
			}
			pos -= k
		}
	}
	return lineStart(r, floor, size)
}

// lineStart is the start of the first whole line at or after from, or
// from itself when that line does not end within a chunk (or at all
// before size: a part of a line is better than nothing).
func lineStart(r io.ReaderAt, from, size int64) (int64, error) {
	if from <= 0 {
		return 0, nil
	}
	prev, err := byteAt(r, from-1)
	if err != nil || prev == '\n' {
		return from, err
	}
	b := make([]byte, min(int64(topics.LogChunkSize), size-from))
	n, err := r.ReadAt(b, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	for i, c := range b[:n] {
		if c == '\n' {
			if at := from + int64(i) + 1; at < size {
				return at, nil
			}
			break
		}
	}
	return from, nil
}

func byteAt(r io.ReaderAt, off int64) (byte, error) {
	var b [1]byte
	if _, err := r.ReadAt(b[:], off); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return b[0], nil
}

// readChunks calls fn with the bytes of r from from to to, in pieces of
// at most size bytes, each in a buffer of its own, last set on the last;
// with no bytes, once with none. A file that ends before to ends the
// pieces there. It returns the offset after the last byte given to fn.
func readChunks(r io.ReaderAt, from, to int64, size int, fn func(off int64, data []byte, last bool) error) (int64, error) {
	if from >= to {
		return from, fn(from, nil, true)
	}
	for off := from; off < to; {
		b := make([]byte, min(int64(size), to-off))
		n, err := r.ReadAt(b, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return off, err
		}
		short := n < len(b)
		if err := fn(off, b[:n], short || off+int64(n) >= to); err != nil {
			return off, err
		}
		off += int64(n)
		if short {
			return off, nil
		}
	}
	return to, nil
}

// lease is when a follow ends unless it is renewed; a renewal never
// shortens it.
type lease struct{ until time.Time }

func (l *lease) renew(now time.Time, d time.Duration) {
	if t := now.Add(d); t.After(l.until) {
		l.until = t
	}
}

func (l *lease) over(now time.Time) bool { return !now.Before(l.until) }

// LogServerConfig configures a LogServer.
type LogServerConfig struct {
	// Node names the node, for messages.
	Node string
	// Dir holds the logs: the supervisor's Config.LogDir.
	Dir string
	// Send delivers one chunk of the answer to req, about job's worker.
	// Each stream calls it from a goroutine of its own, in order; it
	// should not block for long.
	Send func(job topics.JobRef, req topics.LogRequest, c topics.LogChunk) error
	// Missing, if set, says why job's worker role has no log on the node
	// (what the node knows of the worker), for the error of the chunk.
	Missing func(job topics.JobRef, role string) string
	// Poll is how often a followed log is checked for growth (it is a
	// file: polling its size is what tail -f does); default 250ms.
	Poll time.Duration
	// MaxStreams bounds the streams served at once; default 32.
	MaxStreams int
	// Now is the clock of leases; default time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// LogServer answers topics.LogRequests from the log files of a
// supervisor's workers. Each stream is a goroutine of the server, which
// ends at the end of the log (without Follow), when its lease ends, or at
// Close.
type LogServer struct {
	cfg     LogServerConfig
	mu      sync.Mutex
	streams map[string]*logStream // by stream; guarded by mu
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// logStream is a stream being served, or one answered lately: a request
// sent again while its answer may still be on its way is not answered
// twice (on a slow link the answer would be sent over and over).
type logStream struct {
	lease lease
	done  bool
}

// NewLogServer makes a LogServer.
func NewLogServer(cfg LogServerConfig) *LogServer {
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 32
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &LogServer{cfg: cfg, streams: map[string]*logStream{}, stop: make(chan struct{})}
}

// Serve answers req, about a worker of job: it starts a stream, or renews
// the lease of the stream already going under req.Stream (a request sent
// again is a renewal; one sent again within the lease of its answered
// request is ignored). It returns at once, but for the refusal of a
// request over MaxStreams, one small chunk sent before it returns.
func (s *LogServer) Serve(job topics.JobRef, req topics.LogRequest) {
	if err := topics.ValidateName("stream", req.Stream); err != nil {
		s.cfg.Log.Warn("log request refused", "job", job.String(), "error", err)
		return
	}
	if err := job.Validate(); err != nil {
		s.cfg.Log.Warn("log request refused", "stream", req.Stream, "error", err)
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	active := 0
	for id, st := range s.streams {
		switch {
		case st.done && st.lease.over(now):
			delete(s.streams, id)
		case !st.done:
			active++
		}
	}
	if st, ok := s.streams[req.Stream]; ok {
		if req.Follow && !st.done {
			st.lease.renew(now, req.LeaseOrDefault())
		}
		s.mu.Unlock()
		return
	}
	if active >= s.cfg.MaxStreams {
		s.mu.Unlock()
		s.send(job, req, topics.LogChunk{Error: fmt.Sprintf("node %s serves %d log streams already: try again later", s.cfg.Node, s.cfg.MaxStreams)})
		return
	}
	st := &logStream{}
	st.lease.renew(now, req.LeaseOrDefault())
	s.streams[req.Stream] = st
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		// An answer is done (kept until its lease ends) before its last
		// chunk goes: whoever has the last chunk and asks again once the
		// lease ended is answered again.
		finish := func() {
			s.mu.Lock()
			if req.Follow {
				if s.streams[req.Stream] == st { // not a new stream of the same name
					delete(s.streams, req.Stream)
				}
			} else {
				st.done = true
			}
			s.mu.Unlock()
		}
		defer finish()
		s.stream(job, req, &st.lease, finish)
	}()
}

// Streams reports how many streams are being served.
func (s *LogServer) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.streams {
		if !st.done {
			n++
		}
	}
	return n
}

// Close ends every stream and waits for them.
func (s *LogServer) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *LogServer) send(job topics.JobRef, req topics.LogRequest, c topics.LogChunk) bool {
	c.Stream = req.Stream
	if err := s.cfg.Send(job, req, c); err != nil {
		s.cfg.Log.Warn("log chunk not sent; the stream ends", "job", job.String(), "role", req.Role, "stream", req.Stream, "error", err)
		return false
	}
	return true
}

// stream sends the end of the log, then with Follow what is appended,
// until the lease ends.
func (s *LogServer) stream(job topics.JobRef, req topics.LogRequest, l *lease, finish func()) {
	worker := job.String() + "/" + req.Role
	fail := func(msg string) {
		finish()
		s.send(job, req, topics.LogChunk{Error: msg})
	}
	if err := topics.ValidateName("role", req.Role); err != nil {
		fail(err.Error())
		return
	}
	f, err := os.Open(filepath.Join(s.cfg.Dir, LogName(job, req.Role)))
	if errors.Is(err, fs.ErrNotExist) {
		msg := fmt.Sprintf("worker %s has no log on node %s", worker, s.cfg.Node)
		if s.cfg.Missing != nil {
			msg = s.cfg.Missing(job, req.Role)
		}
		fail(msg)
		return
	}
	if err != nil {
		fail(fmt.Sprintf("the log of worker %s on node %s cannot be read: %v", worker, s.cfg.Node, errors.Unwrap(err)))
		return
	}
	defer f.Close()
	limit := req.BytesOrDefault()
	size, err := fileSize(f)
	if err != nil {
		fail(fmt.Sprintf("the log of worker %s on node %s cannot be read: %v", worker, s.cfg.Node, err))
		return
	}
	var off int64
	truncated := false
	switch {
	case req.Resume && req.From >= 0 && req.From <= size && size-req.From <= limit:
		off = req.From
	case req.Resume:
		// Replaced (shorter), or too far behind: the end, and the gap or
		// the restart shows in the offsets.
		truncated = req.From > size
		off, err = TailStart(f, size, limit, -1)
	default:
		off, err = TailStart(f, size, limit, req.Lines)
	}
	if err == nil {
		var last func()
		if !req.Follow {
			last = finish
		}
		off, err = s.sendRange(job, req, f, off, size, truncated, last)
	}
	if err != nil || !req.Follow {
		return
	}
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		over := l.over(s.cfg.Now())
		s.mu.Unlock()
		if over {
			return
		}
		if size, err = fileSize(f); err != nil {
			fail(fmt.Sprintf("the log of worker %s on node %s cannot be read: %v", worker, s.cfg.Node, err))
			return
		}
		truncated := size < off
		if truncated || size-off > limit {
			if off, err = TailStart(f, size, limit, -1); err != nil {
				fail(fmt.Sprintf("the log of worker %s on node %s cannot be read: %v", worker, s.cfg.Node, err))
				return
			}
		}
		if size == off && !truncated {
			continue
		}
		if off, err = s.sendRange(job, req, f, off, size, truncated, nil); err != nil {
			return
		}
	}
}

// errNotSent ends a stream whose chunk could not be sent.
var errNotSent = errors.New("log chunk not sent")

// sendRange sends the bytes of f from from to to in chunks (one with no
// data if there are none), the first marked truncated if so; with eof
// set the last is marked EOF, eof called just before it is sent; it
// returns the offset reached.
func (s *LogServer) sendRange(job topics.JobRef, req topics.LogRequest, f io.ReaderAt, from, to int64, truncated bool, eof func()) (int64, error) {
	first := true
	return readChunks(f, from, to, topics.LogChunkSize, func(off int64, data []byte, last bool) error {
		c := topics.LogChunk{Offset: off, Data: data, Truncated: truncated && first, EOF: eof != nil && last}
		first = false
		if c.EOF {
			eof()
		}
		if !s.send(job, req, c) {
			return errNotSent
		}
		return nil
	})
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
