package incremental

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
)

// A work order split into parts comes together whatever the order of its
// parts and with a part sent twice; parts that disagree on the count
// start the attempt again; malformed part numbers are refused; at most
// maxAssembling attempts are held (the oldest dropped).
func TestWorkPartsComeTogether(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), workPartBytes/4) // 2.5 parts' worth
	parts, err := split("1-train-1", workResult{Attempt: "1-train-1", Model: big})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 3 {
		t.Fatalf("%d parts for %d bytes", len(parts), len(big))
	}
	a := newAssembler()
	var whole []byte
	for _, i := range []int{2, 0, 2, 1} {
		if whole != nil {
			t.Fatalf("whole before every part came")
		}
		if whole, err = a.add(parts[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{3, 4, 5, 6} {
		if i < len(parts) {
			if whole != nil {
				t.Fatalf("whole before part %d", i)
			}
			whole, _ = a.add(parts[i])
		}
	}
	if whole == nil {
		t.Fatal("never whole")
	}
	var once []byte
	for _, p := range parts {
		once = append(once, p.Data...)
	}
	if !bytes.Equal(whole, once) {
		t.Fatal("the parts came together wrong")
	}
	for _, bad := range []workPart{{Attempt: "x", Part: 0, Parts: 0}, {Attempt: "x", Part: 2, Parts: 2}, {Attempt: "x", Part: -1, Parts: 2}} {
		if _, err := a.add(bad); err == nil {
			t.Errorf("part %d of %d taken", bad.Part, bad.Parts)
		}
	}
	for i := range maxAssembling + 2 {
		if _, err := a.add(workPart{Attempt: string(rune('a' + i)), Part: 0, Parts: 2, Data: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.parts) != maxAssembling || len(a.order) != maxAssembling {
		t.Fatalf("%d attempts held, want %d", len(a.parts), maxAssembling)
	}
	if _, held := a.parts["a"]; held {
		t.Fatal("the oldest attempt still held")
	}
}

// sendBus is a Bus that records what is sent.
type sendBus struct {
	paradigm.Bus
	mu   sync.Mutex
	sent []paradigm.Outbound
	at   []time.Time
	kick chan struct{} // something was sent
}

func (b *sendBus) Send(m paradigm.Outbound) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent, b.at = append(b.sent, m), append(b.at, time.Now())
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return nil
}

// A work order for a node that does not answer is sent again each period,
// every copy to the stage's topic on that node, expiring three periods
// after it was sent (a node offline for long finds a few copies, not one
// per period); the attempt ends when its context does.
func TestAWorkOrderIsSentAgainAndExpires(t *testing.T) {
	old := workResend
	workResend = 100 * time.Millisecond
	defer func() { workResend = old }()
	bus := &sendBus{kick: make(chan struct{}, 1)}
	c := &Cloud{env: paradigm.Env{Bus: bus, Log: slog.New(slog.DiscardHandler)}}
	j := &job{ref: topics.JobRef{Kind: "IncrementalLearningJob", Namespace: "default", Name: "il"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.delegate(ctx, j, "edge1", workOrder{Attempt: "1-train-1", Stage: Train, Base: bytes.Repeat([]byte{1}, workPartBytes+1)})
		done <- err
	}()
	for {
		bus.mu.Lock()
		n := len(bus.sent)
		bus.mu.Unlock()
		if n >= 6 { // three copies of two parts
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the attempt ended: %v", err)
		case <-bus.kick:
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the attempt ended with %v, want its context's end", err)
	}
	bus.mu.Lock()
	defer bus.mu.Unlock()
	for i, m := range bus.sent {
		if m.Node != "edge1" || m.Topic != topics.ToNodeJob("edge1", j.ref, "work/train") {
			t.Fatalf("copy part %d to %s %s", i, m.Node, m.Topic)
		}
		// Sent before it expires, three periods (less the time the copy
		// took to encode) before; the two parts of a copy expire together,
		// a copy a period after the one before.
		if d := m.Expires.Sub(bus.at[i]); d <= 0 || d > 3*workResend {
			t.Fatalf("copy part %d expires %v after it was sent, want at most %v", i, d, 3*workResend)
		}
		switch {
		case i%2 == 1 && !m.Expires.Equal(bus.sent[i-1].Expires):
			t.Fatalf("the parts of copy %d expire at different times", i/2)
		case i%2 == 0 && i > 0 && m.Expires.Sub(bus.sent[i-1].Expires) < workResend/2:
			t.Fatalf("copy %d expires %v after the one before", i/2, m.Expires.Sub(bus.sent[i-1].Expires))
		}
	}
}
