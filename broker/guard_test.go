package broker

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// guardRun passes in through a guard with the given limits (authenticated
// as MQTT version v, unless v is 0) and returns what it let through, the
// acks it wrote, what it dropped and the error it ended with.
func guardRun(in []byte, connectMax, packetMax int, v byte) (out []byte, acks [][]byte, dropped []oversize, err error) {
	g := newPacketGuard(bytes.NewReader(in), connectMax, packetMax,
		func(b []byte) { acks = append(acks, append([]byte(nil), b...)) },
		func(o oversize) { dropped = append(dropped, o) })
	if v != 0 {
		g.authenticated(v)
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, g)
	return buf.Bytes(), acks, dropped, err
}

// publishPacket makes a QoS 1 PUBLISH of a payload of n bytes.
func publishPacket(topic string, pid uint16, n int) []byte {
	body := append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...)
	body = append(body, byte(pid>>8), byte(pid))
	body = append(body, make([]byte, n)...)
	return append(append([]byte{0x32}, varint(len(body))...), body...)
}

func varint(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

var connect = []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 0}

func TestPacketGuard(t *testing.T) {
	small := publishPacket("a/b", 7, 10)
	big := publishPacket("a/big", 9, 5000)
	ping := []byte{0xc0, 0x00}
	cases := []struct {
		name    string
		in      []byte
		v       byte
		out     []byte
		acks    [][]byte
		dropped int
		reason  string
	}{
		{"within the limits", cat(connect, small, ping), 4, cat(connect, small, ping), nil, 0, ""},
		{"a first packet that is not a CONNECT", cat(small), 0, nil, nil, 0, "not-connect"},
		{"a CONNECT announcing 8 MiB before login", []byte{0x10, 0xff, 0xff, 0xff, 0x03, 0x00}, 0, nil, nil, 0, "connect-too-large"},
		{"an oversized publish before login", cat(connect, big), 0, connect, nil, 0, "too-large"},
		{"an oversized publish (3.1.1): dropped and acknowledged", cat(connect, big, small), 4, cat(connect, small),
			[][]byte{{0x40, 2, 0, 9}}, 1, ""},
		{"an oversized publish (5): reason code 0x97", cat(connect, big, ping), 5, cat(connect, ping),
			[][]byte{{0x40, 3, 0, 9, 0x97}}, 1, ""},
		{"an oversized frame closes: its bridge narrows it down", cat(connect, publishPacket("sedna/v1/node/n/up/events", 3, 5000)), 4, connect, nil, 0, "too-large"},
		{"an oversized subscribe closes", cat(connect, append([]byte{0x82}, append(varint(5000), make([]byte, 5000)...)...)), 4, connect, nil, 0, "too-large"},
		{"a length longer than four bytes", cat(connect, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}), 4, connect, nil, 0, "malformed"},
	}
	for _, c := range cases {
		out, acks, dropped, err := guardRun(c.in, 1024, 1024, c.v)
		if !bytes.Equal(out, c.out) {
			t.Errorf("%s: passed %x, want %x", c.name, out, c.out)
		}
		if len(acks) != len(c.acks) || (len(acks) > 0 && !bytes.Equal(acks[0], c.acks[0])) {
			t.Errorf("%s: acks %x, want %x", c.name, acks, c.acks)
		}
		if len(dropped) != c.dropped {
			t.Errorf("%s: dropped %d, want %d", c.name, len(dropped), c.dropped)
		}
		if c.dropped > 0 && (dropped[0].topic != "a/big" || dropped[0].size != len(big)) {
			t.Errorf("%s: dropped %+v", c.name, dropped[0])
		}
		if got := reasonOf(err); got != c.reason {
			t.Errorf("%s: closed for %q (%v), want %q", c.name, got, err, c.reason)
		}
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// FuzzPacketGuard: whatever bytes come, the guard never panics, and what it
// lets through is whole packets within the limit, after a CONNECT.
func FuzzPacketGuard(f *testing.F) {
	f.Add(cat(connect, publishPacket("a", 1, 10)), byte(4))
	f.Add(cat(connect, publishPacket("a", 1, 3000)), byte(5))
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0x03, 0x00}, byte(0))
	f.Fuzz(func(t *testing.T, in []byte, v byte) {
		out, _, _, err := guardRun(in, 512, 2048, v%6)
		if err != nil && reasonOf(err) == "" && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("an error that is not the guard's: %v", err)
		}
		first := true
		for len(out) > 0 {
			size, _, _, ok := nextPacket(out)
			if !ok {
				return // the head of a packet the input ended in
			}
			if first && out[0]>>4 != 1 {
				t.Fatalf("the first packet passed is of type %d", out[0]>>4)
			}
			if first && size > 512 || size > 2048 {
				t.Fatalf("a packet of %d bytes passed", size)
			}
			first = false
			out = out[size:]
		}
	})
}
