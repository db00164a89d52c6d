package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/topics"
)

// ilCamera is a device on a node's broker that sends frames to an
// incremental learning job's inference worker and collects the answers.
type ilCamera struct {
	c      paho.Client
	topic  string
	reply  string
	mu     sync.Mutex
	got    map[string]jointinference.Result
	signal chan struct{}
}

func newILCamera(t *testing.T, addr string, ref topics.JobRef, id ...string) *ilCamera {
	t.Helper()
	cam := &ilCamera{topic: incremental.InputTopic(ref.Namespace, ref.Name), reply: "cam/" + ref.Name + "/results",
		got: map[string]jointinference.Result{}, signal: make(chan struct{}, 1)}
	cam.c = client(t, "tcp://"+addr, "camera-"+ref.Name+strings.Join(id, ""), "", true)
	cam.reply += strings.Join(id, "")
	if tok := cam.c.Subscribe(cam.reply, 1, func(_ paho.Client, m paho.Message) {
		if r, _, err := jointinference.DecodeResult(m.Payload()); err == nil {
			cam.mu.Lock()
			cam.got[r.ID] = r
			cam.mu.Unlock()
			select {
			case cam.signal <- struct{}{}:
			default:
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("camera: %v", tok.Error())
	}
	return cam
}

// send sends frames lo..hi-1 of d, at most 64 unanswered at a time, and
// returns their answers in order; every frame must be answered.
func (cam *ilCamera) send(t *testing.T, d *datasets.Dataset, lo, hi int, prefix string) []jointinference.Result {
	t.Helper()
	return cam.stream(t, lo, hi, func(i int) jointinference.Request { return drift.Request(d, i, prefix) })
}

// stream sends the requests req(lo)..req(hi-1), at most 64 unanswered at
// a time, and returns their answers in order; every one must be answered.
func (cam *ilCamera) stream(t *testing.T, lo, hi int, req func(i int) jointinference.Request) []jointinference.Result {
	t.Helper()
	answered := func(id string) bool {
		cam.mu.Lock()
		defer cam.mu.Unlock()
		_, ok := cam.got[id]
		return ok
	}
	deadline := time.After(2 * time.Minute)
	wait := func(id string) {
		for !answered(id) {
			select {
			case <-cam.signal:
			case <-deadline:
				t.Fatalf("request %s unanswered after 2 minutes", id)
			}
		}
	}
	ids := make([]string, 0, hi-lo)
	for i := lo; i < hi; i++ {
		if len(ids) >= 64 {
			wait(ids[len(ids)-64])
		}
		r := req(i)
		ids = append(ids, r.ID)
		raw, err := jointinference.EncodeRequest(r, cam.reply, "")
		if err != nil {
			t.Fatal(err)
		}
		if tok := cam.c.Publish(cam.topic, 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("camera: publish: %v", tok.Error())
		}
	}
	out := make([]jointinference.Result, 0, hi-lo)
	for _, id := range ids {
		wait(id)
		cam.mu.Lock()
		out = append(out, cam.got[id])
		cam.mu.Unlock()
	}
	return out
}

// accuracy is the share of results whose class is the frame's label.
func accuracy(rs []jointinference.Result, d *datasets.Dataset, lo int) (right float64, hard int) {
	n := 0
	for i, r := range rs {
		if r.Error != "" {
			continue
		}
		if r.Class == d.Y[lo+i] {
			n++
		}
		if r.Hard {
			hard++
		}
	}
	return float64(n) / float64(len(rs)), hard
}

// watched collects the bodies of the envelopes a topic carries, in order,
// and wakes its waiters.
type watched[T any] struct {
	mu    sync.Mutex
	all   []T
	moved chan struct{}
}

// watch subscribes a client of user to topic on the broker at url.
func watch[T any](t *testing.T, url, id, user, topic string) *watched[T] {
	t.Helper()
	l := &watched[T]{moved: make(chan struct{}, 1)}
	c := client(t, url, id, user, true)
	if tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{})
		var v T
		if err == nil && env.DecodeBody(&v) == nil {
			l.mu.Lock()
			l.all = append(l.all, v)
			l.mu.Unlock()
			select {
			case l.moved <- struct{}{}:
			default:
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return l
}

func (l *watched[T]) list() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.all...)
}

// first waits up to d for a body that ok accepts (found false: none came).
func (l *watched[T]) first(ok func(T) bool, d time.Duration) (v T, found bool) {
	deadline := time.After(d)
	for {
		for _, v := range l.list() {
			if ok(v) {
				return v, true
			}
		}
		select {
		case <-l.moved:
		case <-deadline:
			return v, false
		}
	}
}

// stageLog is a job's stage conditions as its controller publishes them
// on its node's broker.
type stageLog struct {
	*watched[topics.StageCondition]
}

func watchStages(t *testing.T, addr string, ref topics.JobRef, id ...string) stageLog {
	t.Helper()
	return stageLog{watch[topics.StageCondition](t, "tcp://"+addr, "stages-"+ref.Name+strings.Join(id, ""), "", incremental.ConditionsTopic(ref))}
}

// wait waits until a condition of cycle, stage and type is published.
func (l stageLog) wait(t *testing.T, cycle int64, stage, typ string, within time.Duration) topics.StageCondition {
	t.Helper()
	sc, ok := l.first(func(sc topics.StageCondition) bool { return sc.Cycle == cycle && sc.Stage == stage && sc.Type == typ }, within)
	if !ok {
		t.Fatalf("no %s %s in cycle %d within %v; conditions: %s", stage, typ, cycle, within, l)
	}
	return sc
}

// waitFor reports whether a condition of cycle, stage and type is
// published within d.
func (l stageLog) waitFor(cycle int64, stage, typ string, d time.Duration) bool {
	_, ok := l.first(func(sc topics.StageCondition) bool { return sc.Cycle == cycle && sc.Stage == stage && sc.Type == typ }, d)
	return ok
}

func (l stageLog) String() string {
	var b strings.Builder
	for _, sc := range l.list() {
		fmt.Fprintf(&b, "\n  cycle %d %s %s %s %s %s", sc.Cycle, sc.Stage, sc.Type, sc.Reason, sc.Message, sc.Data)
	}
	return b.String()
}

// attemptLog is the stage attempts the cloud announces for a job.
type attemptLog struct {
	*watched[incremental.AttemptEvent]
}

func watchAttempts(t *testing.T, url string, ref topics.JobRef) attemptLog {
	t.Helper()
	return attemptLog{watch[incremental.AttemptEvent](t, url, "attempts-"+ref.Name, "app", incremental.AttemptsTopic(ref))}
}

// wait waits for the end of an attempt.
func (l attemptLog) wait(t *testing.T, attempt string, within time.Duration) incremental.AttemptEvent {
	t.Helper()
	ev, ok := l.first(func(ev incremental.AttemptEvent) bool { return ev.Attempt == attempt && ev.Done }, within)
	if !ok {
		t.Fatalf("attempt %s not done within %v: %+v", attempt, within, l.list())
	}
	return ev
}

// sednaCLI runs the sedna binary as user app against the cloud at url.
func sednaCLI(t *testing.T, url string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(sednaBin, append(args, "--cloud", url, "--username", "app", "--password", password)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sedna %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

// waitStatus watches a job's status until ok holds.
func (f *flFleet) waitStatus(t *testing.T, ref topics.JobRef, what string, within time.Duration, ok func(api.Status) bool) api.Status {
	t.Helper()
	last, held := f.watchUntil(t, ref, within, ok)
	if !held {
		b, _ := json.Marshal(last)
		t.Fatalf("%s: not %s within %v; last status: %s", ref, what, within, b)
	}
	return last
}

// watchUntil watches a job's status until ok holds (true) or within ends
// (false), and returns the last status seen.
func (f *flFleet) watchUntil(t *testing.T, ref topics.JobRef, within time.Duration, ok func(api.Status) bool) (api.Status, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, within)
	defer cancel()
	var last api.Status
	for ctx.Err() == nil {
		wctx, reached := context.WithCancel(ctx)
		err := f.api.Watch(wctx, ref, func(st api.Status) {
			last = st
			if ok(st) {
				reached()
			}
		}, nil)
		reached()
		if ok(last) {
			return last, true
		}
		if err == nil {
			break
		}
		t.Logf("the watch of %s ended: %v; watching again", ref, err)
	}
	return last, false
}

// Must-shows 2 and 3 of incremental learning, over real brokers, a real
// bridge through a fault proxy and the sedna CLI: a camera on the node
// sends drifted frames, the initial model answers them and the
// CrossEntropy miner keeps the hard ones, which alone go up (bytes up
// below bytes seen, in the job's status); `sedna label list` shows every
// one of them waiting and `sedna label set` labels them; the controller
// at the node starts a cloud training, and the link is cut while it runs:
// the node answers every frame meanwhile and keeps the new hard examples,
// the cycle cannot go on, and it finishes once the link returns; each
// stage started once; the deployed version is in the registry with its
// evaluation's metrics, and answers the drifted frames better; the job,
// with stopCondition.maxCycles 1, is Completed.
func TestIncrementalLearningCycleWithTheLinkCutDuringTraining(t *testing.T) {
	f := startFLWith(t, []string{"edge1"}, flOptions{proxied: []string{"edge1"}})
	o := drift.Options{Dir: filepath.Join(f.dir, "data"), Node: "edge1", MaxCycles: 1, TrainAfter: 150, Epochs: 150}
	stream, blob := driftInitial(t, f.ctx)
	ref := f.startILJob(t, o, blob)
	edgeAddr := f.edges["edge1"].BrokerAddr()
	stages := watchStages(t, edgeAddr, ref)
	attempts := watchAttempts(t, f.cloud.BrokerURL(), ref)

	// The hard examples of 1,000 frames go up and wait for labels.
	cam := newILCamera(t, edgeAddr, ref)
	// Each hard example is announced on the job's waiting topic once the
	// cloud keeps it; then the CLI lists them.
	announced := make(chan struct{}, 4096)
	watcher := client(t, f.cloud.BrokerURL(), "waiting-"+ref.Name, "app", true)
	if tok := watcher.Subscribe(incremental.WaitingTopic(ref), 1, func(paho.Client, paho.Message) { announced <- struct{}{} }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("waiting topic: %v", tok.Error())
	}
	before, hard := accuracy(cam.send(t, stream, 0, 1000, "s"), stream, 0)
	t.Logf("initial model on 1,000 drifted frames: %.3f, %d hard", before, hard)
	if hard < o.TrainAfter {
		t.Fatalf("%d hard examples: too few for the trigger (%d)", hard, o.TrainAfter)
	}
	for n := 0; n < hard; n++ {
		select {
		case <-announced:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%d of %d hard examples announced in the cloud after 2 minutes", n, hard)
		}
	}
	var list incremental.WaitingList
	out := sednaCLI(t, f.cloud.BrokerURL(), "", "label", "list", ref.Name, "--all", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("sedna label list -o json: %v\n%s", err, out)
	}
	if list.Total != hard || len(list.Examples) != hard || list.More {
		t.Fatalf("sedna label list: %d listed of %d waiting (more %v), want the %d hard examples", len(list.Examples), list.Total, list.More, hard)
	}
	oracle := drift.Oracle(stream, "s")
	var labels strings.Builder
	for _, e := range list.Examples {
		y, ok := oracle(e.ID)
		if !ok || e.Node != "edge1" || e.Model != 1 {
			t.Fatalf("a waiting example not of the camera's frames: %+v", e)
		}
		fmt.Fprintf(&labels, "%s %d\n", e.Key, y)
	}
	if out := sednaCLI(t, f.cloud.BrokerURL(), labels.String(), "label", "set", ref.Name); strings.TrimSpace(out) != fmt.Sprintf("%d labelled", hard) {
		t.Fatalf("sedna label set: %q", out)
	}

	// The trigger holds at the node; the link goes down while the cloud
	// trains, which it finishes meanwhile: its end waits in the node's
	// downlink.
	stages.wait(t, 1, "Train", "Running", 2*time.Minute)
	f.links["edge1"].SetDown(true)
	cut := time.Now()
	during, hardDuring := accuracy(cam.send(t, stream, 1000, 1500, "s"), stream, 1000)
	t.Logf("link down: 500 frames answered at the edge (%.3f), %d hard kept", during, hardDuring)
	trained := attempts.wait(t, "1-train-1", 2*time.Minute)
	if trained.Error != "" {
		t.Fatalf("the training failed: %s", trained.Error)
	}
	for _, sc := range stages.list() {
		if sc.Stage != "Train" || sc.Type == "Completed" {
			t.Fatalf("the cycle went on while the link was down (the training took %d ms: too short to cut the link in?): %s", trained.Millis, stages)
		}
	}
	f.links["edge1"].SetDown(false)
	up := time.Now()
	st := f.waitStatus(t, ref, "completed", 5*time.Minute, func(st api.Status) bool { return st.Phase == api.ConditionCompleted })
	deployed := stages.wait(t, 1, "Deploy", "Completed", time.Minute)
	t.Logf("link down %v (the training took %d ms in the cloud meanwhile); the cycle finished %v after the link came back",
		up.Sub(cut).Round(time.Millisecond), trained.Millis, time.Since(up).Round(time.Millisecond))
	if st.Stage == nil || st.Stage.Deployed != 1 || st.Stage.Serving != 1 || !st.Stage.Done {
		t.Fatalf("stage status %+v, want one cycle deployed (version 1 of the deployed model) and done", st.Stage)
	}
	// Each stage ran once: the cloud announced one start of each.
	starts := map[incremental.Stage]int{}
	for _, ev := range attempts.list() {
		if ev.Started {
			starts[ev.Stage]++
		}
	}
	for _, s := range []incremental.Stage{incremental.Train, incremental.Eval, incremental.Deploy} {
		if starts[s] != 1 {
			t.Errorf("stage %s ran %d times in the cloud, want once: %+v", s, starts[s], attempts.list())
		}
	}
	var stageConds int
	for _, c := range st.Conditions {
		if c.Stage != "" {
			stageConds++
		}
	}
	if stageConds == 0 {
		t.Errorf("no stage condition in the job's status: %+v", st.Conditions)
	}

	// The deployed version is in the registry with its evaluation.
	var mst api.Status
	obj := objects(t, f.api, api.KindModel)["Model/default/"+o.DeployModel()]
	if err := json.Unmarshal(obj.Status, &mst); err != nil || mst.Model == nil || mst.Model.Version != 1 || mst.Model.Metrics["accuracy"] == "" ||
		mst.Model.Metrics["precision[0]"] == "" {
		t.Fatalf("the deployed model's status %s (%v): want version 1 with the evaluation's accuracy and per-class precision", obj.Status, err)
	}
	t.Logf("registered: %s version %d, accuracy %s on the eval set", o.DeployModel(), mst.Model.Version, mst.Model.Metrics["accuracy"])
	// The deployed model serves (hot update), and answers better.
	st = f.waitStatus(t, ref, "serving the deployed model", time.Minute, func(st api.Status) bool {
		return st.Metrics["hotUpdates"] >= 1 && st.Metrics["samples"] >= 1500
	})
	after, _ := accuracy(cam.send(t, stream, 1500, 2500, "s"), stream, 1500)
	t.Logf("deployed model on the next 1,000 drifted frames: %.3f (initial model %.3f); deploy condition: %s", after, before, deployed.Message)
	if after < before+0.15 {
		t.Errorf("accuracy on the drifted frames %.3f after the cycle, %.3f before: want at least 15 points better", after, before)
	}
	// Must-show 2: only hard examples left the node.
	st = f.waitStatus(t, ref, "counting 2,500 samples", time.Minute, func(st api.Status) bool { return st.Metrics["samples"] >= 2500 })
	m := st.Metrics
	t.Logf("status: %v samples, %v hard; %v bytes seen, %v bytes sent up (%.1f%%)", m["samples"], m["hardExamples"], m["bytesSeen"], m["bytesUp"],
		100*m["bytesUp"]/m["bytesSeen"])
	if m["bytesUp"] <= 0 || m["bytesUp"] >= m["bytesSeen"] || m["hardExamples"] >= m["samples"] {
		t.Errorf("bytes up %v of %v seen, %v hard of %v samples: only the hard examples should leave the node", m["bytesUp"], m["bytesSeen"],
			m["hardExamples"], m["samples"])
	}
}

// startOracle labels each hard example of a job as the cloud announces it,
// as a labelling tool would: a JSON label on the job's label topic,
// published as user app (an operator), which the broker lets through.
func startOracle(t *testing.T, url string, ref topics.JobRef, labels func(waiting []byte) ([]byte, bool), id ...string) {
	t.Helper()
	c := client(t, url, "oracle-"+ref.Name+strings.Join(id, ""), "app", true)
	if tok := c.Subscribe(incremental.WaitingTopic(ref), 1, func(cl paho.Client, m paho.Message) {
		if raw, ok := labels(m.Payload()); ok {
			cl.Publish(incremental.LabelTopic(ref), 1, false, raw) // not waited for: this runs on paho's router
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("oracle: %v", tok.Error())
	}
}

// driftInitial is the example's drifted stream and its initial model,
// encoded.
func driftInitial(t *testing.T, ctx context.Context) (*datasets.Dataset, []byte) {
	t.Helper()
	base, stream, _, _, err := drift.Data()
	if err != nil {
		t.Fatal(err)
	}
	m0, err := drift.TrainInitial(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := m0.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return stream, blob
}

// startILJob pushes the initial model, applies the example's YAML for o
// and waits until its inference worker serves.
func (f *flFleet) startILJob(t *testing.T, o drift.Options, initial []byte) topics.JobRef {
	t.Helper()
	return f.startILJobYAML(t, o, initial, drift.YAML(o))
}

// startILJobYAML is startILJob with the example's YAML as given (a
// template changed, say).
func (f *flFleet) startILJobYAML(t *testing.T, o drift.Options, initial []byte, yaml string) topics.JobRef {
	t.Helper()
	if err := drift.Write(o); err != nil {
		t.Fatal(err)
	}
	if _, err := f.api.PushModel(f.ctx, "default", o.InitialModel(), "sedna-ml", nil, bytes.NewReader(initial)); err != nil {
		t.Fatal(err)
	}
	rs, err := api.Parse([]byte(yaml), "incremental.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := f.api.Apply(f.ctx, rs); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
	ref := topics.JobRef{Kind: api.KindIncrementalLearningJob, Namespace: "default", Name: o.WithDefaults().Job}
	f.waitStatus(t, ref, "serving", 2*time.Minute, func(st api.Status) bool {
		_, serving := st.Metrics["samples"]
		return st.Phase == api.ConditionRunning && serving
	})
	return ref
}

// Must-show 4, and the time from trigger to deployed model: two jobs on
// one node see the same drifted camera, their hard examples labelled by
// an oracle on the label topic. The one whose deploy trigger asks for an
// accuracy 99 points higher keeps its initial model serving (no hot
// update; its answers as good as before), its Deploy stage Completed with
// reason NotDeployed naming the metric, its value and what it needed, in
// the job's status too, and its next cycle follows; the other deploys.
func TestIncrementalDeployTriggerThatDoesNotHold(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	f := startFLWith(t, []string{"edge1"}, flOptions{})
	stream, blob := driftInitial(t, f.ctx)
	edgeAddr := f.edges["edge1"].BrokerAddr()
	type run struct {
		ref    topics.JobRef
		stages stageLog
		cam    *ilCamera
		before float64
	}
	runs := map[string]*run{}
	for name, delta := range map[string]float64{"strict": 0.99, "usual": 0.02} {
		o := drift.Options{Job: "il-" + name, Dir: filepath.Join(f.dir, "data"), Node: "edge1", TrainAfter: 150, DeployDelta: delta}
		ref := f.startILJob(t, o, blob)
		r := &run{ref: ref, stages: watchStages(t, edgeAddr, ref), cam: newILCamera(t, edgeAddr, ref)}
		startOracle(t, f.cloud.BrokerURL(), ref, drift.Labels(stream, "s"))
		runs[name] = r
	}
	for _, r := range runs {
		r.before, _ = accuracy(r.cam.send(t, stream, 0, 1000, "s"), stream, 0)
	}
	strict, usual := runs["strict"], runs["usual"]
	missed := strict.stages.wait(t, 1, "Deploy", "Completed", 3*time.Minute)
	if missed.Reason != "NotDeployed" || !strings.Contains(missed.Message, "accuracy_delta = ") || !strings.Contains(missed.Message, "needs > 0.99") ||
		!strings.Contains(missed.Message, "keeps serving") {
		t.Fatalf("the deploy condition: %s %q, want NotDeployed naming accuracy_delta, its value and what it needed", missed.Reason, missed.Message)
	}
	t.Logf("not deployed: %s", missed.Message)
	// The next cycle (labels still arriving may have started more).
	st := f.waitStatus(t, strict.ref, "in its next cycle", time.Minute, func(st api.Status) bool {
		return st.Stage != nil && st.Stage.Cycle >= 2
	})
	if st.Stage.Deployed != 0 || st.Phase != api.ConditionRunning {
		t.Fatalf("%s: phase %s, %d deployed, want Running with none", strict.ref, st.Phase, st.Stage.Deployed)
	}
	var inStatus bool
	for _, c := range st.Conditions {
		if c.Stage == "Deploy" && c.Type == "Completed" && c.Reason == "NotDeployed" && c.Message == missed.Message {
			inStatus = true
		}
	}
	if !inStatus {
		t.Fatalf("the NotDeployed condition is not in the job's status: %+v", st.Conditions)
	}
	// The usual job deploys; its trigger's hold to its model deployed, on
	// the node's clock.
	deployed := usual.stages.wait(t, 1, "Deploy", "Completed", 3*time.Minute)
	held := usual.stages.wait(t, 1, "Train", "Ready", time.Second)
	t.Logf("usual job: trigger held to model deployed in %v", time.Duration(deployed.Time-held.Time).Round(time.Millisecond))
	// The strict job's initial model serves on: no hot update, the same
	// answers' quality on the next frames.
	again, _ := accuracy(strict.cam.send(t, stream, 1000, 2000, "s"), stream, 1000)
	st = f.waitStatus(t, strict.ref, "counting 2,000 samples", time.Minute, func(st api.Status) bool { return st.Metrics["samples"] >= 2000 })
	if st.Metrics["hotUpdates"] != 0 || again > strict.before+0.05 {
		t.Errorf("the strict job's model changed: %v hot updates, accuracy %.3f then %.3f", st.Metrics["hotUpdates"], strict.before, again)
	}
	t.Logf("strict job: %.3f before the cycle, %.3f after (the initial model serves on)", strict.before, again)
}

// Must-show 5: `sedna edge`, then `sedna cloud`, SIGKILLed in each stage
// of a cycle and restarted at once. To kill in a stage that lasts
// milliseconds, the node's link (a fault proxy) is cut the moment its
// controller reports the stage Starting: the job cannot leave the stage
// until the link returns, after the restart. Every cycle still completes,
// each of its stages with one attempt completed once (the same attempt id
// across the kill: the stage resumed, it never ran again from the start),
// and the job ends after its six cycles. The table of the stage killed in
// and the first condition after the restart is in the test's log and
// docs/BENCHMARKS.md.
func TestIncrementalKilledInEachStage(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	url := "tcp://" + addr
	cloudArgs := []string{"cloud", "--listen", addr, "--data", filepath.Join(dir, "cloud"), "--credentials", writeCredentials(t, dir),
		"--metrics", "off", "--log-level", "warn"}
	cp := startProc(t, cloudArgs...)
	link := proxyTo(t, url)
	edgeAddr := freeAddr(t)
	edgeArgs := edgeArgs("edge1", filepath.Join(dir, "edge1"), "tcp://"+link.Addr())
	for i, a := range edgeArgs {
		if a == "127.0.0.1:0" {
			edgeArgs[i] = edgeAddr
		}
	}
	ep := startProc(t, edgeArgs...)
	waitJoined(t, url, "edge1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f := &flFleet{dir: dir, ctx: ctx, api: apiClient(t, url)}

	stream, blob := driftInitial(t, ctx)
	plan := []struct{ side, stage string }{{"edge", "Train"}, {"edge", "Eval"}, {"edge", "Deploy"}, {"cloud", "Train"}, {"cloud", "Eval"}, {"cloud", "Deploy"}}
	// Every model is deployed (accuracy_delta > -1): each cycle reaches
	// its Deploy stage.
	o := drift.Options{Dir: filepath.Join(dir, "data"), Node: "edge1", TrainAfter: 100, DeployDelta: -1, MaxCycles: len(plan)}
	ref := f.startILJob(t, o, blob)
	labels := drift.Labels(stream, "s")

	completed := func(st api.Status, attempt string) bool {
		for _, c := range st.Conditions {
			if c.Stage != "" && c.Type == "Completed" && c.Message == "attempt "+attempt {
				return true
			}
		}
		return false
	}
	var table strings.Builder
	for k, p := range plan {
		cycle := int64(k + 1)
		id := fmt.Sprint(k)
		stages := watchStages(t, edgeAddr, ref, id)
		// The inference worker answers (after a restart of the node, once
		// it is back): a probe frame until one is answered.
		cam := newILCamera(t, edgeAddr, ref, id)
		cam.probe(t, stream)
		startOracle(t, url, ref, labels, id)
		// Frames until the stage to kill in starts (the better the model,
		// the fewer of them are hard: the trigger needs more).
		for sent := 0; ; sent += 200 {
			if sent >= 2600 {
				t.Fatalf("cycle %d: %s never started after %d frames: %s", cycle, p.stage, sent, stages)
			}
			cam.send(t, stream, 2600*k+sent, 2600*k+sent+200, "s")
			if stages.waitFor(cycle, p.stage, "Starting", 20*time.Second) {
				break
			}
		}
		link.SetDown(true)
		seen := stages.list()
		last := seen[len(seen)-1]
		killed := time.Now()
		if p.side == "edge" {
			ep.kill()
			ep = startProc(t, edgeArgs...)
		} else {
			cp.kill()
			cp = startProc(t, cloudArgs...)
		}
		link.SetDown(false)
		restarted := time.Now()
		if p.side == "cloud" {
			f.api = apiClient(t, url)
		}
		st := f.waitStatus(t, ref, "cycle done", 3*time.Minute, func(st api.Status) bool { return completed(st, fmt.Sprintf("%d-deploy-1", cycle)) })
		first := "-"
		for _, c := range st.Conditions {
			if c.Stage != "" && c.LastTransitionTime.After(killed) {
				first = fmt.Sprintf("%s %s %s", c.Stage, c.Type, c.Message)
				break
			}
		}
		row := fmt.Sprintf("| %s | %s | %s %s %s | %s | %v |", p.side, p.stage, last.Stage, last.Type, last.Message, first,
			time.Since(restarted).Round(10*time.Millisecond))
		t.Logf("cycle %d: %s", cycle, row)
		table.WriteString("\n" + row)
		// Each stage of the cycle: one attempt, completed once.
		for _, stage := range []string{"Train", "Eval", "Deploy"} {
			n, retried := 0, false
			for _, c := range st.Conditions {
				if c.Stage == stage && c.Type == "Completed" && strings.HasPrefix(c.Message, fmt.Sprintf("attempt %d-", cycle)) {
					n++
				}
				if c.Stage == stage && strings.HasSuffix(c.Message, fmt.Sprintf("%d-%s-2", cycle, strings.ToLower(stage))) {
					retried = true
				}
			}
			if n != 1 || retried {
				t.Errorf("cycle %d (%s killed in %s): stage %s completed %d times, a second attempt: %v; conditions: %+v", cycle, p.side, p.stage,
					stage, n, retried, st.Conditions)
			}
		}
	}
	st := f.waitStatus(t, ref, "completed", time.Minute, func(st api.Status) bool { return st.Phase == api.ConditionCompleted })
	t.Logf("each kill, the condition the node had reported last, the first one after the restart, the time to the cycle's end:\n| killed | in | last condition before | first condition after | cycle done after |\n|---|---|---|---|---|%s", table.String())
	if st.Stage == nil || st.Stage.Deployed != int64(len(plan)) {
		t.Errorf("stage status %+v, want %d cycles deployed", st.Stage, len(plan))
	}
}

// probe sends probe frames until one is answered: the inference worker
// serves.
func (cam *ilCamera) probe(t *testing.T, d *datasets.Dataset) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for i := 0; ; i++ {
		raw, err := jointinference.EncodeRequest(drift.Request(d, i, "probe"), cam.reply, "")
		if err != nil {
			t.Fatal(err)
		}
		if tok := cam.c.Publish(cam.topic, 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("camera: publish: %v", tok.Error())
		}
		select {
		case <-cam.signal:
			return
		case <-time.After(time.Second): // not subscribed yet: that frame is gone, send another
		case <-deadline:
			t.Fatal("the inference worker answers no probe within 2 minutes")
		}
	}
}
