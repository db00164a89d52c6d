package cloud

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// recorder is job control's effects written down, one line each, in the
// order the machine asks for them; saved records and statuses are kept so
// a test can restart a machine from them.
type recorder struct {
	lines    []string
	records  map[string]record
	statuses map[string]api.Status
	joinedAs map[string]string
	deleted  map[string]int64
}

func newRecorder() *recorder {
	return &recorder{records: map[string]record{}, statuses: map[string]api.Status{}, joinedAs: map[string]string{}, deleted: map[string]int64{}}
}

func (r *recorder) add(format string, a ...any) { r.lines = append(r.lines, fmt.Sprintf(format, a...)) }

// take returns what was recorded since the last take.
func (r *recorder) take() []string {
	out := r.lines
	r.lines = nil
	return out
}

func (r *recorder) save(key string, rec record, st api.Status) error {
	r.records[key], r.statuses[key] = rec, st
	r.add("save %s gen %d: %s", key, rec.Generation, st.Phase)
	return nil
}

func (r *recorder) forget(key string, created int64) error {
	delete(r.records, key)
	delete(r.statuses, key)
	r.deleted[key] = created
	r.add("forget %s", key)
	return nil
}

func (r *recorder) joined(node, state string) error {
	r.joinedAs[node] = state
	r.add("joined %s %s", node, state)
	return nil
}

func (r *recorder) publish(topic, kind string, body any, retain bool) error {
	p, _ := topics.Parse(topic)
	switch b := body.(type) {
	case topics.Spec:
		r.add("publish spec %s gen %d", b.Key, b.Generation)
	case api.Status:
		msg := ""
		if len(b.Conditions) > 0 {
			msg = b.Conditions[len(b.Conditions)-1].Message
			for _, c := range b.Conditions {
				if c.Stage == "" && (c.Type == b.Phase || (b.Phase == api.PhaseCrashLoop && c.Type == api.PhaseCrashLoop)) {
					msg = c.Message
				}
			}
		}
		r.add("publish status %s: %s (%s)", p.Job, b.Phase, msg)
	case topics.JobEvent:
		r.add("event %s %s: %s", b.Key, b.Reason, b.Message)
	default:
		r.add("publish %s %s", kind, topic)
	}
	return nil
}

func (r *recorder) clear(topic string) error {
	r.add("clear %s", topic)
	return nil
}

func (r *recorder) sendSpec(node string, ref topics.JobRef, sp topics.Spec) error {
	what := "spec"
	if sp.Deleted {
		what = "tombstone"
	}
	r.add("send %s %s %s gen %d", node, what, ref, sp.Generation)
	return nil
}

func (r *recorder) ensure(spec workers.Spec) {
	r.add("ensure %s/%s gen %d", spec.Job, spec.Role, spec.Generation)
}

func (r *recorder) stop(ref topics.JobRef) { r.add("stop %s", ref) }

// clock is a fake clock a test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1_800_000_000, 0)} }
func operator() caller               { return caller{user: "op", role: access.UserOperator} }
func flView(kind string) paradigm.View { // federated and incremental learning's views (their Paradigms')
	switch kind {
	case api.KindFederatedLearningJob:
		return paradigm.View{Deciders: []string{"aggregation"}}
	case api.KindIncrementalLearningJob:
		return paradigm.View{Deciders: []string{"deploy"}}
	}
	return paradigm.View{}
}

// machine is job control with recorded effects and a fake clock; its
// store is only the model registry's (empty: no Model has a version).
func machine(t *testing.T, clk *clock, fx *recorder) *ControlPlane {
	t.Helper()
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return newControl(ControlConfig{Name: "cloud", Store: st, Now: clk.now, View: flView, Logger: slog.New(slog.DiscardHandler)}, fx)
}

func apply(t *testing.T, c *ControlPlane, yaml string) topics.APIReply {
	t.Helper()
	var docs [][]byte
	for _, d := range strings.Split(yaml, "\n---\n") {
		docs = append(docs, []byte(d))
	}
	return c.apply(operator(), topics.APIRequest{Op: "apply", Documents: docs})
}

func expect(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: effects\n  %s\nwant\n  %s", step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const (
	datasetYAML = `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: d1}
spec: {url: /data/d1.txt, format: txt, nodeName: edge1}`
	flYAML = `apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: fl}
spec:
  aggregationWorker: {template: {spec: {nodeName: cloud, containers: [{name: agg, image: x}]}}}
  trainingWorkers:
    - dataset: {name: d1}
      template: {spec: {nodeName: edge1, containers: [{name: train, image: x}]}}`
)

func online(node string, session uint64) topics.NodeStatus {
	return topics.NodeStatus{State: topics.NodeOnline, Session: session}
}

// A job applied before what it names: it waits, says for what, and is
// dispatched (its spec to its node, its cloud worker started) once the
// Dataset it names exists, whichever came first; the node joining later
// ends the wait for it without sending anything again.
func TestMachineReferencesResolveInAnyOrder(t *testing.T) {
	clk, fx := newClock(), newRecorder()
	c := machine(t, clk, fx)
	rep := apply(t, c, flYAML)
	if len(rep.Results) != 1 || rep.Results[0].Action != "created" {
		t.Fatalf("%+v", rep)
	}
	expect(t, "the job alone", fx.take(),
		"save FederatedLearningJob/default/fl gen 1: Pending",
		"publish spec FederatedLearningJob/default/fl gen 1",
		`publish status FederatedLearningJob/default/fl: Pending (waiting for Dataset "d1" (spec.trainingWorkers[0].dataset.name), node "edge1" to join)`,
		"event FederatedLearningJob/default/fl Created: generation 1")
	clk.add(time.Second)
	apply(t, c, datasetYAML)
	expect(t, "then its Dataset", fx.take(),
		"save Dataset/default/d1 gen 1: Pending",
		"publish spec Dataset/default/d1 gen 1",
		`publish status Dataset/default/d1: Pending (waiting for node "edge1" to join)`,
		"event Dataset/default/d1 Created: generation 1",
		// A node that never joined does not hold dispatch: its outbox
		// keeps the spec until it does.
		"send edge1 spec Dataset/default/d1 gen 1",
		"save Dataset/default/d1 gen 1: Pending",
		// The job waits for nothing it names now: it is dispatched.
		"save FederatedLearningJob/default/fl gen 1: Pending",
		`publish status FederatedLearningJob/default/fl: Pending (waiting for node "edge1" to join)`,
		"send edge1 spec FederatedLearningJob/default/fl gen 1",
		"save FederatedLearningJob/default/fl gen 1: Pending",
		"ensure FederatedLearningJob/default/fl/aggregation gen 1")
	clk.add(time.Second)
	c.nodeStatus("edge1", online("edge1", 1))
	expect(t, "the node joins", fx.take(),
		"joined edge1 online",
		"save Dataset/default/d1 gen 1: Pending",
		"publish status Dataset/default/d1: Pending (waiting for its node to report the dataset)",
		"save FederatedLearningJob/default/fl gen 1: Pending",
		"publish status FederatedLearningJob/default/fl: Pending (waiting for worker aggregation on cloud (no report yet), worker train-0 on edge1 (no report yet))",
		// Dispatch again: the spec went already; the cloud's worker is
		// made sure of (the supervisor starts only what does not run).
		"ensure FederatedLearningJob/default/fl/aggregation gen 1")
	// A second status of the node's session changes nothing; nor does
	// its leaving (its workers' last reports stand until they report
	// again), nor the will of an older session after a newer one.
	c.nodeStatus("edge1", online("edge1", 1))
	expect(t, "the same session again", fx.take())
	c.nodeStatus("edge1", topics.NodeStatus{State: topics.NodeOffline, Session: 1})
	c.nodeStatus("edge1", online("edge1", 2))
	c.nodeStatus("edge1", topics.NodeStatus{State: topics.NodeOffline, Session: 1})
	expect(t, "the node leaves and comes back", fx.take())
	if c.nodes["edge1"] != topics.NodeOnline {
		t.Fatalf("node state %q after an older session's will", c.nodes["edge1"])
	}
}

// A job's workers report: it runs once its deciding worker runs (a
// federated job's aggregation), a report of a worker it does not place
// there or of an older revision is ignored, a worker that keeps failing
// makes the job say CrashLoopBackOff with its error, and its success
// completes the job.
func TestMachineWorkerReports(t *testing.T) {
	clk, fx := newClock(), newRecorder()
	c := machine(t, clk, fx)
	c.nodeStatus("edge1", online("edge1", 1))
	apply(t, c, datasetYAML+"\n---\n"+flYAML)
	c.datasetStatus(topics.JobRef{Kind: api.KindDataset, Namespace: "default", Name: "d1"}, "edge1", topics.DatasetStatus{NumberOfSamples: 10})
	fx.take()
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	created := c.res[job.String()].rec.Created
	report := func(role, node, phase string, failures int) {
		clk.add(time.Second)
		c.workerStatus(job, api.WorkerStatus{Role: role, Node: node, Phase: phase, Generation: 1, Created: created, Failures: failures, Restarts: failures, LastError: "boom"})
	}
	report("aggregation", "cloud", api.WorkerRunning, 0)
	expect(t, "the aggregation runs", fx.take(),
		"event FederatedLearningJob/default/fl WorkerRunning: worker aggregation on cloud: Running",
		"save FederatedLearningJob/default/fl gen 1: Running",
		"publish status FederatedLearningJob/default/fl: Running (1 of 2 workers running; not running: worker train-0 on edge1 (no report yet))")
	report("train-0", "edge2", api.WorkerRunning, 0) // not placed there
	c.workerStatus(job, api.WorkerStatus{Role: "train-0", Node: "edge1", Phase: api.WorkerFailed, Generation: 1, Created: created - 1})
	expect(t, "reports to ignore", fx.take())
	report("train-0", "edge1", api.WorkerRunning, 0)
	expect(t, "the training worker runs", fx.take(),
		"event FederatedLearningJob/default/fl WorkerRunning: worker train-0 on edge1: Running",
		"save FederatedLearningJob/default/fl gen 1: Running",
		"publish status FederatedLearningJob/default/fl: Running (2 of 2 workers running)")
	report("aggregation", "cloud", api.WorkerRestarting, 1)
	report("aggregation", "cloud", api.WorkerCrashLoop, 2)
	expect(t, "the aggregation crash-loops", fx.take(),
		"event FederatedLearningJob/default/fl WorkerRestarting: worker aggregation on cloud: Restarting",
		"save FederatedLearningJob/default/fl gen 1: Pending",
		"publish status FederatedLearningJob/default/fl: Pending (waiting for worker aggregation on cloud (restarting))",
		"event FederatedLearningJob/default/fl WorkerCrashLoopBackOff: worker aggregation on cloud: CrashLoopBackOff",
		"save FederatedLearningJob/default/fl gen 1: CrashLoopBackOff",
		"publish status FederatedLearningJob/default/fl: CrashLoopBackOff (worker aggregation on cloud restarted 2 times: boom)")
	report("aggregation", "cloud", api.WorkerSucceeded, 0)
	expect(t, "the aggregation succeeds", fx.take(),
		"event FederatedLearningJob/default/fl WorkerSucceeded: worker aggregation on cloud: Succeeded",
		"save FederatedLearningJob/default/fl gen 1: Completed",
		"publish status FederatedLearningJob/default/fl: Completed ()")
}

// Delete, re-apply and restart: a delete forgets the job, sends a
// tombstone to the nodes it went to, stops its cloud workers and clears
// what the broker retains of it; applied again with the clock gone back,
// it is a new incarnation created after the deleted one; a changed
// document is a new generation that goes to its node again and resets
// what the workers said of the old one; an unchanged one changes nothing;
// a restarted machine, from what was saved, republishes and runs its
// cloud workers without sending a spec again.
func TestMachineDeleteReapplyRestart(t *testing.T) {
	clk, fx := newClock(), newRecorder()
	c := machine(t, clk, fx)
	c.nodeStatus("edge1", online("edge1", 1))
	apply(t, c, datasetYAML+"\n---\n"+flYAML)
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	first := c.res[job.String()].rec.Created
	fx.take()
	rep := c.delete(topics.APIRequest{Op: "delete", Kind: "fl", Name: "fl"})
	if rep.Error != "" || rep.Results[0].Action != "deleted" {
		t.Fatalf("%+v", rep)
	}
	expect(t, "delete", fx.take(),
		"forget FederatedLearningJob/default/fl",
		"send edge1 tombstone FederatedLearningJob/default/fl gen 2",
		"stop FederatedLearningJob/default/fl",
		"clear sedna/v1/job/FederatedLearningJob/default/fl/spec",
		"clear sedna/v1/job/FederatedLearningJob/default/fl/status",
		"event FederatedLearningJob/default/fl Deleted: ")
	clk.add(-time.Hour) // the cloud's clock went back
	apply(t, c, flYAML)
	if again := c.res[job.String()].rec.Created; again <= first {
		t.Fatalf("created again at %d, not after %d", again, first)
	}
	expect(t, "apply again", fx.take(),
		"save FederatedLearningJob/default/fl gen 1: Pending",
		"publish spec FederatedLearningJob/default/fl gen 1",
		"publish status FederatedLearningJob/default/fl: Pending (waiting for worker aggregation on cloud (no report yet), worker train-0 on edge1 (no report yet))",
		"event FederatedLearningJob/default/fl Created: generation 1",
		"send edge1 spec FederatedLearningJob/default/fl gen 1",
		"save FederatedLearningJob/default/fl gen 1: Pending",
		"ensure FederatedLearningJob/default/fl/aggregation gen 1")
	clk.add(time.Minute)
	if rep := apply(t, c, flYAML); rep.Results[0].Action != "unchanged" {
		t.Fatalf("%+v", rep)
	}
	expect(t, "the same document", fx.take())
	c.workerStatus(job, api.WorkerStatus{Role: "aggregation", Node: "cloud", Phase: api.WorkerSucceeded, Generation: 1, Created: c.res[job.String()].rec.Created})
	fx.take()
	if rep := apply(t, c, strings.Replace(flYAML, "image: x}]}}}", "image: z}]}}}", 1)); rep.Results[0].Action != "configured" {
		t.Fatalf("%+v", rep)
	}
	expect(t, "a new generation", fx.take(),
		"save FederatedLearningJob/default/fl gen 2: Pending",
		"publish spec FederatedLearningJob/default/fl gen 2",
		// What the workers said of generation 1 (Succeeded) is not of 2.
		"publish status FederatedLearningJob/default/fl: Pending (waiting for worker aggregation on cloud (no report yet), worker train-0 on edge1 (no report yet))",
		"event FederatedLearningJob/default/fl Configured: generation 2",
		"send edge1 spec FederatedLearningJob/default/fl gen 2",
		"save FederatedLearningJob/default/fl gen 2: Pending",
		"ensure FederatedLearningJob/default/fl/aggregation gen 2")

	// Restart from what was saved.
	c2 := machine(t, clk, fx)
	for key, rec := range fx.records {
		r, err := api.ParseDocument(rec.Source)
		if err != nil {
			t.Fatal(err)
		}
		c2.res[key] = &entry{rec: rec, res: r, status: fx.statuses[key], dispatched: rec.Dispatched, sentTo: rec.SentTo}
	}
	for n, st := range fx.joinedAs {
		c2.nodes[n] = st
	}
	maps.Copy(c2.deleted, fx.deleted)
	c2.start()
	expect(t, "restart", fx.take(),
		"publish spec Dataset/default/d1 gen 1",
		"publish status Dataset/default/d1: Pending (waiting for its node to report the dataset)",
		"publish spec FederatedLearningJob/default/fl gen 2",
		"publish status FederatedLearningJob/default/fl: Pending (waiting for worker aggregation on cloud (no report yet), worker train-0 on edge1 (no report yet))",
		"ensure FederatedLearningJob/default/fl/aggregation gen 2")
}

const ilYAML = `apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: il}
spec:
  initialModel: {name: m0}
  dataset: {name: d1}
  trainSpec:
    template: {spec: {nodeName: cloud}}
    trigger: {condition: {operator: ">", threshold: 100, metric: num_of_samples}}
  evalSpec: {template: {spec: {nodeName: cloud}}}
  deploySpec:
    model: {name: m1}
    template: {spec: {nodeName: edge2}}
  stopCondition: {maxCycles: 2}`

// A learning job's controller runs at its Dataset's node: the job's spec
// goes there beside its inference worker's node (which gets the initial
// model it serves first); the controller's stage
// conditions (from that node only, once each) go into the status in
// Sedna's shape with where the cycles are, and its stop condition makes
// the job Completed.
func TestMachineStageConditions(t *testing.T) {
	clk, fx := newClock(), newRecorder()
	c := machine(t, clk, fx)
	c.nodeStatus("edge1", online("edge1", 1))
	c.nodeStatus("edge2", online("edge2", 1))
	apply(t, c, datasetYAML)
	if _, _, err := c.register("default", "m0", "sedna", nil, "push", nil, strings.NewReader("a model")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"m0", "m1"} {
		apply(t, c, "apiVersion: sedna.io/v1alpha1\nkind: Model\nmetadata: {name: "+m+"}\nspec: {url: /models/"+m+", format: sedna}")
	}
	fx.take()
	apply(t, c, ilYAML)
	var sent []string
	for _, l := range fx.take() {
		if strings.HasPrefix(l, "send ") {
			sent = append(sent, l)
		}
	}
	expect(t, "the job's spec goes to its nodes, the initial model to its inference worker's", sent,
		"send edge2 spec IncrementalLearningJob/default/il gen 1",
		"send edge1 spec IncrementalLearningJob/default/il gen 1",
		"send edge2 spec Model/default/m0 gen 1")
	job := topics.JobRef{Kind: api.KindIncrementalLearningJob, Namespace: "default", Name: "il"}
	e := c.res[job.String()]
	c.workerStatus(job, api.WorkerStatus{Role: "deploy", Node: "edge2", Phase: api.WorkerRunning, Generation: 1, Created: e.rec.Created})
	fx.take()
	rev := topics.Revision{Created: e.rec.Created, Generation: 1}
	at := clk.t
	cond := func(cycle int64, stage, typ, reason string, done bool) topics.StageCondition {
		at = at.Add(time.Second)
		sc := topics.StageCondition{Type: typ, Status: api.StatusTrue, Stage: stage, Reason: reason, Time: at.UnixNano(), Revision: rev,
			Cycle: cycle, Serving: 1, Done: done}
		if done {
			sc.DoneReason = "2 cycles done"
		}
		return sc
	}
	train := cond(1, "Train", "Running", "", false)
	c.stageCondition(job, "edge1", train)
	expect(t, "a stage runs", fx.take(),
		"event IncrementalLearningJob/default/il StageRunning: cycle 1: Train Running",
		"save IncrementalLearningJob/default/il gen 1: Running",
		"publish status IncrementalLearningJob/default/il: Running (1 of 3 workers running; not running: worker train on cloud (no report yet), worker eval on cloud (no report yet))")
	c.stageCondition(job, "edge1", train)
	c.stageCondition(job, "edge2", cond(1, "Train", "Failed", "", false))
	old := cond(1, "Train", "Failed", "", false)
	old.Revision.Created--
	c.stageCondition(job, "edge1", old)
	expect(t, "sent again, from a node without the Dataset, from a deleted incarnation: ignored", fx.take())
	st := c.res[job.String()].status
	if st.Stage == nil || st.Stage.Cycle != 1 || st.Stage.Stage != "Train" || st.Stage.Phase != "Running" {
		t.Fatalf("stage %+v", st.Stage)
	}
	if st.Progress == nil || *st.Progress != (api.Progress{Done: 0, Total: 2, Unit: "cycles"}) {
		t.Fatalf("progress %+v", st.Progress)
	}
	if c, ok := st.Condition(api.ConditionRunning); !ok || c.Stage != "" || c.Reason != "WorkersRunning" {
		t.Fatalf("the job's Running condition: %+v", c)
	}
	c.stageCondition(job, "edge1", cond(2, "Deploy", "Completed", "", true))
	expect(t, "the stop condition held", fx.take(),
		"event IncrementalLearningJob/default/il StageCompleted: cycle 2: Deploy Completed",
		"save IncrementalLearningJob/default/il gen 1: Completed",
		"publish status IncrementalLearningJob/default/il: Completed (2 cycles done)")
	st = c.res[job.String()].status
	var stages []string
	for _, x := range st.Conditions {
		if x.Stage != "" {
			stages = append(stages, x.Stage+" "+x.Type)
		}
	}
	if !slices.Equal(stages, []string{"Train Running", "Deploy Completed"}) || st.Progress.Done != 2 || st.CompletionTime == nil {
		t.Fatalf("stage conditions %v, progress %+v, completed at %v", stages, st.Progress, st.CompletionTime)
	}
}

// A deploy whose output carries a knowledge base (a lifelong job's) puts
// it in the job's status, in Sedna's shape, with the version deployed;
// output that is not JSON leaves the status's knowledge base as it was.
func TestMachineKnowledgeBaseStatus(t *testing.T) {
	clk, fx := newClock(), newRecorder()
	c := machine(t, clk, fx)
	c.nodeStatus("edge1", online("edge1", 1))
	apply(t, c, datasetYAML)
	apply(t, c, `apiVersion: sedna.io/v1alpha1
kind: LifelongLearningJob
metadata: {name: ll}
spec:
  dataset: {name: d1}
  trainSpec:
    template: {spec: {nodeName: edge1}}
    trigger: {condition: {operator: gt, threshold: 10, metric: num_of_samples}}
  evalSpec:
    template: {spec: {nodeName: edge1}}
  deploySpec:
    template: {spec: {nodeName: edge1}}`)
	job := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: "ll"}
	e := c.res[job.String()]
	rev := topics.Revision{Created: e.rec.Created, Generation: 1}
	at := clk.t
	deploy := func(data string) {
		at = at.Add(time.Second)
		c.stageCondition(job, "edge1", topics.StageCondition{Type: "Completed", Status: api.StatusTrue, Stage: "Deploy", Time: at.UnixNano(),
			Revision: rev, Cycle: 1, Data: data})
	}
	deploy(`{"model": 3, "status": {"knowledgeBase": {"AIModels": {"numberOfAIModels": 2, "listOfAIModels": [` +
		`{"modelID": "attr:a", "averagePrecision": 0.8, "numberOfTrainSamples": 40, "accuracy": 0.75}, {"modelID": "attr:b"}]},` +
		`"AIClasses": {"numberOfAIClasses": 2}, "samples": {"numberOfLabeledUnseenSample": 7, "numberOfUnseenSample": 2}}}}`)
	kb := c.res[job.String()].status.KnowledgeBase
	if kb == nil || kb.Version != 3 || kb.AIModels.NumberOfAIModels != 2 || kb.AIModels.ListOfAIModels[0].AveragePrecision != 0.8 ||
		*kb.AIModels.ListOfAIModels[0].Accuracy != 0.75 || kb.Samples.NumberOfLabeledUnseenSample != 7 || kb.Samples.NumberOfUnseenSample != 2 {
		t.Fatalf("the status's knowledge base: %+v", kb)
	}
	deploy(`not json`)
	if got := c.res[job.String()].status.KnowledgeBase; got != kb {
		t.Fatalf("a deploy of no JSON replaced the knowledge base: %+v", got)
	}
}

// flJobReporting is a control plane with the federated job fl applied,
// its train-0 worker on edge1 running and reporting metrics.
func flJobReporting(t *testing.T, clk *clock, metrics map[string]float64) (*ControlPlane, topics.JobRef, int64) {
	t.Helper()
	c := machine(t, clk, newRecorder())
	c.nodeStatus("edge1", online("edge1", 1))
	apply(t, c, datasetYAML+"\n---\n"+flYAML)
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	created := c.res[job.String()].rec.Created
	c.workerStatus(job, api.WorkerStatus{Role: "train-0", Node: "edge1", Phase: api.WorkerRunning, Generation: 1, Created: created})
	c.workerMetrics(job, "edge1", topics.WorkerMetrics{Role: "train-0", Metrics: metrics})
	return c, job, created
}

// A worker's reported numbers stay in its row, and in the job's metrics,
// when its state changes (a restart says nothing of its numbers); a worker
// of a new revision of the job starts without the old one's.
func TestMachineWorkerMetricsOutliveStateChanges(t *testing.T) {
	clk := newClock()
	c, job, created := flJobReporting(t, clk, map[string]float64{"extCount": 42})
	clk.add(time.Second)
	c.workerStatus(job, api.WorkerStatus{Role: "train-0", Node: "edge1", Phase: api.WorkerRestarting, Generation: 1, Created: created, Restarts: 1})
	e := c.res[job.String()]
	i := slices.IndexFunc(e.status.Workers, func(w api.WorkerStatus) bool { return w.Role == "train-0" })
	if w := e.status.Workers[i]; w.Phase != api.WorkerRestarting || w.Metrics["extCount"] != 42 || e.status.Metrics["extCount"] != 42 {
		t.Fatalf("after a restart: worker %+v, job metrics %v", w, e.status.Metrics)
	}
	c.workerStatus(job, api.WorkerStatus{Role: "train-0", Node: "edge1", Phase: api.WorkerRunning, Generation: 2, Created: created})
	if w := e.status.Workers[i]; w.Metrics != nil || e.status.Metrics["extCount"] != 0 {
		t.Fatalf("a worker of a new generation: %+v, job metrics %v", w, e.status.Metrics)
	}
}

// fixedJobs is a collector of jobs' snapshots.
type fixedJobs []jobSnapshot

func (f fixedJobs) Describe(ch chan<- *prometheus.Desc) { jobCollector{}.Describe(ch) }
func (f fixedJobs) Collect(ch chan<- prometheus.Metric) { emitJobs(ch, f) }

// A job's numbers reach /metrics as its status has them: each metric of
// its workers, its phase, its workers desired and ready; Datasets are not
// jobs.
func TestJobMetricsOnPrometheus(t *testing.T) {
	c, job, _ := flJobReporting(t, newClock(), map[string]float64{"round": 3})
	reg := prometheus.NewRegistry()
	reg.MustRegister(fixedJobs(c.jobSnapshots()))
	st := c.res[job.String()].status
	want := fmt.Sprintf(`
# HELP sedna_job_metric A number of a job's status (its workers' metrics), by name.
# TYPE sedna_job_metric gauge
sedna_job_metric{job="fl",kind="FederatedLearningJob",metric="round",namespace="default"} 3
# HELP sedna_job_phase 1 for the job's phase.
# TYPE sedna_job_phase gauge
sedna_job_phase{job="fl",kind="FederatedLearningJob",namespace="default",phase=%q} 1
# HELP sedna_job_workers A job's workers: desired, and ready now.
# TYPE sedna_job_workers gauge
sedna_job_workers{job="fl",kind="FederatedLearningJob",namespace="default",state="desired"} %d
sedna_job_workers{job="fl",kind="FederatedLearningJob",namespace="default",state="ready"} %d
`, st.Phase, st.DesiredWorkers, st.ReadyWorkers)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if st.DesiredWorkers == 0 || st.Phase == "" {
		t.Fatalf("a job without workers or phase: %+v", st)
	}
}

// A node that does not answer the cloud's status request is taken to be
// offline, saying why; its next word brings it back; a node heard from
// in any way since the request (a status, a job report) stays online.
func TestMachineSilentNodesGoOffline(t *testing.T) {
	clk, fx := newClock(), newRecorder()
	c := machine(t, clk, fx)
	for _, n := range []string{"edge1", "edge2", "edge3"} {
		c.nodeStatus(n, online(n, 1))
	}
	c.nodeStatus("edge3", topics.NodeStatus{State: topics.NodeOffline, Session: 1, Reason: "stopped"})
	clk.add(time.Minute)
	asked := clk.now()
	clk.add(100 * time.Millisecond)
	c.nodeStatus("edge1", online("edge1", 1)) // its answer
	clk.add(5 * time.Second)
	c.markSilent(asked)
	state := func(n string) topics.NodeInfo {
		for _, i := range c.nodeList() {
			if i.Name == n {
				return i
			}
		}
		t.Fatalf("node %s not listed", n)
		return topics.NodeInfo{}
	}
	if i := state("edge1"); i.State != topics.NodeOnline || i.Reason != "" {
		t.Errorf("edge1 answered: %+v", i)
	}
	if i := state("edge2"); i.State != topics.NodeOffline || !strings.Contains(i.Reason, "no status from the node since the cloud asked") {
		t.Errorf("edge2 silent: %+v", i)
	}
	if c.nodes["edge2"] != topics.NodeOffline {
		t.Errorf("edge2's jobs see it %q", c.nodes["edge2"])
	}
	if i := state("edge3"); i.State != topics.NodeOffline || i.Reason != "stopped" {
		t.Errorf("edge3 offline by its word: %+v", i)
	}
	clk.add(time.Second)
	c.nodeStatus("edge2", online("edge2", 1)) // late, same session
	if i := state("edge2"); i.State != topics.NodeOnline || i.Reason != "" || i.Since != clk.now().UnixNano() {
		t.Errorf("edge2 after its late answer: %+v", i)
	}
	expect(t, "statuses change no job", fx.take(), "joined edge1 online", "joined edge2 online", "joined edge3 online")
}

// publishedBus is a cloudlink.Bus that writes down what is published and
// refuses the topics in refuse.
type publishedBus struct {
	topics   []string
	payloads [][]byte
	refuse   map[string]bool
}

func (b *publishedBus) Publish(topic string, payload []byte, _ bool, _ byte) error {
	if b.refuse[topic] {
		return fmt.Errorf("refused")
	}
	b.topics, b.payloads = append(b.topics, topic), append(b.payloads, payload)
	return nil
}

func (b *publishedBus) Subscribe(string, func(string, []byte) error) error { return nil }

func (b *publishedBus) Watch(string, func(string, []byte) error) (func() error, error) {
	return func() error { return nil }, nil
}

// A round of status requests goes to each node the cloud knows, online or
// not, on the node's own request topic (below its downlink), and to no
// other topic; each request says when it was asked and a spread of 50 µs
// per node asked. A refused publish does not stop the others.
func TestMachineAsksEachKnownNode(t *testing.T) {
	clk, fx := newClock(), newRecorder()
	c := machine(t, clk, fx)
	for _, n := range []string{"edge1", "edge.3"} {
		c.nodeStatus(n, online(n, 1))
	}
	c.nodeStatus("gone", topics.NodeStatus{State: topics.NodeOffline, Session: 1, Reason: "stopped"})
	bus := &publishedBus{refuse: map[string]bool{topics.StatusRequestTopic("edge1"): true}}
	c.cfg.Bus = bus
	a := c.statusAsk(clk.now())
	c.askStatus(a)
	want := []string{topics.StatusRequestTopic("edge.3"), topics.StatusRequestTopic("gone")}
	slices.Sort(bus.topics)
	if !slices.Equal(bus.topics, want) {
		t.Fatalf("published on %q, want %q", bus.topics, want)
	}
	if a.spread != 3*50*time.Microsecond {
		t.Errorf("spread %v for 3 nodes", a.spread)
	}
	for _, raw := range bus.payloads {
		env, err := topics.UnmarshalEnvelope(raw, topics.Limits{})
		var req topics.StatusRequest
		if err == nil {
			err = env.DecodeBody(&req)
		}
		if err != nil || env.Kind != topics.KindStatusRequest || req.Asked != clk.now().UnixNano() || req.Spread != int64(a.spread) {
			t.Errorf("request %s %+v: %v", env.Kind, req, err)
		}
	}
}
