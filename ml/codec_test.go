package ml_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/ml"
)

func trained(t testing.TB) *ml.Network {
	t.Helper()
	x, y := toy(90)
	n, err := ml.NewMLP(2, []int{8, 5}, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Fit(context.Background(), x, y, ml.FitOptions{Epochs: 2, Optimizer: ml.Adam}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMarshalRoundTripBitForBit(t *testing.T) {
	soft, _ := ml.NewSoftmax(4, 2)
	for _, n := range []*ml.Network{trained(t), soft} {
		t.Run(n.Kind().String(), func(t *testing.T) {
			blob, err := n.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ml.Unmarshal(blob)
			if err != nil {
				t.Fatal(err)
			}
			if back.Kind() != n.Kind() || back.Samples() != n.Samples() || !equalBits(back.Weights(), n.Weights()) ||
				len(back.Sizes()) != len(n.Sizes()) {
				t.Fatalf("decoded %v %v samples %d, want %v %v samples %d",
					back.Kind(), back.Sizes(), back.Samples(), n.Kind(), n.Sizes(), n.Samples())
			}
			again, _ := back.MarshalBinary()
			if !bytes.Equal(again, blob) {
				t.Fatal("re-encoding changed the bytes")
			}
			// UnmarshalBinary replaces whatever the receiver was.
			var m ml.Network
			if err := m.UnmarshalBinary(blob); err != nil {
				t.Fatal(err)
			}
			if !equalBits(m.Weights(), n.Weights()) {
				t.Fatal("UnmarshalBinary lost bits")
			}
		})
	}
}

// reseal recomputes the checksum after a test edits a blob, so that the
// decoder reaches the check the test is about.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
	return b
}

func TestUnmarshalRefusesBadBlobs(t *testing.T) {
	n := trained(t)
	good, _ := n.MarshalBinary()
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		blob []byte
		want error
		says string
	}{
		{"empty", nil, ErrTruncatedOrMagic(nil), "0 bytes"},
		{"a PNG", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), ml.ErrBadMagic, "bad magic"},
		{"a gzip stream", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, ml.ErrBadMagic, "bad magic"},
		{"JSON", []byte(`{"weights":[1,2,3]}`), ml.ErrBadMagic, "bad magic"},
		{"a wrong first byte", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ml.ErrBadMagic, "SDML"},
		{"version 2", edit(func(b []byte) []byte { b[4] = 2; return reseal(b) }), ml.ErrUnsupportedVersion, "version 2"},
		{"version 0", edit(func(b []byte) []byte { b[4] = 0; return reseal(b) }), ml.ErrUnsupportedVersion, "version 0"},
		{"magic only", good[:4], ml.ErrTruncated, "no version"},
		{"header cut", good[:10], ml.ErrTruncated, "header"},
		{"last weight cut", good[:len(good)-6], ml.ErrTruncated, "bytes"},
		{"checksum cut", good[:len(good)-1], ml.ErrTruncated, "bytes"},
		{"a flipped weight bit", edit(func(b []byte) []byte { b[len(b)-9] ^= 0x10; return b }), ml.ErrChecksum, "checksum"},
		{"a flipped samples bit", edit(func(b []byte) []byte { b[8+4*4] ^= 1; return b }), ml.ErrChecksum, "stored"},
		{"a flipped checksum bit", edit(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), ml.ErrChecksum, "computed"},
		{"a trailing byte", append(append([]byte(nil), good...), 0), ml.ErrMalformed, "after the checksum"},
		{"an unknown kind", edit(func(b []byte) []byte { b[6] = 9; return reseal(b) }), ml.ErrMalformed, "kind(9)"},
		{"a softmax with hidden layers", edit(func(b []byte) []byte { b[6] = 1; return reseal(b) }), ml.ErrMalformed, "softmax"},
		{"a zero-width layer", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 0); return reseal(b) }),
			ml.ErrMalformed, "0 units"},
		{"a weight count that does not fit", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[8+4*4+8:], 5)
			return reseal(b)
		}), ml.ErrMalformed, "weights for shape"},
		{"a NaN weight", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-8:], 0x7fc00000)
			return reseal(b)
		}), ml.ErrMalformed, "NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m ml.Network
			before, _ := m.MarshalBinary()
			_, err := ml.Unmarshal(tc.blob)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.HasPrefix(err.Error(), "ml: unmarshal: ") {
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
			if err := m.UnmarshalBinary(tc.blob); !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if after, _ := m.MarshalBinary(); !bytes.Equal(before, after) {
				t.Fatal("a refused UnmarshalBinary changed the receiver")
			}
		})
	}
}

// ErrTruncatedOrMagic is the reason for a blob too short to hold the magic:
// a prefix of the magic is truncated, anything else is not a model.
func ErrTruncatedOrMagic(b []byte) error {
	if bytes.HasPrefix([]byte("SDML"), b) {
		return ml.ErrTruncated
	}
	return ml.ErrBadMagic
}

func TestEveryTruncationIsRefused(t *testing.T) {
	good, _ := trained(t).MarshalBinary()
	for cut := 0; cut < len(good); cut++ {
		if _, err := ml.Unmarshal(good[:cut]); !errors.Is(err, ml.ErrTruncated) {
			t.Fatalf("cut at %d of %d: %v, want ErrTruncated", cut, len(good), err)
		}
	}
}
