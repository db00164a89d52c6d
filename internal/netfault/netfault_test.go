package netfault

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ioTimeout bounds every read or write a test expects to succeed.
const ioTimeout = 5 * time.Second

// echoServer is a TCP echo server on 127.0.0.1:0 that a test starts and
// stops.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startEcho starts an echo server; it is stopped when the test ends.
func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("echo listen: %v", err)
	}
	s := &echoServer{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					_ = c.Close()
				}()
				if _, err := io.Copy(c, c); err == nil {
					closeWrite(c)
				}
			})
		}
	})
	t.Cleanup(s.stop)
	return s
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

func (s *echoServer) stop() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// newProxy starts a Proxy to target; it is closed when the test ends.
func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// dial connects to addr; the connection is closed when the test ends.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg on c and reads it back from the echo server.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// waitFor waits until cond holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// expectClosed asserts that the next read on c fails promptly with EOF or
// a connection reset, not a timeout.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 64))
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("read = %d, %v; want 0, EOF or connection reset", n, err)
	}
}

// sendAndEcho writes data on c (then half-closes it) while reading the
// echo until EOF, and returns what came back.
func sendAndEcho(t *testing.T, c *net.TCPConn, data []byte, timeout time.Duration) []byte {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(c)
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if rerr != nil {
		t.Fatalf("read: %v", rerr)
	}
	return got
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForwardUnchanged(t *testing.T) {
	const size = 1 << 20
	tests := []struct {
		name  string
		setup func(p *Proxy)
	}{
		{"plain", func(*Proxy) {}},
		{"latency", func(p *Proxy) { p.SetLatency(5 * time.Millisecond) }},
		{"bandwidth", func(p *Proxy) { p.SetBandwidth(16 << 20) }},
		{"stall toggled", func(p *Proxy) { p.SetStall(true); p.SetStall(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			p := newProxy(t, echo.addr())
			tt.setup(p)
			data := randomBytes(t, size)
			got := sendAndEcho(t, dial(t, p.Addr()), data, 10*time.Second)
			if !bytes.Equal(got, data) {
				t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(data))
			}
			waitFor(t, ioTimeout, "byte counts", func() bool {
				s := p.Stats()
				return s.BytesUp == size && s.BytesDown == size
			})
			waitFor(t, ioTimeout, "connection to close", func() bool { return p.Stats().Open == 0 })
			if s := p.Stats(); s.Accepted != 1 || s.Refused != 0 || s.DialErrors != 0 {
				t.Fatalf("Stats = %+v, want 1 accepted, none refused", s)
			}
		})
	}
}

func TestSetDown(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())

	c1 := dial(t, p.Addr())
	roundTrip(t, c1, "before")
	if got := p.Stats().Open; got != 1 {
		t.Fatalf("Open = %d, want 1", got)
	}

	p.SetDown(true)
	expectClosed(t, c1)
	waitFor(t, ioTimeout, "Open == 0", func() bool { return p.Stats().Open == 0 })

	c2 := dial(t, p.Addr()) // the listener still accepts...
	expectClosed(t, c2)     // ...but closes at once.
	if s := p.Stats(); s.Refused != 1 || s.Accepted != 2 {
		t.Fatalf("Stats = %+v, want 2 accepted, 1 refused", s)
	}

	p.SetDown(false)
	c3 := dial(t, p.Addr())
	roundTrip(t, c3, "after")
}

func TestLatency(t *testing.T) {
	for _, d := range []time.Duration{20 * time.Millisecond, 50 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			echo := startEcho(t)
			p := newProxy(t, echo.addr())
			c := dial(t, p.Addr())
			roundTrip(t, c, "warm-up")

			p.SetLatency(d)
			start := time.Now()
			roundTrip(t, c, "ping")
			if rtt := time.Since(start); rtt < 2*d {
				t.Fatalf("round trip %v, want at least %v", rtt, 2*d)
			}
		})
	}
}

// TestLatencyKeepsThroughput checks the delay line: messages sent 5 ms
// apart over a link with 100 ms of latency each way arrive in order, and
// the whole takes about one round trip plus the sending time, not one round
// trip per message. The upper bound is loose (a per-chunk sleep would take
// at least 4 s).
func TestLatencyKeepsThroughput(t *testing.T) {
	const (
		latency = 100 * time.Millisecond
		msgs    = 20
	)
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	p.SetLatency(latency)
	c := dial(t, p.Addr())
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}

	var want bytes.Buffer
	for i := range msgs {
		fmt.Fprintf(&want, "message %02d;", i)
	}
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := range msgs {
			if _, err := fmt.Fprintf(c, "message %02d;", i); err != nil {
				werr <- err
				return
			}
			<-tick.C
		}
		werr <- nil
	}()
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	elapsed := time.Since(start)
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %q, want %q", got, want.Bytes())
	}
	if elapsed < 2*latency {
		t.Fatalf("took %v, want at least %v", elapsed, 2*latency)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("took %v: latency is cutting throughput", elapsed)
	}
}

func TestBandwidth(t *testing.T) {
	const rate = 40_000 // bytes per second, per direction
	tests := []struct {
		name     string
		conns    int
		perConn  int
		minTotal int // bytes that must pass the cap
	}{
		{"one connection", 1, 40_000, 40_000},
		{"shared by two connections", 2, 20_000, 40_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			p := newProxy(t, echo.addr())
			p.SetBandwidth(rate)
			conns := make([]*net.TCPConn, tt.conns)
			for i := range conns {
				conns[i] = dial(t, p.Addr())
			}

			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, tt.conns)
			for _, c := range conns {
				wg.Go(func() {
					data := make([]byte, tt.perConn)
					for i := range data {
						data[i] = byte(i)
					}
					if err := echoErr(c, data); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// The first burst passes at once, the rest at the cap; 10 ms of
			// slack absorbs the limiter's float rounding.
			minElapsed := time.Duration(float64(tt.minTotal-burstFor(rate))/rate*float64(time.Second)) - 10*time.Millisecond
			if elapsed < minElapsed {
				t.Fatalf("%d bytes took %v, want at least %v", tt.minTotal, elapsed, minElapsed)
			}
			t.Logf("%d bytes each way in %v (lower bound %v)", tt.minTotal, elapsed, minElapsed)
		})
	}
}

// echoErr sends data through c and checks the echo, without calling into
// testing.T (it runs on its own goroutine).
func echoErr(c *net.TCPConn, data []byte) error {
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := make([]byte, len(data))
	_, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("read: %w", rerr)
	}
	if !bytes.Equal(got, data) {
		return errors.New("echo differs")
	}
	return nil
}

func TestBandwidthRemoved(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	p.SetBandwidth(1000)
	p.SetBandwidth(0)
	// 256 KB at 1000 B/s would take minutes; unlimited it passes within
	// the read deadline.
	data := randomBytes(t, 256<<10)
	if got := sendAndEcho(t, dial(t, p.Addr()), data, ioTimeout); !bytes.Equal(got, data) {
		t.Fatalf("echo differs")
	}
}

func TestStall(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "flowing")

	p.SetStall(true)
	before := p.Stats()
	msg := randomBytes(t, 100_000)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		werr <- err
	}()
	if err := c.SetReadDeadline(time.Now().Add(150 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 64))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read while stalled = %d, %v; want 0 and a timeout", n, err)
	}
	if s := p.Stats(); s.BytesUp != before.BytesUp || s.BytesDown != before.BytesDown || s.Open != 1 {
		t.Fatalf("Stats while stalled = %+v, before %+v: want no bytes forwarded, link open", s, before)
	}

	p.SetStall(false)
	if err := c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read after unstall: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("bytes after unstall differ")
	}
}

func TestResetAll(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	c1 := dial(t, p.Addr())
	roundTrip(t, c1, "before")

	p.ResetAll()
	if err := c1.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	_, err := c1.Read(make([]byte, 64))
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("read after ResetAll: %v, want connection reset or EOF", err)
	}
	waitFor(t, ioTimeout, "Open == 0", func() bool { return p.Stats().Open == 0 })

	c2 := dial(t, p.Addr())
	roundTrip(t, c2, "after")
	if s := p.Stats(); s.Accepted != 2 || s.Open != 1 {
		t.Fatalf("Stats = %+v, want 2 accepted, 1 open", s)
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	_ = ln.Close() // nothing listens on target now

	p := newProxy(t, target)
	expectClosed(t, dial(t, p.Addr()))
	waitFor(t, ioTimeout, "a dial error", func() bool { return p.Stats().DialErrors == 1 })
	err = p.LastError()
	if err == nil || !strings.HasPrefix(err.Error(), "netfault: dial "+target+": ") {
		t.Fatalf("LastError = %v, want netfault: dial %s: ...", err, target)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("LastError = %v, want it to wrap ECONNREFUSED", err)
	}
}

func TestNewBadTarget(t *testing.T) {
	p, err := New("no-port")
	if err == nil {
		_ = p.Close()
		t.Fatal("New(no-port) succeeded")
	}
	if !strings.HasPrefix(err.Error(), "netfault: target ") {
		t.Fatalf("err = %v", err)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	echo := startEcho(t)
	baseline := runtime.NumGoroutine()

	p, err := New(echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	p.SetLatency(time.Millisecond)
	p.SetBandwidth(1 << 20)
	var conns []*net.TCPConn
	for i := range 3 {
		c := dial(t, p.Addr())
		roundTrip(t, c, fmt.Sprintf("conn %d", i))
		conns = append(conns, c)
	}
	// Leave one connection with data held by a stall.
	p.SetStall(true)
	if _, err := conns[0].Write([]byte("held")); err != nil {
		t.Fatal(err)
	}

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, c := range conns {
		expectClosed(t, c)
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), ioTimeout); err == nil {
		_ = c.Close()
		t.Fatal("dial after Close succeeded")
	}
	if got := p.Stats().Open; got != 0 {
		t.Fatalf("Open after Close = %d", got)
	}
	// The echo server's handlers end once the proxy's upstream connections
	// are closed; the proxy's own goroutines are gone when Close returns.
	waitFor(t, ioTimeout, fmt.Sprintf("goroutines back to %d", baseline), func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

// TestConcurrentUse changes every setting from several goroutines while
// traffic flows, for the race detector, and checks that no byte is lost.
func TestConcurrentUse(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())

	done := make(chan struct{})
	var knobs sync.WaitGroup
	knobs.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				p.SetStall(false)
				return
			default:
			}
			p.SetLatency(time.Duration(i%3) * time.Millisecond)
			p.SetBandwidth([]int{0, 8 << 20}[i%2])
			p.SetStall(i%2 == 0)
			_ = p.Stats()
			_ = p.LastError()
			runtime.Gosched()
		}
	})

	var clients sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		c := dial(t, p.Addr())
		clients.Go(func() {
			for j := range 20 {
				msg := []byte(fmt.Sprintf("client %d message %d %s", i, j, strings.Repeat("x", 1000*j)))
				if err := echoErr(c, msg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	clients.Wait()
	close(done)
	knobs.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
