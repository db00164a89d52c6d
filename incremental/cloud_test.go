package incremental_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// TestDeletingAJobForgetsItsExamples: a deleted job's waiting examples
// are removed from the cloud's store, and the delete returns.
func TestDeletingAJobForgetsItsExamples(t *testing.T) {
	st := tempStore(t)
	net := paradigmtest.NewNet()
	c, err := incremental.NewCloud(paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Store: st,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ref := paradigmtest.RetainSpec(t, net.Cloud, api.KindIncrementalLearningJob, ilJob, 1)
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

// TestLabellingOperations: the cloud half's operations list the waiting
// examples a page at a time with the total, label some (a key not
// waiting is named, not an error) and refuse what is not a label list or
// has a negative class, labelling nothing then.
func TestLabellingOperations(t *testing.T) {
	st := tempStore(t)
	net := paradigmtest.NewNet()
	half, err := incremental.Paradigm{}.Cloud(paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Store: st,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	ref := paradigmtest.RetainSpec(t, net.Cloud, api.KindIncrementalLearningJob, ilJob, 1)
	var es []incremental.HardExample
	for i := range 5 {
		es = append(es, incremental.HardExample{Seq: uint64(i + 1), ID: fmt.Sprint("s", i), Data: []byte{byte(i)}})
	}
	raw, _ := topics.Encode(incremental.KindExamples, "test", map[string]any{"e": es})
	if err := net.Node("edge1").Send(paradigm.Outbound{Topic: topics.NodeJob("edge1", ref, "examples"), Payload: raw}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waiting := func(req string) incremental.WaitingList {
		t.Helper()
		out, err := half.Ops[incremental.OpWaiting](ctx, ref, []byte(req))
		if err != nil {
			t.Fatal(err)
		}
		var l incremental.WaitingList
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	keys := func(l incremental.WaitingList) (ks []string) {
		for _, e := range l.Examples {
			ks = append(ks, e.Key)
		}
		return ks
	}
	page := waiting(`{"limit": 2}`)
	if !slices.Equal(keys(page), []string{"edge1/1", "edge1/2"}) || page.Total != 5 || !page.More {
		t.Fatalf("first page: %v of %d, more %v", keys(page), page.Total, page.More)
	}
	page = waiting(`{"limit": 2, "after": "edge1/2"}`)
	if !slices.Equal(keys(page), []string{"edge1/3", "edge1/4"}) || !page.More {
		t.Fatalf("second page: %v, more %v", keys(page), page.More)
	}
	if all := waiting(""); len(all.Examples) != 5 || all.More || string(all.Examples[0].Data) != "\x00" || all.Examples[0].ID != "s0" {
		t.Fatalf("everything: %+v", all)
	}
	label := half.Ops[incremental.OpLabel]
	for _, bad := range []string{`{"key": "edge1/1", "label": 1}`, `[{"key": "edge1/1", "label": 1}, {"key": "edge1/2", "label": -1}]`} {
		if _, err := label(ctx, ref, []byte(bad)); err == nil {
			t.Errorf("labels %s taken", bad)
		}
	}
	out, err := label(ctx, ref, []byte(`[{"key": "edge1/1", "label": 3}, {"key": "edge1/9", "label": 1}, {"key": "edge1/2", "label": 0}]`))
	if err != nil {
		t.Fatal(err)
	}
	var res incremental.LabelResult
	if err := json.Unmarshal(out, &res); err != nil || res.Labelled != 2 || !slices.Equal(res.NotWaiting, []string{"edge1/9"}) {
		t.Fatalf("labelled: %s (%v)", out, err)
	}
	if rest := waiting(""); !slices.Equal(keys(rest), []string{"edge1/3", "edge1/4", "edge1/5"}) || rest.Total != 3 {
		t.Fatalf("still waiting: %v of %d", keys(rest), rest.Total)
	}
}

// TestDeletingAJobEmptiesItsNodePool: a node forgets a deleted job's
// controller state and the hard examples it had not sent yet; another
// job's stay.
func TestDeletingAJobEmptiesItsNodePool(t *testing.T) {
	st := tempStore(t)
	net := paradigmtest.NewNet()
	bus := net.Node("edge1")
	e, err := incremental.NewEdge(paradigm.Env{Side: paradigm.Edge, Node: "edge1", Bus: bus, Store: st, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pools := map[string]*incremental.Pool{}
	for _, job := range []string{"helmet", "other"} {
		p, err := incremental.OpenPool(store.Sub(st, "pool/default/"+job+"/"), incremental.PoolLimits{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1500 {
			if _, err := p.Add(incremental.HardExample{ID: fmt.Sprint(i), Data: []byte{1, 2, 3}}); err != nil {
				t.Fatal(err)
			}
		}
		pools[job] = p
	}
	ref := paradigmtest.RetainSpec(t, bus, api.KindIncrementalLearningJob, ilJob, 1)
	if err := bus.Publish(topics.JobSpec(ref), nil, true, 1); err != nil {
		t.Fatal(err)
	}
	left := func(job string) int {
		n := 0
		if err := st.Scan([]byte("pool/default/"+job+"/"), nil, func(_, _ []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := left("helmet"); n != 0 {
		t.Errorf("%d keys of the deleted job's pool left", n)
	}
	if n := left("other"); n < 1500 {
		t.Errorf("%d keys of the other job's pool left, want its 1,500 examples", n)
	}
}

// An external train worker that fails its attempt fails it with a reason
// a user can act on: its exit status and last output, no model written,
// a model that is not one, a link where the model should be (the worker
// runs as nobody when the tests run as root: a link to a file it could
// not read is refused, not sent up).
func TestAnExternalTrainWorkerThatFailsSaysWhy(t *testing.T) {
	for _, c := range []struct{ name, script, want string }{
		{"exits 3", "echo boom; exit 3", "the train command: exited with exit status 3; last output: boom"},
		{"writes nothing", "true", "the train command exited 0 but left no model at MODEL_URL"},
		{"writes no model", `echo garbage > "$MODEL_URL"`, "the model the train command wrote: "},
		{"links to a file", `ln -s /etc/passwd "$MODEL_URL"`, "output model is a link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := runExternalTrain(t, c.script)
			if !strings.Contains(got, c.want) {
				t.Fatalf("the attempt failed with %q, want %q in it", got, c.want)
			}
		})
	}
}

// runExternalTrain runs one Train attempt in the cloud with script as its
// command and returns the attempt's error.
func runExternalTrain(t *testing.T, script string) string {
	t.Helper()
	st := tempStore(t)
	net := paradigmtest.NewNet()
	m, err := ml.NewMLP(4, []int{3}, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := m.MarshalBinary()
	reg := paradigmtest.NewRegistry(map[string][]byte{"default/initial-model": blob})
	log := slog.New(slog.DiscardHandler)
	half, err := incremental.Paradigm{}.Cloud(paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Store: st, Models: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	doc := strings.Replace(ilJob, "containers: [{name: t, env:", "containers: [{name: t, command: [/bin/sh, -c, '"+script+"'], env:", 1)
	ref := paradigmtest.RetainSpec(t, net.Cloud, api.KindIncrementalLearningJob, doc, 1)
	res, err := api.ParseDocument([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	sup := workers.New(workers.Config{Node: "cloud", LogDir: t.TempDir(), Log: log,
		Builtins: map[string]workers.Builtin{workers.DriverKey(ref.Kind, "train"): half.Drivers["train"]}})
	defer sup.Close()
	for _, w := range res.Workers() {
		if w.Role == "train" {
			sup.Ensure(workers.Spec{Job: ref, Generation: 1, Document: []byte(doc), Worker: w})
		}
	}
	edge := net.Node("edge1")
	reports := make(chan map[string]any, 4)
	stop, _ := edge.Subscribe(topics.JobTopic(ref, "stage"), func(m paradigm.Message) error {
		env, err := topics.UnmarshalEnvelope(m.Payload, topics.Limits{})
		var r map[string]any
		if err == nil && env.DecodeBody(&r) == nil {
			reports <- r
		}
		return nil
	})
	defer func() { _ = stop() }()
	raw, _ := topics.Encode(incremental.KindRun, "test", map[string]any{"attempt": "1-train-1", "stage": "Train",
		"input": map[string]any{"cycle": 1}})
	if err := edge.Send(paradigm.Outbound{Topic: topics.NodeJob("edge1", ref, "run"), Payload: raw}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case r := <-reports:
			if r["started"] == true {
				continue
			}
			if r["done"] != true {
				t.Fatalf("report %v: want the attempt done", r)
			}
			e, _ := r["error"].(string)
			return e
		case <-time.After(30 * time.Second):
			t.Fatal("no report of the attempt")
		}
	}
}
