package broker

import (
	"encoding/binary"
	"log/slog"
	"net"
	"sync"
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

// maxGateBuffer bounds the bytes a connection holds back; a writer that
// would exceed it waits (mochi's client queue and the slow-subscriber hook
// bound it long before, for QoS 1).
const maxGateBuffer = 4 << 20

// gatedListener wraps a mochi listener so every connection it accepts is a
// gatedConn.
type gatedListener struct {
	listeners.Listener
	onAck func(c *gatedConn, pid uint16)
	log   *slog.Logger

	mu       sync.Mutex
	closing  bool
	live     map[net.Conn]struct{}
	entering int        // connections between the check and mochi's first read
	settled  *sync.Cond // signalled when entering drops
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
		if l.live == nil {
			l.live = map[net.Conn]struct{}{}
		}
		l.live[c] = struct{}{}
		l.entering++
		l.mu.Unlock()
		var once sync.Once
		entered := func() {
			once.Do(func() {
				l.mu.Lock()
				l.entering--
				l.cond().Broadcast()
				l.mu.Unlock()
			})
		}
		defer func() {
			entered()
			l.mu.Lock()
			delete(l.live, c)
			l.mu.Unlock()
		}()
		g := newGatedConn(c, l.onAck, l.log)
		g.firstRead = entered
		return establish(id, g)
	})
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

	mu     sync.Mutex
	space  *sync.Cond // signalled when the buffer shrinks or the conn closes
	buf    []byte
	held   map[uint16]bool
	closed bool
	resets int // bumped by Fail, which empties buf under the writer
	kick   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func newGatedConn(c net.Conn, onAck func(*gatedConn, uint16), log *slog.Logger) *gatedConn {
	g := &gatedConn{Conn: c, onAck: onAck, log: log, held: map[uint16]bool{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	g.space = sync.NewCond(&g.mu)
	go g.writer()
	return g
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

// Read reads from the connection, telling the listener the first time.
func (g *gatedConn) Read(p []byte) (int, error) {
	if g.firstRead != nil {
		g.readOnce.Do(g.firstRead)
	}
	return g.Conn.Read(p)
}

// Write queues p for the writer and returns at once.
func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.buf) > maxGateBuffer && !g.closed {
		g.space.Wait()
	}
	if g.closed {
		return 0, net.ErrClosed
	}
	g.buf = append(g.buf, p...)
	g.poke()
	return len(p), nil
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
