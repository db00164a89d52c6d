package topics

import (
	"testing"
	"time"
)

// A board without a real-time clock boots in 1970 and stamps messages; its
// clock is set later. Those messages are not expired by a TTL or a maximum
// age measured against the new clock; messages stamped by a sane clock are.
func TestClockJumpDoesNotExpireMessages(t *testing.T) {
	boot := time.Unix(3600, 0) // 1970, one hour after the epoch
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name             string
		stamped, expires time.Time
		age              time.Duration
		want             bool
	}{
		{"1970 stamp, max age", boot, time.Time{}, time.Hour, false},
		{"1970 stamp, TTL", boot, boot.Add(time.Minute), 0, false},
		{"sane stamp, max age passed", now.Add(-2 * time.Hour), time.Time{}, time.Hour, true},
		{"sane stamp, TTL passed", now.Add(-2 * time.Minute), now.Add(-time.Minute), 0, true},
		{"sane stamp, fresh", now.Add(-time.Minute), now.Add(time.Minute), time.Hour, false},
		{"stamp in the future (the clock went back)", now.Add(time.Hour), time.Time{}, time.Minute, false},
		{"no stamp, TTL passed", time.Time{}, now.Add(-time.Second), 0, true},
	}
	for _, c := range cases {
		if got := Expired(c.stamped, c.expires, now, c.age); got != c.want {
			t.Errorf("%s: expired=%v, want %v", c.name, got, c.want)
		}
	}
}
