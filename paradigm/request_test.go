package paradigm_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/topics"
)

// A request is answered by the server of its topic with the handler's
// body; a handler's error comes back as a RemoteError; the server stops
// answering once stopped, and the requester then gets its deadline's
// error.
func TestRequestReply(t *testing.T) {
	bus := paradigmtest.NewMemBus()
	srv, err := paradigm.Serve(bus, "kb", "sedna/v1/bus/kb/query/+", 2, nil, func(_ context.Context, topic string, body []byte) ([]byte, error) {
		if string(body) == "fail" {
			return nil, errors.New("no such task")
		}
		return []byte(topic[strings.LastIndexByte(topic, '/')+1:] + ":" + string(body)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := paradigm.Request(ctx, bus, "edge-1", "sedna/v1/bus/kb/query/tasks", []byte("list"))
	if err != nil || string(got) != "tasks:list" {
		t.Fatalf("reply %q, %v", got, err)
	}
	_, err = paradigm.Request(ctx, bus, "edge-1", "sedna/v1/bus/kb/query/tasks", []byte("fail"))
	var re *paradigm.RemoteError
	if !errors.As(err, &re) || re.Message != "no such task" {
		t.Fatalf("error %v, want the server's", err)
	}
	srv.Stop()
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := paradigm.Request(short, bus, "edge-1", "sedna/v1/bus/kb/query/tasks", []byte("list")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after Stop: %v, want the deadline's error", err)
	}
	// Each request subscribed to its reply topic for its time only.
	if n := bus.Subscriptions(); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
}

// A request without a deadline is refused before anything is sent.
func TestRequestNeedsADeadline(t *testing.T) {
	bus := paradigmtest.NewMemBus()
	if _, err := paradigm.Request(context.Background(), bus, "a", "t", nil); !errors.Is(err, paradigm.ErrNoDeadline) {
		t.Fatalf("%v, want ErrNoDeadline", err)
	}
	if n := len(bus.Published("#")); n != 0 {
		t.Fatalf("%d messages published", n)
	}
}

// A server ignores what is not a request (garbage, a reply, a retained
// request, one past its deadline) and answers the next real one.
func TestServeIgnoresWhatIsNotARequest(t *testing.T) {
	bus := paradigmtest.NewMemBus()
	now := time.Unix(1000, 0)
	old, _ := topics.Encode(topics.KindBusRequest, "x", topics.BusRequest{ID: "0", ReplyTo: "r", Body: []byte("old")})
	if err := bus.Publish("q", old, true, 1); err != nil { // retained: an old request, given to the server as such
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv, err := paradigm.Serve(bus, "kb", "q", 1, func() time.Time { return now }, func(_ context.Context, _ string, b []byte) ([]byte, error) {
		calls.Add(1)
		return b, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	reply, _ := topics.Encode(topics.KindBusReply, "x", topics.BusReply{ID: "1"})
	late, _ := topics.Encode(topics.KindBusRequest, "x", topics.BusRequest{ID: "2", ReplyTo: "r", Deadline: now.Add(-time.Second).UnixNano()})
	noReply, _ := topics.Encode(topics.KindBusRequest, "x", topics.BusRequest{ID: "3"})
	for _, p := range [][]byte{[]byte("garbage"), reply, late, noReply} {
		if err := bus.Publish("q", p, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	ok, _ := topics.Encode(topics.KindBusRequest, "x", topics.BusRequest{ID: "4", ReplyTo: "r", Body: []byte("hi")})
	done := make(chan paradigm.Message, 1)
	stop, _ := bus.Subscribe("r", func(m paradigm.Message) error { done <- m; return nil })
	defer stop()
	if err := bus.Publish("q", ok, false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-done:
		env, err := topics.UnmarshalEnvelope(m.Payload, topics.DefaultLimits)
		var r topics.BusReply
		if err != nil || env.DecodeBody(&r) != nil || r.ID != "4" || string(r.Body) != "hi" {
			t.Fatalf("reply %+v %v", r, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1", n)
	}
}
