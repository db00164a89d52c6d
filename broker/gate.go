package broker

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// The ack gate: mochi reads one client's packets strictly in order and
// sends a PUBACK as soon as the OnPublish hooks return, so a hook that
// waits for its message to be written makes each client wait one store
// commit per message. Instead, every client connection is wrapped in a
// gatedConn: the capture hook holds the PUBACK of a message (by packet ID)
// and returns at once; the connection's writer sends bytes in order but
// stops in front of a held PUBACK until the queue has written the message.
// So a PUBACK still never leaves before its message is on disk, a client's
// whole window of publishes is written in one group commit, and mochi goes
// on reading meanwhile.

// AckGate is the ack gate of one client connection, for a hook that takes
// a message in before its PUBACK (the bridge's capture hook): Hold keeps
// the acknowledgement of a packet ID back, Release lets it go once the
// message is written, Fail drops the connection instead (the message was
// not written: the client sends it again). Every connection of the
// server's listeners has one; the inline client has none.
type AckGate interface {
	Hold(pid uint16)
	Release(pid uint16)
	Fail(pid uint16)
}

// GateOf returns the ack gate of a client's connection (mochi's
// Client.Net.Conn), if it has one.
func GateOf(conn net.Conn) (AckGate, bool) {
	if g, ok := conn.(*gatedConn); ok {
		return g, true
	}
	return nil, false
}

// maxGateBuffer bounds the bytes a connection holds back before its client
// logged in and its session was resent (establish sets the limit after).
const maxGateBuffer = 256 << 20

// gatedListener wraps a mochi listener so every connection it accepts is a
// gatedConn, and bounds how many there are.
type gatedListener struct {
	listeners.Listener
	onAck func(c *gatedConn, pid uint16)
	log   *slog.Logger
	// limits bound connections; packetMax is the largest packet after
	// login; refused counts a connection closed by a limit; dropped is told
	// of an oversized PUBLISH the guard dropped.
	limits    ConnLimits
	packetMax int
	blockAt   int // see gatedConn.blockAt
	refused   func(reason string)
	dropped   func(g *gatedConn, o oversize)
	// disconnect disconnects the listener's clients when it closes (in
	// place of mochi's closer, see Server.disconnectListenerClients).
	disconnect func(listener string)
	// tls, if set, makes it a TLS listener: each connection's first byte
	// must start a TLS handshake (a plaintext MQTT client is told apart
	// and refused in one line), then it is served over TLS.
	tls *tls.Config

	mu       sync.Mutex
	closing  bool
	live     map[net.Conn]struct{}
	unauth   int        // connections that have not logged in
	entering int        // connections between the check and mochi's first read
	settled  *sync.Cond // signalled when entering drops
}

// Close closes the listener and disconnects its clients with the
// server's own closer, not mochi's (closeClients), which can deadlock.
func (l *gatedListener) Close(closeClients listeners.CloseFn) {
	if l.disconnect != nil {
		closeClients = l.disconnect
	}
	l.Listener.Close(closeClients)
}

// Serve wraps each accepted connection, and keeps it in live while mochi
// serves it.
func (l *gatedListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			_ = c.Close()
			return net.ErrClosed
		}
		reason := ""
		switch {
		case len(l.live) >= l.limits.MaxConnections:
			reason = "too-many"
		case l.unauth >= l.limits.MaxUnauthenticated:
			reason = "too-many-unauthenticated"
		}
		if reason != "" {
			l.mu.Unlock()
			_ = c.Close()
			l.countRefused(reason)
			l.log.Warn("connection refused", "reason", reason, "remote", c.RemoteAddr().String())
			return errors.New("broker: connection refused: " + reason)
		}
		if l.live == nil {
			l.live = map[net.Conn]struct{}{}
		}
		l.live[c] = struct{}{}
		l.entering++
		l.unauth++
		l.mu.Unlock()
		var once, loggedIn sync.Once
		entered := func() {
			once.Do(func() {
				l.mu.Lock()
				l.entering--
				l.cond().Broadcast()
				l.mu.Unlock()
			})
		}
		login := func() {
			loggedIn.Do(func() {
				l.mu.Lock()
				l.unauth--
				l.mu.Unlock()
			})
		}
		defer func() {
			entered()
			login()
			l.mu.Lock()
			delete(l.live, c)
			l.mu.Unlock()
		}()
		// The client has ConnectTimeout to send its CONNECT; mochi sets
		// the keepalive deadline once it has read it.
		_ = c.SetReadDeadline(time.Now().Add(time.Duration(l.limits.ConnectTimeout)))
		served := c // c keys live; served is what mochi reads
		if l.tls != nil {
			pc := &peekedConn{Conn: c, r: bufio.NewReaderSize(c, 512)}
			first, err := pc.r.Peek(1)
			if err != nil {
				_ = c.Close()
				return err
			}
			if first[0] != 0x16 { // a TLS record of a handshake starts so
				_ = c.Close()
				l.countRefused("plaintext-on-tls")
				l.log.Warn("a plaintext connection on the TLS listener refused: clients connect to it with TLS (ssl://)",
					"remote", c.RemoteAddr().String(), "first byte", fmt.Sprintf("%#02x", first[0]))
				return errors.New("broker: a plaintext connection on the TLS listener")
			}
			served = tls.Server(pc, l.tls)
		}
		g := newGatedConn(served, l.onAck, l.log)
		defer g.releaseHold()
		g.blockAt = l.blockAt
		g.closing = l.isClosing
		g.firstRead = entered
		g.loggedIn = login
		g.guard = newPacketGuard(served, l.limits.MaxConnectPacket, l.packetMax, g.inject, func(o oversize) {
			if l.dropped != nil {
				l.dropped(g, o)
			}
		})
		err := establish(id, g)
		if r := reasonOf(err); r != "" {
			l.countRefused(r)
			l.log.Warn("connection closed by the packet guard", "error", err, "remote", c.RemoteAddr().String())
		} else if errors.Is(err, os.ErrDeadlineExceeded) && !g.isAuthenticated() {
			l.countRefused("connect-timeout")
			l.log.Warn("connection closed: no CONNECT in time", "timeout", time.Duration(l.limits.ConnectTimeout), "remote", c.RemoteAddr().String())
		}
		return err
	})
}

// isClosing reports whether the listener refuses connections: the broker
// is closing.
func (l *gatedListener) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

func (l *gatedListener) countRefused(reason string) {
	if l.refused != nil {
		l.refused(reason)
	}
}

func (l *gatedListener) cond() *sync.Cond {
	if l.settled == nil {
		l.settled = sync.NewCond(&l.mu)
	}
	return l.settled
}

// refuse makes the listener close connections it accepts from now on, and
// waits until those it let in have reached mochi's first read of them:
// mochi's Close racing its setup of a new client is a data race in mochi
// (and its wait group), so Close comes after.
func (l *gatedListener) refuse() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	for l.entering > 0 {
		l.cond().Wait()
	}
}

// closeLive closes every connection still being served: one that mochi
// accepted while it was closing is not among the clients it disconnects,
// and its Close would wait for it forever.
func (l *gatedListener) closeLive() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.live {
		_ = c.Close()
	}
}

// gatedConn is a net.Conn whose writes go out in order through a writer
// goroutine that holds back PUBACK and PUBREC packets the capture hook
// holds.
type gatedConn struct {
	net.Conn
	onAck func(c *gatedConn, pid uint16)
	log   *slog.Logger
	// firstRead, if set, is called when mochi first reads the connection.
	firstRead func()
	readOnce  sync.Once
	// guard, if set, reads the connection for mochi (see packetGuard);
	// loggedIn is called once the client has logged in.
	guard    *packetGuard
	loggedIn func()
	authed   atomic.Bool
	// client and user name the client once it has logged in, for logs.
	client, user atomic.Value

	mu     sync.Mutex
	space  *sync.Cond // signalled when the buffer shrinks or the conn closes
	buf    []byte
	held   map[uint16]bool
	closed bool
	resets int // bumped by Fail, which empties buf under the writer
	kick   chan struct{}
	done   chan struct{}
	once   sync.Once
	// limit bounds buf once the session is established, beyond allowance:
	// what was queued when it was (the session's messages sent again),
	// which shrinks as it is written. A client over it is slow: slow says
	// why, and the connection is closed.
	limit     int
	allowance int
	slow      string
	// blockAt, if set, makes Write wait while the buffer holds more: how
	// the connection behaved before slow subscribers were disconnected,
	// for the control run of a measurement (SubscriberLimits.Disabled).
	blockAt int
	// hold, if set, is called once, at the next Read or when the
	// connection ends, whichever comes first (holdUntilRead).
	hold atomic.Pointer[func()]
	// closing, if set, reports whether the broker is closing.
	closing func() bool
	// peer caches the verified client certificate.
	peer atomic.Pointer[x509.Certificate]
}

func newGatedConn(c net.Conn, onAck func(*gatedConn, uint16), log *slog.Logger) *gatedConn {
	g := &gatedConn{Conn: c, onAck: onAck, log: log, held: map[uint16]bool{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	g.space = sync.NewCond(&g.mu)
	go g.writer()
	return g
}

// PeerCertificate is the client certificate the connection's TLS
// listener verified, nil when none (access.PeerCertificate).
func (g *gatedConn) PeerCertificate() *x509.Certificate {
	if c := g.peer.Load(); c != nil {
		return c
	}
	tc, ok := g.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	c := st.VerifiedChains[0][0]
	g.peer.Store(c)
	return c
}

// Hold keeps the acknowledgement of pid back until Release or Fail.
func (g *gatedConn) Hold(pid uint16) {
	g.mu.Lock()
	g.held[pid] = true
	g.mu.Unlock()
}

// Release lets the acknowledgement of pid go.
func (g *gatedConn) Release(pid uint16) {
	g.mu.Lock()
	delete(g.held, pid)
	g.mu.Unlock()
	g.poke()
}

// Fail drops the connection without sending the acknowledgement of pid
// (or anything after it): its message was not written, so the client must
// send it again.
func (g *gatedConn) Fail(pid uint16) {
	g.mu.Lock()
	g.buf, g.closed = nil, true
	g.resets++
	g.space.Broadcast()
	g.mu.Unlock()
	_ = g.Close()
}

func (g *gatedConn) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// Read reads from the connection, telling the listener the first time,
// through the packet guard if there is one.
func (g *gatedConn) Read(p []byte) (int, error) {
	if g.firstRead != nil {
		g.readOnce.Do(g.firstRead)
	}
	if g.hold.Load() != nil {
		g.releaseHold()
	}
	if g.guard != nil {
		return g.guard.Read(p)
	}
	return g.Conn.Read(p)
}

// holdUntilRead calls release once, at the next Read or when the
// connection ends: once mochi, which reads a client's connection only
// between packets it handles, is done with the CONNECT (the session's
// takeover, the CONNACK, the session sent again, the hooks of
// OnSessionEstablished) and reads its next packet.
func (g *gatedConn) holdUntilRead(release func()) { g.hold.Store(&release) }

// shuttingDown reports whether the broker is closing.
func (g *gatedConn) shuttingDown() bool { return g.closing != nil && g.closing() }

// peerGone reports whether the client closed the connection, without
// taking anything from it: for a client that sent its CONNECT and gave up
// waiting for the CONNACK. Only plain TCP connections are looked at (a
// WebSocket connection is broken by a read that times out).
func (g *gatedConn) peerGone() bool {
	if g.guard == nil {
		return false
	}
	if _, ok := g.Conn.(*net.TCPConn); !ok {
		return false
	}
	// A read with a deadline already past is not even tried: the deadline
	// leaves time for it, twice in case this goroutine waited for a CPU
	// past the first one. mochi sets the deadline it wants after
	// OnConnect.
	defer func() { _ = g.Conn.SetReadDeadline(time.Time{}) }()
	for _, d := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond} {
		if err := g.Conn.SetReadDeadline(time.Now().Add(d)); err != nil {
			return true
		}
		_, err := g.guard.br.Peek(1)
		var ne net.Error
		if err == nil {
			return false // it sent something: it is there
		}
		if !errors.As(err, &ne) || !ne.Timeout() {
			return true
		}
	}
	return false
}

// releaseHold calls what holdUntilRead was given, if it was not yet.
func (g *gatedConn) releaseHold() {
	if f := g.hold.Swap(nil); f != nil {
		(*f)()
	}
}

// authenticated records that the client logged in: the guard's limits of
// login are lifted, and the listener counts it as logged in.
func (g *gatedConn) authenticated(version byte, client, user string) {
	g.client.Store(client)
	g.user.Store(user)
	g.authed.Store(true)
	if g.guard != nil {
		g.guard.authenticated(version)
	}
	if g.loggedIn != nil {
		g.loggedIn()
	}
}

func (g *gatedConn) isAuthenticated() bool { return g.authed.Load() }

// names returns the client ID and username the client logged in with.
func (g *gatedConn) names() (client, user string) {
	client, _ = g.client.Load().(string)
	user, _ = g.user.Load().(string)
	return client, user
}

// inject queues bytes the broker did not write itself (the guard's answer
// to a publish it dropped), in order with mochi's.
func (g *gatedConn) inject(b []byte) { _, _ = g.Write(b) }

// Write queues p for the writer and returns at once: it never waits for
// the client to read (mochi's writer would then stop, its client queue
// fill, and mochi drop messages). A client whose socket leaves more than
// the limit unread is slow: the connection is closed instead.
func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	for g.blockAt > 0 && len(g.buf) > g.blockAt && !g.closed {
		g.space.Wait()
	}
	if g.closed {
		g.mu.Unlock()
		return 0, net.ErrClosed
	}
	limit := maxGateBuffer
	if g.limit > 0 {
		limit = g.limit + g.allowance
	}
	if len(g.buf)+len(p) > limit {
		why := fmt.Sprintf("%d bytes it has not read, over the limit of %d", len(g.buf)+len(p)-g.allowance, limit-g.allowance)
		g.mu.Unlock()
		g.slowDown(why)
		return 0, errSlow
	}
	g.buf = append(g.buf, p...)
	g.mu.Unlock()
	g.poke()
	return len(p), nil
}

var errSlow = errors.New("broker: the client reads too slowly: disconnected")

// establish bounds the bytes the connection holds back from now on:
// limit beyond what it holds now.
func (g *gatedConn) establish(limit int64) {
	g.mu.Lock()
	g.limit, g.allowance = int(limit), len(g.buf)
	g.mu.Unlock()
}

// isEstablished reports whether establish was called.
func (g *gatedConn) isEstablished() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limit > 0
}

// slowDown closes the connection of a client that reads too slowly,
// without waiting for anything it was sent: mochi then ends its session
// as for any lost connection (a clean session goes, a persistent one
// waits for the client with its messages).
func (g *gatedConn) slowDown(why string) {
	g.mu.Lock()
	if g.slow != "" || g.closed {
		g.mu.Unlock()
		return
	}
	g.slow = why
	g.buf, g.closed = nil, true
	g.resets++
	g.space.Broadcast()
	g.mu.Unlock()
	g.poke()
	_ = g.Conn.Close()
}

// slowReason says why the connection was closed as slow, "" if it was not.
func (g *gatedConn) slowReason() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.slow
}

// Close stops the writer, after it has sent what it may (for up to a
// second), and closes the connection.
func (g *gatedConn) Close() error {
	var err error
	g.once.Do(func() {
		g.mu.Lock()
		g.closed = true
		g.space.Broadcast()
		g.mu.Unlock()
		g.poke()
		select {
		case <-g.done:
		case <-time.After(time.Second):
		}
		err = g.Conn.Close()
	})
	return err
}

// writer sends the buffer in order, up to the first held acknowledgement.
func (g *gatedConn) writer() {
	defer close(g.done)
	var acked []uint16
	for {
		g.mu.Lock()
		n := 0
		acked = acked[:0]
		for n < len(g.buf) {
			size, pid, isAck, ok := nextPacket(g.buf[n:])
			if !ok {
				break // incomplete: more bytes will come
			}
			if isAck && g.held[pid] {
				break
			}
			if isAck {
				acked = append(acked, pid)
			}
			n += size
		}
		chunk := g.buf[:n:n]
		closed, resets := g.closed, g.resets
		g.mu.Unlock()
		if n > 0 {
			if closed {
				_ = g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			}
			if _, err := g.Conn.Write(chunk); err != nil {
				g.mu.Lock()
				g.closed, g.buf = true, nil
				g.space.Broadcast()
				g.mu.Unlock()
				_ = g.Conn.Close()
				return
			}
			g.mu.Lock()
			if g.resets == resets { // else Fail emptied the buffer meanwhile
				g.buf = append(g.buf[:0], g.buf[n:]...)
				g.allowance = max(0, g.allowance-n)
			}
			g.space.Broadcast()
			g.mu.Unlock()
			for _, pid := range acked {
				g.onAck(g, pid)
			}
			continue
		}
		if closed {
			return
		}
		<-g.kick
	}
}

// nextPacket reads the fixed header of the MQTT packet at the start of b:
// its whole size and, for PUBACK and PUBREC, its packet ID. ok is false if
// b does not hold the whole packet yet.
func nextPacket(b []byte) (size int, pid uint16, isAck, ok bool) {
	if len(b) < 2 {
		return 0, 0, false, false
	}
	rem, mul, i := 0, 1, 1
	for ; ; i++ {
		if i >= len(b) || i > 4 {
			return 0, 0, false, false
		}
		rem += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			break
		}
		mul *= 128
	}
	size = i + 1 + rem
	if len(b) < size {
		return 0, 0, false, false
	}
	typ := b[0] >> 4
	if (typ == 4 || typ == 5) && rem >= 2 { // PUBACK, PUBREC
		return size, binary.BigEndian.Uint16(b[i+1:]), true, true
	}
	return size, 0, false, true
}

// peekedConn is a connection read through a buffer that was peeked at.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }
