package topics

import (
	"testing"
)

// The seed corpus of every fuzz target runs as an ordinary test; run the
// fuzzer itself with, for example:
//   go test ./topics -run '^$' -fuzz FuzzUnmarshalFrame -fuzztime 60s

func FuzzUnmarshalEnvelope(f *testing.F) {
	good, _ := sampleEnvelope().Marshal()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0xa1, 'b', 0xc6, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnmarshalEnvelope(b, Limits{MaxBody: 1 << 16})
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Whatever decodes must re-encode and decode to the same thing.
		again, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		e2, err := UnmarshalEnvelope(again, Limits{MaxBody: 1 << 16})
		if err != nil || e2.Kind != e.Kind || e2.ID != e.ID || string(e2.Body) != string(e.Body) {
			t.Fatalf("re-decode: %+v %v", e2, err)
		}
	})
}

func FuzzUnmarshalFrame(f *testing.F) {
	good, _ := sampleFrame().Marshal()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{0x85})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := UnmarshalFrame(b, Limits{MaxBody: 1 << 16, MaxMessages: 64})
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		again, err := fr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := UnmarshalFrame(again, Limits{MaxBody: 1 << 16, MaxMessages: 64})
		if err != nil || len(fr2.Messages) != len(fr.Messages) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{NodeStatusTopic("a"), Uplink("a", StreamBulk), "sedna/v1/job/k/n/x/spec", "$hw/x", "sedna/v1//", "sedna/v1/node/a/job/k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil && p.Class != ClassUnknown {
			t.Fatalf("error with class %v", p.Class)
		}
		_ = PayloadOf(s)
	})
}

func FuzzMatch(f *testing.F) {
	f.Add("a/+/#", "a/b/c")
	f.Add("#", "$x")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		m := Match(filter, topic)
		if filter == topic && ValidateFilter(filter) == nil && ValidateTopic(topic) == nil && !m {
			t.Fatalf("a topic must match itself: %q", topic)
		}
	})
}
