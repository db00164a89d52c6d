package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawConn is an MQTT client written packet by packet, for what a library
// client will not send: a will aimed where it must not go, a packet of a
// chosen size, a TCP connection dropped without DISCONNECT.
type rawConn struct {
	c       net.Conn
	br      *bufio.Reader
	version byte
	nextID  uint16
}

// hostPort turns "tcp://host:port" into "host:port".
func hostPort(url string) string { return strings.TrimPrefix(url, "tcp://") }

// rawConnect connects to addr and sends a CONNECT; it returns the
// connection and the CONNACK's reason code (0 is accepted).
func rawConnect(t testing.TB, addr string, version byte, cp packets.ConnectParams) (*rawConn, byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostPort(addr), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{c: c, br: bufio.NewReader(c), version: version}
	cp.ProtocolName = []byte("MQTT")
	cp.UsernameFlag = len(cp.Username) > 0
	cp.PasswordFlag = len(cp.Password) > 0
	if cp.Keepalive == 0 {
		cp.Keepalive = 30
	}
	r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version, Connect: cp})
	pk, err := r.read(10 * time.Second)
	if err != nil {
		return r, 0xff // closed without a CONNACK
	}
	if pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("want a CONNACK, got packet type %d", pk.FixedHeader.Type)
	}
	return r, pk.ReasonCode
}

// send encodes and writes pk.
func (r *rawConn) send(t testing.TB, pk packets.Packet) {
	t.Helper()
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = r.version
	}
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	default:
		t.Fatalf("rawConn cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = r.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := r.c.Write(buf.Bytes()); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// publish sends a QoS 1 PUBLISH and returns its packet ID.
func (r *rawConn) publish(t testing.TB, topic string, payload []byte, retain bool) uint16 {
	t.Helper()
	r.nextID++
	r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
		TopicName: topic, Payload: payload, PacketID: r.nextID})
	return r.nextID
}

// subscribe sends a SUBSCRIBE at QoS 1 and returns once it is sent.
func (r *rawConn) subscribe(t testing.TB, filter string) {
	t.Helper()
	r.nextID++
	r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: r.nextID,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
}

// read reads one packet, waiting at most d.
func (r *rawConn) read(d time.Duration) (packets.Packet, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	b, err := r.br.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	var fh packets.FixedHeader
	if err := fh.Decode(b); err != nil {
		return packets.Packet{}, err
	}
	n, _, err := packets.DecodeLength(r.br)
	if err != nil {
		return packets.Packet{}, err
	}
	fh.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: r.version}
	switch fh.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// waitAck reads until the PUBACK of pid, answering the PUBLISH packets it
// reads on the way; it returns the PUBACK's reason code.
func (r *rawConn) waitAck(t testing.TB, pid uint16, d time.Duration) (byte, error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		pk, err := r.read(time.Until(deadline))
		if err != nil {
			return 0, err
		}
		switch {
		case pk.FixedHeader.Type == packets.Puback && pk.PacketID == pid:
			return pk.ReasonCode, nil
		case pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0:
			r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		case pk.FixedHeader.Type == packets.Disconnect:
			return 0, fmt.Errorf("disconnected by the broker: reason 0x%02x", pk.ReasonCode)
		}
	}
}

// closed reports whether the broker closed the connection within d: a read
// that ends with EOF or a reset, not with the deadline.
func (r *rawConn) closed(d time.Duration) bool {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := r.br.ReadByte(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false
			}
			return true
		}
	}
}
