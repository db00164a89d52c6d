package netfault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const (
	// maxChunk is the largest chunk a reader takes from a socket at once.
	maxChunk = 32 << 10
	// queueLen is the number of chunks a delay line holds per direction
	// and connection before its reader blocks (back-pressure).
	queueLen = 64
	// dialTimeout bounds a dial of the target.
	dialTimeout = 10 * time.Second
	// maxAcceptBackoff bounds the pause after a failed Accept that is not
	// caused by Close (for example too many open files).
	maxAcceptBackoff = time.Second
)

// Stats is a snapshot of a Proxy's counters.
type Stats struct {
	// BytesUp is the number of bytes forwarded from clients to the target.
	BytesUp int64
	// BytesDown is the number of bytes forwarded from the target to clients.
	BytesDown int64
	// Accepted is the number of connections the listener accepted,
	// including those refused because the link was down.
	Accepted int64
	// Refused is the number of accepted connections closed at once because
	// the link was down.
	Refused int64
	// DialErrors is the number of accepted connections closed because the
	// target could not be dialed.
	DialErrors int64
	// Open is the number of client connections currently open through the
	// Proxy (including those whose upstream dial is in progress).
	Open int
}

// Proxy is a TCP proxy from a loopback listener to one target, with fault
// injection. Create it with New and stop it with Close. All its methods are
// safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	dialer net.Dialer

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Proxy starts

	latency  atomic.Int64 // time.Duration, one way
	up       direction    // client -> target
	down     direction    // target -> client
	accepted atomic.Int64
	refused  atomic.Int64
	dialErrs atomic.Int64

	mu       sync.Mutex
	closed   bool
	linkDown bool
	stalled  bool
	unstall  chan struct{} // closed when a stall ends; valid while stalled
	links    map[*link]struct{}
	lastErr  error
}

// direction holds the per-direction state shared by all connections.
type direction struct {
	bytes atomic.Int64
	lim   atomic.Pointer[rate.Limiter] // nil = unlimited
}

// chunk is a piece of data in a delay line.
type chunk struct {
	data    []byte
	release time.Time
}

// link is one proxied connection: a client and its upstream.
type link struct {
	ctx    context.Context
	cancel context.CancelFunc
	client net.Conn

	mu     sync.Mutex
	killed bool
	up     net.Conn // nil until dialed
}

// New starts a Proxy listening on 127.0.0.1 (on a free port) that forwards
// each accepted connection to target, a host:port. The target is dialed
// once per accepted connection, not by New.
func New(target string) (*Proxy, error) {
	return Listen("127.0.0.1:0", target)
}

// Listen starts a Proxy listening on addr (host:port; port 0 picks a free
// one) that forwards each accepted connection to target, as New does.
func Listen(addr, target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("netfault: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netfault: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		ln:     ln,
		dialer: net.Dialer{Timeout: dialTimeout},
		ctx:    ctx,
		cancel: cancel,
		links:  make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address the Proxy listens on, as host:port.
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// Close stops the Proxy: it closes the listener and every connection, both
// sides, and waits until all the Proxy's goroutines have returned. Calling
// Close again returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := p.snapshotLocked()
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	for _, l := range links {
		l.kill(false)
	}
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("netfault: close listener: %w", err)
	}
	return nil
}

// SetDown cuts the link (down = true) or restores it (down = false). While
// the link is down, every current connection is closed on both sides and
// each new connection is accepted and closed at once, so clients see EOF
// promptly. Once it is up again, new connections are forwarded as usual.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.linkDown = down
	var links []*link
	if down {
		links = p.snapshotLocked()
	}
	p.mu.Unlock()
	for _, l := range links {
		l.kill(false)
	}
}

// SetLatency sets the one-way latency added in each direction; d <= 0
// removes it. It applies to data read after the call; data already queued
// keeps the latency it was stamped with. Latency does not cut throughput.
func (p *Proxy) SetLatency(d time.Duration) {
	p.latency.Store(int64(max(d, 0)))
}

// SetBandwidth caps the throughput of each direction at bytesPerSecond,
// shared by all connections of the Proxy; 0 (or less) removes the cap.
// Writes are split so that a burst stays within about 1/20 s of traffic
// (at most 32 KiB).
func (p *Proxy) SetBandwidth(bytesPerSecond int) {
	if bytesPerSecond <= 0 {
		p.up.lim.Store(nil)
		p.down.lim.Store(nil)
		return
	}
	b := burstFor(bytesPerSecond)
	p.up.lim.Store(rate.NewLimiter(rate.Limit(bytesPerSecond), b))
	p.down.lim.Store(rate.NewLimiter(rate.Limit(bytesPerSecond), b))
}

// burstFor returns the token-bucket size used for a bandwidth cap: 1/20 s of
// traffic, at least 1 byte and at most maxChunk.
func burstFor(bytesPerSecond int) int {
	return min(max(bytesPerSecond/20, 1), maxChunk)
}

// SetStall black-holes the link (stall = true) or lets it flow again
// (stall = false). While stalled, no bytes are forwarded in either direction
// but connections stay open; data sent meanwhile is held (up to the delay
// line's bound, then the senders are pushed back) and is delivered intact,
// in order, once the stall ends.
func (p *Proxy) SetStall(stall bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case stall && !p.stalled:
		p.stalled = true
		p.unstall = make(chan struct{})
	case !stall && p.stalled:
		p.stalled = false
		close(p.unstall)
		p.unstall = nil
	}
}

// ResetAll aborts every current connection: the client side is reset with
// a TCP RST (linger 0, then close) and the upstream side is closed. New
// connections are still accepted and forwarded.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	links := p.snapshotLocked()
	p.mu.Unlock()
	for _, l := range links {
		l.kill(true)
	}
}

// Stats returns a snapshot of the Proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open := len(p.links)
	p.mu.Unlock()
	return Stats{
		BytesUp:    p.up.bytes.Load(),
		BytesDown:  p.down.bytes.Load(),
		Accepted:   p.accepted.Load(),
		Refused:    p.refused.Load(),
		DialErrors: p.dialErrs.Load(),
		Open:       open,
	}
}

// LastError returns the most recent error met while forwarding a
// connection (such as a failed dial of the target), or nil if there was
// none. Such errors close the connection concerned; the Proxy goes on.
func (p *Proxy) LastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

func (p *Proxy) snapshotLocked() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	return links
}

func (p *Proxy) recordErr(err error) {
	p.mu.Lock()
	p.lastErr = err
	p.mu.Unlock()
}

// acceptLoop accepts connections until the listener is closed.
func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			p.recordErr(fmt.Errorf("netfault: accept: %w", err))
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				continue
			case <-p.ctx.Done():
				t.Stop()
				return
			}
		}
		backoff = 0
		p.accepted.Add(1)

		p.mu.Lock()
		if closed := p.closed; closed || p.linkDown {
			p.mu.Unlock()
			if !closed {
				p.refused.Add(1)
			}
			_ = c.Close()
			continue
		}
		ctx, cancel := context.WithCancel(p.ctx)
		l := &link{ctx: ctx, cancel: cancel, client: c}
		p.links[l] = struct{}{}
		// Add under mu while not closed, so Close's Wait cannot miss it.
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve dials the target for l and runs its two delay lines until both
// directions end or the link is killed.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		l.kill(false)
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()

	up, err := p.dialer.DialContext(l.ctx, "tcp", p.target)
	if err != nil {
		if l.ctx.Err() == nil {
			p.dialErrs.Add(1)
			p.recordErr(fmt.Errorf("netfault: dial %s: %w", p.target, err))
		}
		return
	}
	if !l.attach(up) {
		_ = up.Close()
		return
	}

	upQ := make(chan chunk, queueLen)
	downQ := make(chan chunk, queueLen)
	var wg sync.WaitGroup
	wg.Go(func() { p.intake(l, l.client, upQ) })
	wg.Go(func() { p.release(l, up, upQ, &p.up) })
	wg.Go(func() { p.intake(l, up, downQ) })
	wg.Go(func() { p.release(l, l.client, downQ, &p.down) })
	wg.Wait()
}

// intake reads src, stamps each chunk with its release time and queues it.
// It closes q when src ends; on any other error it kills the link.
func (p *Proxy) intake(l *link, src net.Conn, q chan<- chunk) {
	defer close(q)
	buf := make([]byte, maxChunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c := chunk{
				data:    bytes.Clone(buf[:n]),
				release: time.Now().Add(time.Duration(p.latency.Load())),
			}
			select {
			case q <- c:
			case <-l.ctx.Done():
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.kill(false)
			}
			return
		}
	}
}

// release writes the chunks of q to dst, each no earlier than its release
// time, within the bandwidth cap of d and only while the link is not
// stalled. When q is closed and drained it half-closes dst.
func (p *Proxy) release(l *link, dst net.Conn, q <-chan chunk, d *direction) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var c chunk
		var ok bool
		select {
		case c, ok = <-q:
		case <-l.ctx.Done():
			return
		}
		if !ok {
			closeWrite(dst)
			return
		}
		if wait := time.Until(c.release); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-l.ctx.Done():
				return
			}
		}
		for data := c.data; len(data) > 0; {
			n := len(data)
			if lim := d.lim.Load(); lim != nil {
				n = min(n, lim.Burst())
				if lim.WaitN(l.ctx, n) != nil {
					return // only fails once the link is killed
				}
			}
			if !p.waitUnstalled(l.ctx) {
				return
			}
			// Count before writing, so a peer that has read the bytes
			// always finds them in Stats; a failed write takes back what
			// it did not write.
			d.bytes.Add(int64(n))
			w, err := dst.Write(data[:n])
			if w < n {
				d.bytes.Add(int64(w - n))
			}
			if err != nil {
				l.kill(false)
				return
			}
			data = data[n:]
		}
	}
}

// waitUnstalled blocks while the link is stalled. It reports false if ctx
// ends first.
func (p *Proxy) waitUnstalled(ctx context.Context) bool {
	for {
		p.mu.Lock()
		if !p.stalled {
			p.mu.Unlock()
			return ctx.Err() == nil
		}
		ch := p.unstall
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// attach records the upstream connection of l. It reports false if l was
// killed meanwhile; the caller then closes up.
func (l *link) attach(up net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		return false
	}
	l.up = up
	return true
}

// kill ends l: it cancels its context and closes both connections. With
// rst, the client side is closed with linger 0 so the client gets a TCP
// RST. Only the first call has an effect.
func (l *link) kill(rst bool) {
	l.mu.Lock()
	if l.killed {
		l.mu.Unlock()
		return
	}
	l.killed = true
	up := l.up
	l.mu.Unlock()

	l.cancel()
	if rst {
		if tc, ok := l.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	_ = l.client.Close()
	if up != nil {
		_ = up.Close()
	}
}
