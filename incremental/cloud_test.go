package incremental_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// TestDeletingAJobForgetsItsExamples: a deleted job's waiting examples
// are removed from the cloud's store, and the delete returns.
func TestDeletingAJobForgetsItsExamples(t *testing.T) {
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	net := paradigmtest.NewNet()
	c, err := incremental.NewCloud(paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Store: st,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ref := retainSpec(t, net.Cloud, api.KindIncrementalLearningJob, ilJob, 1)
	raw, _ := topics.Encode(incremental.KindExamples, "test", map[string]any{"e": []incremental.HardExample{{Seq: 1, Data: []byte{1}}}})
	if err := net.Node("edge1").Send(paradigm.Outbound{Topic: topics.NodeJob("edge1", ref, "examples"), Payload: raw}); err != nil {
		t.Fatal(err)
	}
	if w, err := c.Waiting(ref, 0); err != nil || len(w) != 1 {
		t.Fatalf("waiting before the delete: %v %v", w, err)
	}
	done := make(chan error, 1)
	go func() { done <- net.Cloud.Publish(topics.JobSpec(ref), nil, true, 1) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delete did not return")
	}
	if w, err := c.Waiting(ref, 0); err != nil || len(w) != 0 {
		t.Fatalf("waiting after the delete: %v %v", w, err)
	}
}
