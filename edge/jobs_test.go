package edge

import (
	"log/slog"
	"testing"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// The node's one reconciler of specs keeps the newest revision of each
// key, in the store: an older or equal revision is ignored, a tombstone of
// a newer one deletes, a new incarnation (created later) wins over a
// higher generation of the old one, and what is kept is there again after
// a restart. No broker: keep is the reconciler's decision.
func TestJobsKeepTheNewestRevision(t *testing.T) {
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j := newJobs("edge-1", store.Sub(st, "jobs/"), nil, nil, nil, slog.New(slog.DiscardHandler))
	const key = "FederatedLearningJob/default/fl"
	spec := func(created int64, gen uint64, deleted bool) topics.Spec {
		return topics.Spec{Key: key, Created: created, Generation: gen, Deleted: deleted, Data: []byte("x")}
	}
	for i, step := range []struct {
		sp   topics.Spec
		kept bool
	}{
		{spec(100, 1, false), true},
		{spec(100, 1, false), false}, // the same again (a redelivery)
		{spec(100, 2, false), true},
		{spec(100, 1, false), false}, // older
		{spec(100, 3, true), true},   // deleted
		{spec(100, 2, false), false}, // older than the tombstone
		{spec(200, 1, false), true},  // created again: a new incarnation
		{spec(100, 9, false), false}, // the old incarnation, however high its generation
	} {
		if _, kept := j.keep(step.sp); kept != step.kept {
			t.Fatalf("step %d (%+v): kept %v, want %v", i, step.sp.Revision(), kept, step.kept)
		}
	}
	rev, deleted, ok := j.revision(key)
	if !ok || deleted || rev != (topics.Revision{Created: 200, Generation: 1}) {
		t.Fatalf("holds %+v deleted %v ok %v", rev, deleted, ok)
	}
	// A restart reads what was kept.
	again := newJobs("edge-1", store.Sub(st, "jobs/"), nil, nil, nil, slog.New(slog.DiscardHandler))
	if err := again.load(); err != nil {
		t.Fatal(err)
	}
	if rev2, _, ok := again.revision(key); !ok || rev2 != rev {
		t.Fatalf("after a restart: %+v %v", rev2, ok)
	}
	if _, kept := again.keep(spec(200, 1, false)); kept {
		t.Fatal("after a restart, the kept revision was taken again")
	}
}
