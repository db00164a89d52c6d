package cloudlink

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Forget takes every node for offline and unknown, returns the nodes the
// outbox has messages for, and the same status as before, said again,
// brings a node back online (the status it forgot does not make the
// repeat look stale).
func TestDownlinkForget(t *testing.T) {
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := NewDownlink(DownlinkConfig{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Send("edge-1", topics.ToNodeAppPrefix("edge-1")+"x", []byte("hi"), false, 1, 0); err != nil {
		t.Fatal(err)
	}
	raw, err := topics.Encode(topics.KindNodeStatus, "edge/bridge", topics.NodeStatus{Node: "edge-1", State: topics.NodeOnline, Session: 7})
	if err != nil {
		t.Fatal(err)
	}
	_ = d.onStatus(topics.NodeStatusTopic("edge-1"), raw)
	if !d.Online("edge-1") || !d.Known("edge-1") {
		t.Fatal("a node that said it is online is not")
	}
	if got := d.Forget(); !slices.Equal(got, []string{"edge-1"}) {
		t.Fatalf("Forget = %v; want [edge-1]", got)
	}
	if d.Online("edge-1") || d.Known("edge-1") {
		t.Fatal("a forgotten node is still online or known")
	}
	_ = d.onStatus(topics.NodeStatusTopic("edge-1"), raw)
	if !d.Online("edge-1") {
		t.Fatal("the same status said again after Forget was taken for stale")
	}
}
