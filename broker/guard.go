package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/topics"
)

// ConnLimits bound what a connection may cost a broker, before and after
// login. mochi reads a packet's length from its first bytes and allocates
// the whole packet (twice) before reading it, authenticated or not, and
// waits for a CONNECT without a deadline; the guard in front of it reads
// each packet's header first and decides.
type ConnLimits struct {
	// MaxConnections bounds the connections open at once; a connection
	// beyond it is closed at once. Default 10,000 on the cloud, 1,024 on
	// an edge node.
	MaxConnections int `json:"maxConnections,omitempty"`
	// MaxUnauthenticated bounds the connections that have not logged in
	// yet; default 256. With MaxConnectPacket it bounds the memory anyone
	// can make the broker spend before login.
	MaxUnauthenticated int `json:"maxUnauthenticated,omitempty"`
	// MaxConnectPacket bounds the first packet (the CONNECT, with its
	// will); default 16 KiB. A connection whose first packet is larger, or
	// not a CONNECT, is closed before anything is allocated for it.
	MaxConnectPacket int `json:"maxConnectPacket,omitempty"`
	// ConnectTimeout is how long a connection may take to send its
	// CONNECT; default 10 s.
	ConnectTimeout Duration `json:"connectTimeout,omitempty"`
}

func (l ConnLimits) withDefaults(role access.Role) ConnLimits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = 1024
		if role == access.RoleCloud {
			l.MaxConnections = 10000
		}
	}
	if l.MaxUnauthenticated <= 0 {
		l.MaxUnauthenticated = 256
	}
	if l.MaxConnectPacket <= 0 {
		l.MaxConnectPacket = 16 << 10
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = Duration(10 * time.Second)
	}
	return l
}

// errGuard is why the guard closed a connection.
type errGuard struct{ reason, detail string }

func (e *errGuard) Error() string { return "broker: connection closed: " + e.detail }

// oversize describes a PUBLISH the guard dropped for its size.
type oversize struct {
	topic string
	size  int
	qos   byte
	pid   uint16
}

// packetGuard sits between a connection and mochi's reader. It passes
// whole packets through, header first, once it has seen from the header
// that the packet is within the limit: the first packet must be a CONNECT
// of at most connectMax bytes; later ones at most packetMax. A later
// PUBLISH over the limit is read and dropped without being kept (only its
// topic), acknowledged through ack, and reported through dropped, so that
// its publisher neither retries it forever nor takes the broker's memory;
// any other packet over the limit, and a bridge's frame (see dropPublish),
// closes the connection.
type packetGuard struct {
	br         *bufio.Reader
	connectMax int
	packetMax  int
	authed     atomic.Bool
	version    atomic.Uint32 // protocol version, once authenticated
	first      bool          // the CONNECT has not been seen yet
	pass       int           // bytes of the current packet still to pass through
	ack        func([]byte)
	dropped    func(oversize)
}

func newPacketGuard(r io.Reader, connectMax, packetMax int, ack func([]byte), dropped func(oversize)) *packetGuard {
	return &packetGuard{br: bufio.NewReaderSize(r, 4096), connectMax: connectMax, packetMax: packetMax, first: true,
		ack: ack, dropped: dropped}
}

// authenticated lifts the pre-login limit; version is the client's
// protocol version (4 for 3.1.1, 5).
func (g *packetGuard) authenticated(version byte) {
	g.version.Store(uint32(version))
	g.authed.Store(true)
}

// Read passes the bytes of packets within the limits.
func (g *packetGuard) Read(p []byte) (int, error) {
	for g.pass == 0 {
		if err := g.next(); err != nil {
			return 0, err
		}
	}
	n := min(len(p), g.pass)
	n, err := g.br.Read(p[:n])
	g.pass -= n
	return n, err
}

// next reads the header of the next packet and decides: pass it (set
// pass), or drop it (and return nil to look at the one after), or close.
func (g *packetGuard) next() error {
	hdrLen, remaining, err := g.peekHeader()
	if err != nil {
		return err
	}
	b0, _ := g.br.Peek(1)
	typ := b0[0] >> 4
	if g.first {
		g.first = false
		if typ != 1 {
			return &errGuard{"not-connect", fmt.Sprintf("the first packet is of type %d, not a CONNECT", typ)}
		}
		if hdrLen+remaining > g.connectMax {
			return &errGuard{"connect-too-large", fmt.Sprintf("a CONNECT of %d bytes, over the limit of %d before login", hdrLen+remaining, g.connectMax)}
		}
		g.pass = hdrLen + remaining
		return nil
	}
	if hdrLen+remaining <= g.packetMax {
		g.pass = hdrLen + remaining
		return nil
	}
	if !g.authed.Load() {
		return &errGuard{"too-large", fmt.Sprintf("a packet of %d bytes before login", hdrLen+remaining)}
	}
	if typ != 3 { // only a PUBLISH is dropped and answered
		return &errGuard{"too-large", fmt.Sprintf("a packet of type %d and %d bytes, over the limit of %d", typ, hdrLen+remaining, g.packetMax)}
	}
	return g.dropPublish(b0[0], hdrLen, remaining)
}

// peekHeader reads the fixed header without consuming it.
func (g *packetGuard) peekHeader() (hdrLen, remaining int, err error) {
	mul := 1
	for i := 1; i <= 4; i++ {
		b, err := g.br.Peek(i + 1)
		if err != nil {
			return 0, 0, err
		}
		c := b[i]
		remaining += int(c&0x7f) * mul
		if c&0x80 == 0 {
			return i + 1, remaining, nil
		}
		mul *= 128
	}
	return 0, 0, &errGuard{"malformed", "a remaining length longer than four bytes"}
}

// dropPublish consumes an oversized PUBLISH, keeping only its topic and
// packet ID, and answers it.
func (g *packetGuard) dropPublish(b0 byte, hdrLen, remaining int) error {
	qos := (b0 >> 1) & 3
	if _, err := g.br.Discard(hdrLen); err != nil {
		return err
	}
	var two [2]byte
	if _, err := io.ReadFull(g.br, two[:]); err != nil {
		return err
	}
	tlen := int(binary.BigEndian.Uint16(two[:]))
	left := remaining - 2 - tlen
	if qos > 0 {
		left -= 2
	}
	if left < 0 || qos == 3 {
		return &errGuard{"malformed", "a PUBLISH shorter than its own header"}
	}
	topic := make([]byte, tlen)
	if _, err := io.ReadFull(g.br, topic); err != nil {
		return err
	}
	var pid uint16
	if qos > 0 {
		if _, err := io.ReadFull(g.br, two[:]); err != nil {
			return err
		}
		pid = binary.BigEndian.Uint16(two[:])
	}
	if _, err := g.br.Discard(left); err != nil {
		return err
	}
	v5 := g.version.Load() == 5
	if topics.PayloadOf(string(topic)) == topics.PayloadFrame {
		// A bridge's frame: its bridge takes a dropped connection as the
		// refusal of what the frame carried, sends the messages one by
		// one, and dead-letters only the one too large for the far side.
		return &errGuard{"too-large", fmt.Sprintf("a frame of %d bytes on %q, over the limit of %d", hdrLen+remaining, topic, g.packetMax)}
	}
	if qos == 2 && !v5 {
		// MQTT 3.1.1 cannot refuse a QoS 2 publish: its PUBREL would wait
		// for a PUBCOMP that nothing sends.
		return &errGuard{"too-large", fmt.Sprintf("a QoS 2 PUBLISH of %d bytes on %q", hdrLen+remaining, topic)}
	}
	if g.dropped != nil {
		g.dropped(oversize{topic: string(topic), size: hdrLen + remaining, qos: qos, pid: pid})
	}
	if qos > 0 && g.ack != nil {
		typ := byte(0x40) // PUBACK
		if qos == 2 {
			typ = 0x50 // PUBREC
		}
		if v5 {
			// Reason code 0x97, quota exceeded: the message is over the
			// broker's limit.
			g.ack([]byte{typ, 3, byte(pid >> 8), byte(pid), 0x97})
		} else {
			g.ack([]byte{typ, 2, byte(pid >> 8), byte(pid)})
		}
	}
	return nil
}

// reasonOf is the metric label of a guard's closing error.
func reasonOf(err error) string {
	var ge *errGuard
	if errors.As(err, &ge) {
		return ge.reason
	}
	return ""
}
