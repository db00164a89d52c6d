package jointinference

import (
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
		req, _, _, _, err := decodeRequest(b, topics.Limits{MaxBody: 1 << 16})
		if err != nil {
			return
		}
		_, _ = req.values()
	})
}
