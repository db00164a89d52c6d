package incremental

import (
	"log/slog"
	"testing"
	"time"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/vmihailenco/msgpack/v5"
)

// The stage conditions of a step are saved with its state: when the
// uplink refuses them (here a bus with no link, as a full uplink queue
// would), they wait in the node's store (Badger on disk) and go at the
// next act, in order, once the uplink takes them; then the outbox is
// empty. A kill between the save and the send is the same case: the
// saved conditions go at the restart's first act.
func TestConditionsOfASavedStateAreNotLost(t *testing.T) {
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ref := topics.JobRef{Kind: "IncrementalLearningJob", Namespace: "default", Name: "j"}
	j := &job{ref: ref}
	now := time.Unix(1_700_000_000, 0)
	cond := func(p Phase, msg string) Action {
		return Action{Kind: Report, Cycle: 1, Cond: Condition{Type: p, Status: "True", Stage: Train, Message: msg, Time: now}}
	}
	c := NewController(Rules{}, State{})
	offline := &Edge{env: paradigm.Env{Node: "edge1", Bus: paradigmtest.NewMemBus(), Store: st, Log: slog.New(slog.DiscardHandler)}}
	offline.act(j, c, []Action{{Kind: Save, State: State{Cycle: 1}}, cond(Starting, "a"), cond(Running, "b")})
	raw, err := st.Get(outboxKey(jobKey(ref)))
	if err != nil {
		t.Fatalf("the refused conditions are not in the store: %v", err)
	}
	var kept []topics.StageCondition
	if err := msgpack.Unmarshal(raw, &kept); err != nil || len(kept) != 2 {
		t.Fatalf("kept %d conditions (%v), want 2", len(kept), err)
	}

	net := paradigmtest.NewNet()
	online := &Edge{env: paradigm.Env{Node: "edge1", Bus: net.Node("edge1"), Store: st, Log: slog.New(slog.DiscardHandler)}}
	online.act(j, c, []Action{{Kind: Save, State: State{Cycle: 1}}, cond(Completed, "c")})
	var got []string
	for _, r := range net.Cloud.Published(topics.NodeJob("edge1", ref, "conditions")) {
		var sc topics.StageCondition
		if err := decode(r.Payload, topics.KindStageCondition, &sc); err != nil {
			t.Fatal(err)
		}
		got = append(got, sc.Message)
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("the cloud got %q, want a, b, c", got)
	}
	if _, err := st.Get(outboxKey(jobKey(ref))); err != store.ErrNotFound {
		t.Fatalf("the outbox after sending: %v, want it empty", err)
	}
}
