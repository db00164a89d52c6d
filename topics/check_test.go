package topics

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// nested returns n levels of one-element arrays around a nil: the shape
// that made the reflection decoder overflow its stack at 8.3 million.
func nested(n int) []byte {
	b := bytes.Repeat([]byte{0x91}, n)
	return append(b, 0xc0)
}

// TestCheckMsgpack accepts every value the encoder makes and refuses, with
// the reason named, deep nesting, forged lengths, truncation and trailing
// bytes.
func TestCheckMsgpack(t *testing.T) {
	good := []any{nil, true, 1, -1, 1 << 40, 1.5, float32(2), "s", strings.Repeat("x", 70000), []byte("b"),
		[]any{1, "a", []any{2}}, map[string]any{"a": map[string]any{"b": []int{1, 2}}},
		APIRequest{ID: "1", Client: "c", Op: "apply", Documents: [][]byte{[]byte("{}")}},
		msgpack.RawMessage{0xd4, 1, 2}, // fixext1
	}
	for _, v := range good {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckMsgpack("v", b); err != nil {
			t.Errorf("%#v: %v", v, err)
		}
	}
	bad := []struct {
		name   string
		b      []byte
		reason error
	}{
		{"deep", nested(MaxNesting + 1), ErrTooDeep},
		{"8.3 million levels", nested(8_300_000), ErrTooDeep},
		{"deep maps", append(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, MaxNesting+1), 0xc0), ErrTooDeep},
		{"array32 of 4 billion", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, ErrMalformed},
		{"map32 longer than the input", []byte{0xdf, 0, 0, 0, 2, 0xc0, 0xc0, 0xc0}, ErrMalformed},
		{"bin32 of 2 GiB", []byte{0xc6, 0x7f, 0xff, 0xff, 0xff, 1}, ErrMalformed},
		{"truncated", []byte{0x92, 0x01}, ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"trailing", []byte{0x01, 0x02}, ErrMalformed},
		{"never used code", []byte{0xc1}, ErrMalformed},
	}
	for _, c := range bad {
		err := CheckMsgpack("v", c.b)
		if !errors.Is(err, c.reason) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.reason)
		}
	}
	if err := CheckMsgpack("v", nested(MaxNesting)); err != nil {
		t.Errorf("exactly MaxNesting levels: %v", err)
	}
}

// TestUnmarshalRefusesBombsCheaply: the payloads that crashed the cloud
// (8.3 million nested arrays as an unknown field of an api request) and
// raised it by 114 MB (460 KB on a job-status topic) are refused, and
// refusing them allocates almost nothing.
func TestUnmarshalRefusesBombsCheaply(t *testing.T) {
	// {"id": "x", "junk": [[[[...]]]]}: the junk is an unknown field,
	// which the reflection decoder skips recursively.
	bomb := append([]byte{0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa4, 'j', 'u', 'n', 'k'}, nested(8_300_000)...)
	status := append([]byte{0x81, 0xa5, 'p', 'h', 'a', 's', 'e'}, nested(460_000)...)
	for name, b := range map[string][]byte{"api request": bomb, "job status": status} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var req APIRequest
		err := Unmarshal(name, b, &req)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooDeep) {
			t.Errorf("%s: got %v, want ErrTooDeep", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("%s: refusing it allocated %d bytes", name, grew)
		}
	}
}

// FuzzCheckMsgpack: whatever CheckMsgpack lets through, the reflection
// decoder takes without panicking, and with every length bounded by the
// input; whatever it refuses is refused with a DecodeError.
func FuzzCheckMsgpack(f *testing.F) {
	for _, v := range []any{nil, []any{1, "a", map[string]any{"b": []byte("c")}}, APIRequest{ID: "1", Documents: [][]byte{{1}}}} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add(nested(40))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckMsgpack("v", b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var v any
		if err := Unmarshal("v", b, &v); err != nil && !strings.Contains(err.Error(), "decode") {
			t.Fatalf("unexpected error: %v", err)
		}
		var req APIRequest
		_ = Unmarshal("v", b, &req)
	})
}

// FuzzDecodeBody decodes bytes as the body of every message kind of the
// tree, as the cloud and the nodes decode what others send them: the api
// requests of cloud users, the reports of nodes, the specs from the cloud.
// Nothing may panic, and a refusal is a DecodeError.
func FuzzDecodeBody(f *testing.F) {
	for _, v := range []any{
		APIRequest{ID: "1", Client: "c", Op: "apply", Documents: [][]byte{[]byte(`{"kind":"Dataset"}`)}, Origins: []string{"a#1"},
			Upload: &ModelUpload{ID: "u", Data: []byte{1, 2}, Metrics: map[string]string{"acc": "0.9"}}},
		APIReply{ID: "1", Results: []APIResult{{Key: "k", Action: "created"}}, Objects: []APIObject{{Key: "k", Source: []byte("{}")}}},
		NodeStatus{Node: "n", State: NodeOnline, Epoch: 1, Session: 2},
		Spec{Key: "K/ns/n", Generation: 3, Data: []byte("{}")},
		ModelFetch{Key: "Model/ns/m", Version: 1, Chunks: []int{0, 1}, Refetch: []int{2}},
		ModelChunk{Key: "Model/ns/m", Version: 1, Index: 2, Data: []byte{9}},
		WorkerMetrics{Role: "train-0", Metrics: map[string]float64{"loss": 0.5}},
		ErrorEvent{Component: "c", Reason: "r"},
		DownAck{Epoch: 1, Seq: 2, Replay: true},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(nested(MaxNesting + 5))
	f.Fuzz(func(t *testing.T, b []byte) {
		targets := []any{&APIRequest{}, &APIReply{}, &NodeStatus{}, &Spec{}, &ModelOffer{}, &ModelFetch{}, &ModelChunk{},
			&ModelHeld{}, &WorkerMetrics{}, &DatasetStatus{}, &ErrorEvent{}, &DownAck{}, &JobEvent{}}
		for _, v := range targets {
			if err := Unmarshal("fuzz", b, v); err != nil {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("%T: error of type %T: %v", v, err, err)
				}
			}
		}
	})
}
