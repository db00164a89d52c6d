package ml_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sedna-go/sedna/ml"
)

// The seed corpus runs as an ordinary test; run the fuzzer itself with
//
//	go test ./ml -run '^$' -fuzz FuzzUnmarshal -fuzztime 60s
func FuzzUnmarshal(f *testing.F) {
	soft, _ := ml.NewSoftmax(3, 2)
	sb, _ := soft.MarshalBinary()
	mb, _ := trained(f).MarshalBinary()
	for _, seed := range [][]byte{sb, mb, mb[:len(mb)/2], mb[:7], []byte("SDML"), {}, []byte("SDML\x01\x00\x02\x04")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ml.Unmarshal(b)
		if err != nil {
			for _, reason := range []error{ml.ErrBadMagic, ml.ErrUnsupportedVersion, ml.ErrTruncated, ml.ErrChecksum, ml.ErrMalformed} {
				if errors.Is(err, reason) {
					return
				}
			}
			t.Fatalf("error without a reason: %v", err)
		}
		// Whatever decodes encodes back to the same bytes and predicts.
		again, err := n.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		if _, err := n.PredictProba(make([]float32, n.Inputs())); err != nil {
			t.Fatal(err)
		}
	})
}
