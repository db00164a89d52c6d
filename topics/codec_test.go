package topics

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleEnvelope() *Envelope {
	return &Envelope{
		Version:       EnvelopeVersion,
		ID:            ID{Node: "edge-1", Stream: StreamEvents, Epoch: 0xdeadbeef, Seq: 42},
		Time:          time.Unix(1700000000, 123),
		Source:        "edge/bridge",
		Kind:          KindTest,
		ReplyTo:       "sedna/v1/node/edge-1/reply",
		CorrelationID: "c-1",
		Expires:       time.Unix(1700000060, 0),
		Body:          []byte{0x81, 0xa1, 0x61, 0x01},
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := sampleEnvelope()
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnmarshalEnvelope(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Time.Equal(in.Time) || !out.Expires.Equal(in.Expires) {
		t.Fatalf("times differ: %v %v", out.Time, out.Expires)
	}
	out.Time, out.Expires, in.Time, in.Expires = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
	// Minimal envelope: zero times stay zero, no body stays nil.
	min := &Envelope{Kind: KindNodeStatus}
	b, _ = min.Marshal()
	out, err = UnmarshalEnvelope(b, Limits{})
	if err != nil || out.Version != EnvelopeVersion || !out.Time.IsZero() || out.Body != nil {
		t.Fatalf("minimal: %+v %v", out, err)
	}
}

func TestEnvelopeTypedErrors(t *testing.T) {
	good, _ := sampleEnvelope().Marshal()
	v2 := *sampleEnvelope()
	v2.Version = Version{Major: 2}
	b2, _ := v2.Marshal()
	big := *sampleEnvelope()
	big.Body = bytes.Repeat([]byte{1}, 2000)
	bbig, _ := big.Marshal()
	noKind, _ := msgpack.Marshal(map[string]any{"v": []int{1, 0}})
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-3], ErrMalformed},
		{"trailing", append(append([]byte{}, good...), 0xc0), ErrMalformed},
		{"not a map", []byte{0x93, 1, 2, 3}, ErrMalformed},
		{"json", []byte(`{"v":[1,0]}`), ErrMalformed},
		{"no kind", noKind, ErrMalformed},
		{"major 2", b2, ErrUnknownVersion},
		{"body over limit", bbig, ErrTooLarge},
		{"forged length", []byte{0x81, 0xa1, 'b', 0xc6, 0x7f, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"deep nesting", append([]byte{0x82, 0xa1, 'v', 0x92, 1, 0, 0xa1, 'z'}, bytes.Repeat([]byte{0x91}, 100)...), ErrMalformed},
	}
	for _, c := range cases {
		_, err := UnmarshalEnvelope(c.in, Limits{MaxBody: 1000})
		var de *DecodeError
		if !errors.Is(err, c.want) || !errors.As(err, &de) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestUnknownFieldsAndMinorVersionsAreAccepted(t *testing.T) {
	b, _ := msgpack.Marshal(map[string]any{"v": []int{1, 7, 9}, "k": "x", "future": map[string]any{"a": []int{1, 2}}})
	e, err := UnmarshalEnvelope(b, Limits{})
	if err != nil || e.Version != (Version{1, 7}) || e.Kind != "x" {
		t.Fatalf("got %+v, %v", e, err)
	}
}

func sampleFrame() *Frame {
	return &Frame{
		Version: FrameVersion, Node: "edge-1", Stream: StreamTelemetry, Epoch: 7, Floor: 3,
		Skipped: []SeqRange{{4, 9}, {12, 12}},
		Messages: []FrameMessage{
			{Seq: 1, Topic: "sedna/v1/node/edge-1/kubeedge/$hw/events/upload/a", Payload: []byte(`{"x":1}`), QoS: 1, Time: time.Unix(5, 0)},
			{Seq: 2, Topic: "sedna/v1/node/edge-1/app/s", Payload: []byte{}, Retain: true, QoS: 2, Time: time.Unix(6, 0), Expires: time.Unix(9, 0)},
			{Seq: 0, Topic: "t", Payload: nil},
		},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	in := sampleFrame()
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnmarshalFrame(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Floor != 3 || out.Epoch != 7 || out.Node != "edge-1" || out.Stream != StreamTelemetry ||
		len(out.Skipped) != 2 || out.Skipped[0] != (SeqRange{4, 9}) || out.Skipped[1] != (SeqRange{12, 12}) {
		t.Fatalf("header: %+v", out)
	}
	if len(out.Messages) != 3 {
		t.Fatalf("got %d messages", len(out.Messages))
	}
	for i := range in.Messages {
		a, b := in.Messages[i], out.Messages[i]
		if a.Seq != b.Seq || a.Topic != b.Topic || !bytes.Equal(a.Payload, b.Payload) || a.Retain != b.Retain ||
			a.QoS != b.QoS || !a.Time.Equal(b.Time) || !a.Expires.Equal(b.Expires) {
			t.Errorf("message %d: %+v != %+v", i, a, b)
		}
	}
	if id := out.ID(&out.Messages[1]); id != (ID{Node: "edge-1", Stream: StreamTelemetry, Epoch: 7, Seq: 2}) {
		t.Errorf("ID = %v", id)
	}
}

func TestFrameTypedErrors(t *testing.T) {
	good, _ := sampleFrame().Marshal()
	badNode := *sampleFrame()
	badNode.Node = "a/b"
	bn, _ := badNode.Marshal()
	badTopic := *sampleFrame()
	badTopic.Messages = []FrameMessage{{Seq: 1, Topic: "a/#"}}
	bt, _ := badTopic.Marshal()
	many := *sampleFrame()
	many.Messages = make([]FrameMessage, 20)
	for i := range many.Messages {
		many.Messages[i] = FrameMessage{Seq: uint64(i + 1), Topic: "t"}
	}
	bm, _ := many.Marshal()
	v9 := *sampleFrame()
	v9.Version = Version{Major: 9}
	b9, _ := v9.Marshal()
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"truncated", good[:len(good)/2], ErrMalformed},
		{"bad node", bn, ErrMalformed},
		{"wildcard topic", bt, ErrMalformed},
		{"too many", bm, ErrTooLarge},
		{"payload too big", good, ErrTooLarge},
		{"major 9", b9, ErrUnknownVersion},
	} {
		lim := Limits{MaxMessages: 10}
		if c.name == "payload too big" {
			lim.MaxBody = 3
		}
		_, err := UnmarshalFrame(c.in, lim)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "topics: decode frame") {
			t.Errorf("%s: error %q does not say what it decoded", c.name, err)
		}
	}
}

func TestTensor(t *testing.T) {
	ts := Float32Tensor([]float32{1, -2.5, 3}, 1, 3)
	if err := ts.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := ts.Float32s()
	if err != nil || !reflect.DeepEqual(v, []float32{1, -2.5, 3}) {
		t.Fatalf("%v %v", v, err)
	}
	ts.Shape = []int{2, 3}
	if ts.Validate() == nil {
		t.Fatal("wrong shape accepted")
	}
	if (&Tensor{DType: "q7"}).Validate() == nil {
		t.Fatal("unknown dtype accepted")
	}
}

func TestDecodeBody(t *testing.T) {
	e, err := NewEnvelope(KindDownAck, "test", DownAck{Epoch: 3, Seq: 9, Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	var a DownAck
	if err := e.DecodeBody(&a); err != nil || a != (DownAck{Epoch: 3, Seq: 9, Replay: true}) {
		t.Fatalf("%+v %v", a, err)
	}
	e.Body = []byte{0xc1}
	if err := e.DecodeBody(&a); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad body: %v", err)
	}
}
