package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// pahoNetErr wraps err as paho's connect token does after a failed dial or
// a connection that broke before the CONNACK.
func pahoNetErr(err error) error {
	return fmt.Errorf("%w : %w", packets.ErrorNetworkError, err)
}

func TestClassifyLinkError(t *testing.T) {
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	noRoute := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}
	netDown := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ENETUNREACH}}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	dns := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "cloud.invalid", IsNotFound: true}}
	dialTimeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	readTimeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	badCA := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	wrongName := &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "cloud.example"}}
	expired := &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}
	alertIn := &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}
	notTLS := tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}
	for _, tc := range []struct {
		name string
		err  error
		want LinkFailure
	}{
		{"bad user name or password", packets.ErrorRefusedBadUsernameOrPassword, LinkBadCredentials},
		{"not authorised", packets.ErrorRefusedNotAuthorised, LinkBadCredentials},
		{"wrapped refusal", fmt.Errorf("connect: %w", packets.ErrorRefusedBadUsernameOrPassword), LinkBadCredentials},
		{"identifier rejected", packets.ErrorRefusedIDRejected, LinkRejected},
		{"server unavailable", packets.ErrorRefusedServerUnavailable, LinkRejected},
		{"protocol version", packets.ErrorRefusedBadProtocolVersion, LinkRejected},
		{"connection refused", pahoNetErr(dialRefused), LinkUnreachable},
		{"no route to host", pahoNetErr(noRoute), LinkUnreachable},
		{"network unreachable", pahoNetErr(netDown), LinkUnreachable},
		{"DNS failure", pahoNetErr(dns), LinkUnreachable},
		{"bare DNS error", &net.DNSError{Err: "server misbehaving", Name: "cloud", IsTemporary: true}, LinkUnreachable},
		{"dial timeout", pahoNetErr(dialTimeout), LinkUnreachable},
		{"CONNACK timeout", pahoNetErr(readTimeout), LinkUnreachable},
		{"attempt timed out", errConnectTimeout, LinkUnreachable},
		{"closed before the CONNACK", pahoNetErr(io.EOF), LinkUnreachable},
		{"reset", pahoNetErr(reset), LinkUnreachable},
		{"network error alone", packets.ErrorNetworkError, LinkUnreachable},
		{"unknown authority", pahoNetErr(badCA), LinkTLS},
		{"bare unknown authority", x509.UnknownAuthorityError{}, LinkTLS},
		{"wrong host name", pahoNetErr(wrongName), LinkTLS},
		{"expired certificate", pahoNetErr(expired), LinkTLS},
		{"alert received", pahoNetErr(alertIn), LinkTLS},
		{"alert", tls.AlertError(40), LinkTLS},
		{"server does not speak TLS", pahoNetErr(notTLS), LinkTLS},
		{"plain tls error", pahoNetErr(errors.New("tls: server selected unsupported protocol version 301")), LinkTLS},
		{"something else", errors.New("unknown protocol"), LinkUnknown},
		{"nil", nil, LinkUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassifyLinkError(tc.err); got != tc.want {
				t.Errorf("ClassifyLinkError(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// Real errors, not built by hand: a dial of a closed port, and a TLS
// handshake with a listener that is not TLS.
func TestClassifyRealErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	_, err = net.Dial("tcp", closed)
	if err == nil {
		t.Skip("a closed port accepted a connection")
	}
	if got := ClassifyLinkError(pahoNetErr(err)); got != LinkUnreachable {
		t.Errorf("dial of a closed port (%v): %v, want unreachable", err, got)
	}

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := plain.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := tls.Dial("tcp", plain.Addr().String(), &tls.Config{MinVersion: tls.VersionTLS12})
	if err == nil {
		_ = c.Close()
		t.Fatal("a TLS handshake with a plain listener succeeded")
	}
	if got := ClassifyLinkError(pahoNetErr(err)); got != LinkTLS {
		t.Errorf("TLS to a plain listener (%v): %v, want TLS failure", err, got)
	}
	_ = plain.Close()
	<-served
}

func TestLinkFailureSaysWhatToCheck(t *testing.T) {
	for f, want := range map[LinkFailure]string{
		LinkBadCredentials: "SEDNA_PASSWORD",
		LinkUnreachable:    "--cloud HOST:PORT",
		LinkTLS:            "CA file",
	} {
		if got := f.Advice(); !strings.Contains(got, want) {
			t.Errorf("%v: advice %q does not name %q", f, got, want)
		}
	}
	e := &LinkError{Failure: LinkBadCredentials, Err: packets.ErrorRefusedBadUsernameOrPassword}
	if !errors.Is(e, packets.ErrorRefusedBadUsernameOrPassword) || !strings.Contains(e.Error(), "refused credentials") {
		t.Errorf("LinkError %q does not wrap or name its cause", e)
	}
}

// Scripted schedules: each line is an event at a time from the start, and
// what the schedule must say then. The random source returns the largest
// value it may (so a step is its ceiling) unless the case says otherwise.
func TestBackoffSchedule(t *testing.T) {
	const (
		ms = time.Millisecond
		s  = time.Second
	)
	type line struct {
		at      time.Duration
		op      string // next, fail, timeout, busy, up, lost
		failure LinkFailure
		took    time.Duration // up: how long the connect took
		period  time.Duration // next: the step; lost: the pause
		timeout time.Duration // next
	}
	cfg := backoffConfig{Min: 100 * ms, Fast: s, FastFor: time.Minute, Max: 10 * s, Timeout: s}
	next := func(at, period, timeout time.Duration) line {
		return line{at: at, op: "next", period: period, timeout: timeout}
	}
	fail := func(at time.Duration, f LinkFailure) line { return line{at: at, op: "fail", failure: f} }
	for _, tc := range []struct {
		name   string
		random func(n int64) int64
		script []line
	}{
		{name: "doubles from Min up to the fast cap", script: []line{
			next(0, 100*ms, s), fail(0, LinkUnreachable),
			next(s, 200*ms, s), fail(s, LinkUnreachable),
			next(2*s, 400*ms, s), fail(2*s, LinkUnreachable),
			next(3*s, 800*ms, s), fail(3*s, LinkUnreachable),
			next(4*s, s, s), fail(4*s, LinkUnreachable),
			next(5*s, s, s), fail(5*s, LinkUnreachable),
			next(50*s, s, s),
		}},
		{name: "past FastFor without a link the cap is Max", script: []line{
			fail(0, LinkUnreachable), fail(0, LinkUnreachable), fail(0, LinkUnreachable),
			fail(0, LinkUnreachable), fail(0, LinkUnreachable), fail(0, LinkUnreachable),
			next(59*s, s, s),
			next(60*s, 6400*ms, 6400*ms),
			fail(60*s, LinkUnreachable),
			next(70*s, 10*s, 10*s),
		}},
		{name: "refused credentials are not retried at the fast cap", script: []line{
			fail(0, LinkBadCredentials), fail(0, LinkBadCredentials), fail(0, LinkBadCredentials),
			fail(0, LinkBadCredentials), fail(0, LinkBadCredentials),
			next(s, 3200*ms, 3200*ms),
			fail(s, LinkBadCredentials), fail(s, LinkBadCredentials),
			next(2*s, 10*s, 10*s),
			fail(3*s, LinkUnreachable), // the cloud went away: back to the fast cap
			next(3*s, s, s),
		}},
		{name: "TLS failures and refusals are not retried fast either", script: []line{
			fail(0, LinkTLS), fail(0, LinkTLS), fail(0, LinkTLS), fail(0, LinkTLS),
			next(0, 1600*ms, 1600*ms),
			fail(0, LinkRejected),
			next(0, 3200*ms, 3200*ms),
		}},
		{name: "a connection that lasted starts again from Min", script: []line{
			fail(0, LinkUnreachable), fail(0, LinkUnreachable), fail(0, LinkUnreachable),
			fail(0, LinkUnreachable), fail(0, LinkUnreachable),
			{at: s, op: "up", took: 2 * ms},
			{at: 12 * s, op: "lost", period: 100 * ms},
			next(12*s+100*ms, 100*ms, s), fail(12*s+100*ms, LinkUnreachable),
			next(13*s, 200*ms, s),
		}},
		{name: "a connection dropped at once counts as a failure", script: []line{
			{at: 0, op: "up", took: 2 * ms},
			{at: s, op: "lost", period: 200 * ms},
			{at: 2 * s, op: "up", took: 2 * ms},
			{at: 3 * s, op: "lost", period: 400 * ms},
			next(4*s, 400*ms, s),
		}},
		{name: "the fast cap holds for FastFor after the link was last up", script: []line{
			fail(0, LinkUnreachable), fail(0, LinkUnreachable), fail(0, LinkUnreachable),
			fail(0, LinkUnreachable), fail(0, LinkUnreachable), fail(0, LinkUnreachable),
			{at: 50 * s, op: "up", took: 2 * ms},
			{at: 55 * s, op: "lost", period: s},
			next(100*s, s, s), fail(100*s, LinkUnreachable),
			next(114*s, s, s), fail(114*s, LinkUnreachable),
			next(115*s, 10*s, 10*s),
		}},
		{name: "timeouts before the first connection double the least timeout", script: []line{
			{op: "timeout"}, next(0, 200*ms, 2*s),
			{op: "timeout"}, next(0, 400*ms, 4*s),
			{op: "timeout"}, {op: "timeout"}, {op: "timeout"},
			next(0, s, 10*s),
			{at: 20 * s, op: "up", took: 5 * s}, // a slow link: 3 × 5 s, but at most Max
			{at: 21 * s, op: "lost", period: s},
			next(21*s, s, 10*s),
			{at: 22 * s, op: "up", took: 400 * ms},
			{at: 40 * s, op: "lost", period: 100 * ms},
			next(40*s, 100*ms, 1200*ms),
			{op: "timeout"}, // once the link was up, timeouts leave it
			next(40*s, 200*ms, 1200*ms),
			{at: 41 * s, op: "up", took: 2 * ms},
			{at: 60 * s, op: "lost", period: 100 * ms},
			next(60*s, 100*ms, s),
		}},
		{name: "a busy broker gets twice as long each time, past Max, up to BusyMax, until a connection", script: []line{
			{at: 0, op: "up", took: 2 * ms},
			{at: 20 * s, op: "lost", period: 100 * ms},
			next(20*s, 100*ms, s),
			{op: "busy"}, next(21*s, 200*ms, 2*s),
			{op: "busy"}, {op: "busy"}, {op: "busy"}, next(40*s, s, 16*s),
			{op: "busy"}, {op: "busy"}, {op: "busy"}, next(100*s, 10*s, 2*time.Minute),
			{op: "busy"}, next(200*s, 10*s, 2*time.Minute),
			{op: "timeout"}, next(300*s, 10*s, 2*time.Minute), // a plain timeout does not shorten it
			{at: 400 * s, op: "up", took: 40 * s}, // 3 × 40 s, at most Max
			{at: 500 * s, op: "lost", period: 100 * ms},
			next(500*s, 100*ms, 10*s),
		}},
		{name: "full jitter: a step may be nothing, the attempt still gets its time", random: func(int64) int64 { return 0 }, script: []line{
			next(0, 0, s), fail(0, LinkUnreachable),
			next(0, 0, s),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			random := tc.random
			if random == nil {
				random = func(n int64) int64 { return n - 1 }
			}
			c := cfg
			c.Rand = random
			t0 := time.Unix(1_000_000, 0)
			b := newBackoff(c, t0)
			for i, l := range tc.script {
				now := t0.Add(l.at)
				switch l.op {
				case "next":
					st := b.Next(now)
					if st.Period != l.period || st.Timeout != l.timeout {
						t.Fatalf("line %d (at %v): step %v, timeout %v; want %v, %v", i, l.at, st.Period, st.Timeout, l.period, l.timeout)
					}
				case "fail":
					b.Failed(l.failure, false, false)
				case "timeout":
					b.Failed(LinkUnreachable, true, false)
				case "busy":
					b.Failed(LinkUnreachable, true, true)
				case "up":
					b.Connected(now, l.took)
				case "lost":
					if p := b.Lost(now); p != l.period {
						t.Fatalf("line %d (at %v): pause after the loss %v, want %v", i, l.at, p, l.period)
					}
				default:
					t.Fatalf("line %d: unknown op %q", i, l.op)
				}
			}
		})
	}
}

// The schedule, on a virtual clock, over outages of 1 to 30 s and 50
// seeded random sources: the first attempt after the link returns starts within the
// fast cap (attempts that fail at once: refused, reset) or within the
// least attempt time (attempts swallowed by a dead link, which time out).
// A statement about the schedule's arithmetic, not about a real clock.
func TestBackoffNoticesAReturnWithinItsCap(t *testing.T) {
	cfg := backoffConfig{Min: 100 * time.Millisecond, Fast: time.Second, FastFor: time.Minute, Max: 10 * time.Second, Timeout: time.Second}
	for _, blackHole := range []bool{false, true} {
		for seed := uint64(1); seed <= 50; seed++ {
			r := rand.New(rand.NewPCG(seed, 7))
			c := cfg
			c.Rand = r.Int64N
			t0 := time.Unix(1_000_000, 0)
			b := newBackoff(c, t0)
			b.Connected(t0, 3*time.Millisecond)
			now := t0.Add(time.Duration(r.Int64N(int64(20 * time.Second))))
			for outage := 0; outage < 20; outage++ {
				length := time.Second + time.Duration(r.Int64N(int64(29*time.Second)))
				back := now.Add(length)
				at := now.Add(b.Lost(now))
				for at.Before(back) {
					st := b.Next(at)
					if st.Period > cfg.Fast || st.Timeout < st.Period || st.Timeout < cfg.Timeout {
						t.Fatalf("seed %d: step %+v out of bounds", seed, st)
					}
					if blackHole {
						b.Failed(LinkUnreachable, true, false)
						at = at.Add(st.Timeout)
					} else {
						b.Failed(LinkUnreachable, false, false)
						at = at.Add(st.Period)
					}
				}
				limit := cfg.Fast
				if blackHole {
					limit = max(cfg.Fast, cfg.Timeout)
				}
				if late := at.Sub(back); late > limit {
					t.Fatalf("seed %d, black hole %v: outage %d of %v: first attempt %v after the return, more than %v",
						seed, blackHole, outage, length, late, limit)
				}
				b.Connected(at, 3*time.Millisecond)
				now = at.Add(time.Duration(r.Int64N(int64(20 * time.Second))))
			}
		}
	}
}

// silentListener accepts connections on loopback and reads what they
// send, answering nothing: a broker too busy to answer CONNECT, or a TLS
// server that never completes a handshake.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		var readers sync.WaitGroup
		defer readers.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
			readers.Go(func() { _, _ = io.Copy(io.Discard, c) })
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// A real paho connection attempt that a broker took and did not answer in
// time is told apart as busy (the bridge then gives the next attempt
// longer); one to a closed port, and a TLS handshake that timed out, are
// not.
func TestBusyBrokerIsToldApart(t *testing.T) {
	connect := func(url string) error {
		t.Helper()
		o := paho.NewClientOptions().AddBroker(url).SetClientID("busy-probe").SetConnectTimeout(300 * time.Millisecond).
			SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
			// Nothing is sent over it: the handshake never ends.
			SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true})
		tok := paho.NewClient(o).Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("%s: paho did not end the attempt", url)
		}
		if tok.Error() == nil {
			t.Fatalf("%s: connected", url)
		}
		return tok.Error()
	}
	silent := silentListener(t)
	if err := connect("tcp://" + silent); !BrokerBusy(err) || !isTimeout(err) {
		t.Errorf("no CONNACK (%v): busy %v, timeout %v; want both", err, BrokerBusy(err), isTimeout(err))
	}
	if err := connect("ssl://" + silentListener(t)); BrokerBusy(err) {
		t.Errorf("a TLS handshake that timed out (%v) taken for a busy broker", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	if err := connect("tcp://" + closed); BrokerBusy(err) {
		t.Errorf("a closed port (%v) taken for a busy broker", err)
	}
}
