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

// A frame carries its sender's clock; Rebase moves its messages' times onto
// the receiver's, keeping each one's remaining lifetime, except where a
// clock is below ClockFloor.
func TestRebaseKeepsRemainingLifetime(t *testing.T) {
	cloud := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	node := cloud.Add(-2 * time.Hour) // the node's clock is two hours behind
	boot := time.Unix(60, 0)          // a board that has not set its clock
	f := &Frame{Version: FrameVersion, Node: "n", Stream: StreamTelemetry, Sent: node, Messages: []FrameMessage{
		{Seq: 1, Topic: "a", Time: node.Add(-time.Second), Expires: node.Add(29 * time.Second)},
		{Seq: 2, Topic: "a", Time: node},
		{Seq: 3, Topic: "a", Time: boot, Expires: boot.Add(time.Minute)},
	}}
	raw, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := UnmarshalFrame(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Sent.Equal(node) {
		t.Fatalf("sent %v after a round trip, want %v", g.Sent, node)
	}
	g.Rebase(cloud)
	m := g.Messages
	if !m[0].Time.Equal(cloud.Add(-time.Second)) || !m[0].Expires.Equal(cloud.Add(29*time.Second)) || Expired(m[0].Time, m[0].Expires, cloud, 0) {
		t.Errorf("message 1 on the cloud's clock: %v..%v", m[0].Time, m[0].Expires)
	}
	if !m[1].Time.Equal(cloud) || !m[1].Expires.IsZero() {
		t.Errorf("message 2 on the cloud's clock: %v, expires %v", m[1].Time, m[1].Expires)
	}
	if !m[2].Time.Equal(boot) || Expired(m[2].Time, m[2].Expires, cloud, time.Hour) {
		t.Errorf("a 1970 stamp was moved or expired: %v", m[2].Time)
	}

	// Neither a sender nor a receiver below the floor moves anything.
	for _, c := range []struct{ sent, now time.Time }{{boot, cloud}, {cloud, boot}, {time.Time{}, cloud}} {
		h := &Frame{Sent: c.sent, Messages: []FrameMessage{{Time: node, Expires: node.Add(time.Minute)}}}
		h.Rebase(c.now)
		if !h.Messages[0].Time.Equal(node) || !h.Messages[0].Expires.Equal(node.Add(time.Minute)) {
			t.Errorf("sent %v, now %v: times moved to %v", c.sent, c.now, h.Messages[0].Time)
		}
	}
}
