package bench

import (
	"context"
	"fmt"
	"net"
	"text/tabwriter"
	"time"
)

// slowSubscriber measures what one subscriber that never reads costs the
// others: the broker bench's publishers and subscriber through a 'sedna
// edge' process's broker, without and then with a client subscribed to
// everything that never reads its socket, in one run (and mosquitto the
// same way, when it is installed).
func (b *bencher) slowSubscriber(ctx context.Context) error {
	fmt.Fprintf(b.out, "\n## slow: the others' throughput beside one subscriber that never reads\n\n")
	type row struct {
		system     string
		publishers int
		without    benchResult
		with       benchResult
	}
	var rows []row
	run := func(system, addr string, pubs int, e *edgeProc) (row, error) {
		r := row{system: system, publishers: pubs}
		var err error
		if r.without, err = b.measure(ctx, "tcp://"+addr, "tcp://"+addr, "bench/direct", "bench/direct", pubs, "", "", e); err != nil {
			return r, err
		}
		stalled, err := stallOn(addr)
		if err != nil {
			return r, err
		}
		defer stalled.Close()
		if r.with, err = b.measure(ctx, "tcp://"+addr, "tcp://"+addr, "bench/direct", "bench/direct", pubs, "", "", e); err != nil {
			return r, err
		}
		return r, nil
	}
	for _, p := range b.o.Publishers {
		e, err := b.startEdge(ctx, "process", "tcp://127.0.0.1:1") // no cloud: the bridge only retries
		if err != nil {
			return err
		}
		r, err := run("sedna edge broker", e.addr, p, e)
		e.stop()
		if err != nil {
			return fmt.Errorf("sedna broker: %w", err)
		}
		rows = append(rows, r)
		if b.mosq != "" {
			addr, stop, err := b.startMosquitto("")
			if err != nil {
				return err
			}
			r, err := run("mosquitto", addr, p, nil)
			stop()
			if err != nil {
				return fmt.Errorf("mosquitto: %w", err)
			}
			rows = append(rows, r)
		}
	}
	tw := tabwriter.NewWriter(b.out, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| system\t publishers\t msg/s without\t msg/s with a stalled subscriber\t with / without\t p99 without / with\t delivered with\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "| %s\t %d\t %.0f\t %.0f\t %.2f\t %s / %s\t %d/%d\t\n", r.system, r.publishers, r.without.rate(), r.with.rate(),
			r.with.rate()/r.without.rate(), r.without.p99.Round(10*time.Microsecond), r.with.p99.Round(10*time.Microsecond),
			r.with.received, b.o.Messages)
	}
	return tw.Flush()
}

// stallOn connects to the broker at addr, subscribes to everything at QoS
// 1 and never reads again.
func stallOn(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	connect := append(append(str("MQTT"), 4, 0x02, 0, 60), str("bench-stalled")...)
	sub := append(append([]byte{0, 1}, str("#")...), 1)
	msg := append(append([]byte{0x10, byte(len(connect))}, connect...), append([]byte{0x82, byte(len(sub))}, sub...)...)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return nil, err
	}
	// Read the CONNACK and SUBACK (9 bytes), then never again.
	buf := make([]byte, 9)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := readFull(c, buf); err != nil || buf[0] != 0x20 || buf[4] != 0x90 {
		c.Close()
		return nil, fmt.Errorf("stalled subscriber: %x (%d bytes): %v", buf, n, err)
	}
	return c, nil
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
