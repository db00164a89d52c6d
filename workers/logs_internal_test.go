package workers

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestReadChunksCutsARangeInBoundedPieces(t *testing.T) {
	r := bytes.NewReader([]byte("0123456789"))
	type piece struct {
		off  int64
		data string
		last bool
	}
	cases := []struct {
		name     string
		from, to int64
		want     []piece
		reached  int64
	}{
		{"pieces of 4", 1, 10, []piece{{1, "1234", false}, {5, "5678", false}, {9, "9", true}}, 10},
		{"exactly one", 0, 4, []piece{{0, "0123", true}}, 4},
		{"nothing: one empty piece, for the offset", 7, 7, []piece{{7, "", true}}, 7},
		{"the file ends first", 6, 20, []piece{{6, "6789", false}, {10, "", true}}, 10},
		{"the file ends first, inside a piece", 8, 20, []piece{{8, "89", true}}, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []piece
			reached, err := readChunks(r, c.from, c.to, 4, func(off int64, data []byte, last bool) error {
				got = append(got, piece{off, string(data), last})
				return nil
			})
			if err != nil || reached != c.reached {
				t.Fatalf("reached %d, %v; want %d", reached, err, c.reached)
			}
			if len(got) != len(c.want) {
				t.Fatalf("pieces %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("pieces %+v, want %+v", got, c.want)
				}
			}
		})
	}
	// A piece that cannot be sent stops the rest.
	boom := errors.New("boom")
	calls := 0
	reached, err := readChunks(r, 0, 10, 4, func(int64, []byte, bool) error {
		if calls++; calls == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || reached != 4 || calls != 2 {
		t.Fatalf("after a failed piece: reached %d, %v, %d calls", reached, err, calls)
	}
}

func TestLeaseEndsUnlessRenewedAndARenewalNeverShortensIt(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var l lease
	l.renew(t0, 10*time.Second)
	if l.over(t0.Add(9*time.Second)) || !l.over(t0.Add(10*time.Second)) {
		t.Fatal("a lease of 10s")
	}
	l.renew(t0.Add(5*time.Second), 10*time.Second) // until t0+15s
	if l.over(t0.Add(14 * time.Second)) {
		t.Fatal("a renewal did not extend the lease")
	}
	l.renew(t0.Add(6*time.Second), time.Second) // a shorter one
	if l.over(t0.Add(14 * time.Second)) {
		t.Fatal("a renewal shortened the lease")
	}
	if !l.over(t0.Add(15 * time.Second)) {
		t.Fatal("the lease did not end")
	}
}
