package simulator

import (
	"testing"
	"time"
)

// TestTallyTellsBrokenPromisesFromResends: an acknowledged message (or one
// sent at QoS 0) received twice is a duplicate; one whose PUBACK never
// reached its device, received twice, was sent again by the device and is
// counted apart; neither is lost.
func TestTallyTellsBrokenPromisesFromResends(t *testing.T) {
	outs := []outcome{
		{sent: true, acked: true, seen: 1},
		{sent: true, acked: true, seen: 2},  // a broken promise
		{sent: true, acked: false, seen: 2}, // the device sent it again
		{sent: true, acked: false, seen: 0}, // never promised, never arrived
	}
	for _, tc := range []struct {
		qos                  int
		dup, resent, lost    int64
		published, delivered int64
	}{
		{qos: 1, dup: 1, resent: 1, lost: 0, published: 4, delivered: 3},
		{qos: 0, dup: 2, resent: 0, lost: 1, published: 4, delivered: 3},
	} {
		var r Report
		nr := &NodeReport{Node: "n"}
		r.tally(nr, "sensor", tc.qos, int64(len(outs)), func(seq int64) outcome { return outs[seq] }, new([]time.Duration))
		if nr.Duplicated != tc.dup || nr.Resent != tc.resent || nr.Lost != tc.lost || nr.Published != tc.published || nr.Delivered != tc.delivered {
			t.Errorf("qos %d: %+v, want duplicated %d resent %d lost %d", tc.qos, *nr, tc.dup, tc.resent, tc.lost)
		}
	}
}
