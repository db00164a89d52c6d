package broker

import (
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"
)

// Fail (a publish whose write to the store failed) empties the connection's
// buffer while the writer may be sending an earlier part of it. The writer
// used to trim the emptied buffer by what it had sent and panicked (slice
// bounds out of range), killing the edge agent: found by the simulator's
// full-disk scenario.
func TestFailWhileTheWriterSends(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	sending := make(chan struct{}, 1)
	g := newGatedConn(sendingConn{a, sending}, func(*gatedConn, uint16) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.Hold(7)
	// A PINGRESP (2 bytes), then the held PUBACK of packet 7.
	if _, err := g.Write([]byte{0xd0, 0x00, 0x40, 0x02, 0x00, 0x07}); err != nil {
		t.Fatal(err)
	}
	<-sending // the writer is blocked sending the PINGRESP into the pipe
	failed := make(chan struct{})
	go func() {
		g.Fail(7)
		close(failed)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		emptied := g.closed && len(g.buf) == 0
		g.mu.Unlock()
		if emptied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Fail did not empty the buffer")
		}
		runtime.Gosched()
	}
	buf := make([]byte, 16)
	n, err := b.Read(buf) // lets the writer's send complete after Fail
	if err != nil || n != 2 || buf[0] != 0xd0 {
		t.Fatalf("read %x, %v: want the PINGRESP only", buf[:n], err)
	}
	<-failed
	if n, err := b.Read(buf); err == nil {
		t.Fatalf("after Fail the client got %x: the held PUBACK must never be sent", buf[:n])
	}
}

// sendingConn tells when a write starts.
type sendingConn struct {
	net.Conn
	sending chan struct{}
}

func (c sendingConn) Write(p []byte) (int, error) {
	select {
	case c.sending <- struct{}{}:
	default:
	}
	return c.Conn.Write(p)
}
