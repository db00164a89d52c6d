package jointinference

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/topics"
)

// FuzzDecodeRequest decodes bytes as a device's request on a node, which
// any local app may send anonymously: JSON or an envelope. Nothing may
// panic; a request that decodes gives its values or an error.
func FuzzDecodeRequest(f *testing.F) {
	env, _ := EncodeRequest(Request{Shape: []int{2, 2}, Data: []byte{1, 2, 3, 4}}, "apps/out", "c1")
	f.Add(env)
	f.Add([]byte(`{"shape":[2],"values":[0.5,0.25],"replyTo":"apps/out"}`))
	f.Add([]byte(`{"shape":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, _, _, _, err := DecodeRequest(b, topics.Limits{MaxBody: 1 << 16})
		if err != nil {
			return
		}
		_, _ = req.Floats()
	})
}

// A device's request nested a hundred thousand levels deep (any local app
// may send one, anonymously) is refused as too deep, before the decoder
// could recurse through it (issue 14, finding 3).
func TestDeepRequestIsRefused(t *testing.T) {
	body := append([]byte{0x81, 0xa4, 'd', 'a', 't', 'a'}, bytes.Repeat([]byte{0x91}, 100_000)...)
	body = append(body, 0xc0)
	env := &topics.Envelope{Version: topics.EnvelopeVersion, Kind: KindRequest, Body: body}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := DecodeRequest(raw, topics.Limits{}); !errors.Is(err, topics.ErrTooDeep) {
		t.Fatalf("a request 100,000 levels deep: %v", err)
	}
	deep := []byte(`{"shape":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`)
	if _, _, _, _, err := DecodeRequest(deep, topics.Limits{}); err == nil {
		t.Fatal("a JSON request 20,000 levels deep was taken")
	}
}
