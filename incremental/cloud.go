package incremental

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Cloud is the cloud half of incremental learning: it keeps the hard
// examples the nodes send until they are labelled, grows each job's train
// and eval sets with the labelled ones (split by trainProb), and runs the
// stages the jobs' controllers ask for: Train (fine-tune the serving model
// with replay), Eval (candidate against serving on the eval set), Deploy
// (register the candidate as a version of the deploy model, which the
// model distribution then brings to the inference node). Each attempt's
// request and result are stored: a request sent again is answered with
// the stored result, and an attempt cut by a restart runs again.
type Cloud struct {
	fl    Flavour
	env   paradigm.Env
	ctx   context.Context
	stop  context.CancelFunc
	mu    sync.Mutex
	jobs  map[string]*cloudJob // by job key
	stops []func() error
	wg    sync.WaitGroup
	// remote are the attempts run on edge nodes, waiting for their
	// result (by job key/attempt); results puts the results' parts
	// together.
	remote  map[string]chan workResult
	results *assembler
	// local are the cloud's drivers of external train and eval workers
	// (by job key/stage); localChanged is closed when one comes or goes.
	local        map[string]chan localWork
	localChanged chan struct{}
}

// cloudJob is a job's runner: one attempt at a time, in order.
type cloudJob struct {
	ref  topics.JobRef
	spec *job
	work chan string // attempts to run
}

// cloudState is a job's state in the cloud's store.
type cloudState struct {
	// Controller is the node whose controller runs the job (the node of
	// its Dataset): labelled counts and stage reports go there.
	Controller string `msgpack:"ctl"`
	// Labelled numbers the labelled examples.
	Labelled uint64 `msgpack:"labelled"`
	// TrainedUpTo is the last labelled example the last successful
	// training saw.
	TrainedUpTo uint64 `msgpack:"trained"`
}

type runRecord struct {
	Node   string       `msgpack:"node"`
	Req    runRequest   `msgpack:"req"`
	Report *stageReport `msgpack:"report,omitempty"`
}

func jobKey(r topics.JobRef) string { return r.Namespace + "/" + r.Name }

func stateKeyOf(job string) []byte { return []byte("n/" + job) }
func waitKey(job, key string) []byte {
	return []byte("w/" + job + "/" + key)
}
func setKey(job string, train bool, seq uint64) []byte {
	set := "eval"
	if train {
		set = "train"
	}
	return binary.BigEndian.AppendUint64([]byte("x/"+job+"/"+set+"/"), seq)
}
func runKey(job, attempt string) []byte { return []byte("r/" + job + "/" + attempt) }
func candidateBlob(job string, cycle int64) string {
	return "cand/" + job + "/" + strconv.FormatInt(cycle, 10)
}

// NewCloud subscribes to the nodes' hard examples and stage requests, the
// jobs' labels and specs, for incremental learning jobs.
func NewCloud(env paradigm.Env) (*Cloud, error) { return Incremental.NewCloud(env) }

// NewCloud is the cloud's half of the flavour's jobs.
func (fl Flavour) NewCloud(env paradigm.Env) (*Cloud, error) {
	env.Log = env.Logger()
	ctx, stop := context.WithCancel(context.Background())
	c := &Cloud{fl: fl, env: env, ctx: ctx, stop: stop, jobs: map[string]*cloudJob{}, local: map[string]chan localWork{}, localChanged: make(chan struct{})}
	all := topics.JobRef{Kind: fl.Kind, Namespace: "+", Name: "+"}
	for _, s := range []struct {
		filter string
		fn     func(paradigm.Message) error
	}{
		{topics.JobSpec(all), c.onSpec},
		{topics.NodeJobsFilter(fl.Kind, "examples"), c.onExamples},
		{topics.NodeJobsFilter(fl.Kind, "run"), c.onRun},
		{LabelTopic(all), c.onLabel},
		{topics.NodeJobsFilter(fl.Kind, "work"), c.onWork},
	} {
		st, err := env.Bus.Subscribe(s.filter, s.fn)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("incremental: subscribe %s: %w", s.filter, err)
		}
		c.stops = append(c.stops, st)
	}
	return c, nil
}

// Close ends the subscriptions and the runners.
func (c *Cloud) Close() {
	for _, st := range c.stops {
		_ = st()
	}
	c.stops = nil
	c.stop()
	c.wg.Wait()
}

// onSpec starts a job's runner (which first runs the attempts a restart
// cut), or forgets a deleted job and its stored data.
func (c *Cloud) onSpec(m paradigm.Message) error {
	p, err := topics.Parse(m.Topic)
	if err != nil {
		return nil
	}
	ref := p.Job
	key := jobKey(ref)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m.Payload) == 0 {
		if j := c.jobs[key]; j != nil {
			close(j.work)
			delete(c.jobs, key)
		}
		c.forget(key)
		return nil
	}
	var s topics.Spec
	if err := decode(m.Payload, topics.KindSpec, &s); err != nil {
		c.env.Log.Warn(c.fl.Source+": a job's spec refused", "topic", m.Topic, "error", err)
		return nil
	}
	if s.Deleted {
		return nil
	}
	spec, err := jobOf(c.fl, ref, s.Data)
	if err != nil {
		c.env.Log.Warn(c.fl.Source+": a job's spec refused", "job", key, "error", err)
		return nil
	}
	if j := c.jobs[key]; j != nil {
		j.spec = spec
		return nil
	}
	j := &cloudJob{ref: ref, spec: spec, work: make(chan string, 64)}
	c.jobs[key] = j
	c.wg.Add(1)
	go c.runner(j)
	// Attempts asked for before a restart and not finished run again.
	_ = c.env.Store.Scan([]byte("r/"+key+"/"), nil, func(_, v []byte) error {
		var rec runRecord
		if msgpack.Unmarshal(v, &rec) == nil && rec.Report == nil {
			select {
			case j.work <- rec.Req.Attempt:
			default:
			}
		}
		return nil
	})
	return nil
}

// forget deletes a deleted job's examples, sets, runs and candidates (one
// per cycle a Train attempt was asked for).
func (c *Cloud) forget(key string) {
	var b store.Batch
	cycles := map[int64]bool{}
	for _, prefix := range []string{"w/", "x/", "r/"} {
		_ = c.env.Store.Scan([]byte(prefix+key+"/"), nil, func(k, v []byte) error {
			b.Delete(append([]byte(nil), k...))
			var rec runRecord
			if prefix == "r/" && msgpack.Unmarshal(v, &rec) == nil && rec.Req.Stage == Train {
				cycles[rec.Req.Input.Cycle] = true
			}
			return nil
		})
	}
	b.Delete(stateKeyOf(key))
	for cycle := range cycles {
		if err := store.DeleteBlob(c.env.Store, candidateBlob(key, cycle)); err != nil {
			c.env.Log.Warn(c.fl.Source+": a deleted job's candidate not removed", "job", key, "cycle", cycle, "error", err)
		}
	}
	if err := c.env.Store.Write(&b); err != nil {
		c.env.Log.Warn(c.fl.Source+": a deleted job's data not removed", "job", key, "error", err)
	}
}

func (c *Cloud) state(key string) (cloudState, error) {
	var st cloudState
	raw, err := c.env.Store.Get(stateKeyOf(key))
	if errors.Is(err, store.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	return st, msgpack.Unmarshal(raw, &st)
}

// onExamples keeps a node's hard examples until they are labelled, and
// announces each on the job's waiting topic.
func (c *Cloud) onExamples(m paradigm.Message) error {
	p, err := topics.Parse(m.Topic)
	if err != nil || p.Class != topics.ClassNodeJob {
		return nil
	}
	var batch exampleBatch
	if err := decode(m.Payload, KindExamples, &batch); err != nil {
		c.env.Log.Warn(c.fl.Source+": hard examples refused", "node", p.Node, "error", err)
		return nil
	}
	key := jobKey(p.Job)
	var b store.Batch
	var waiting []WaitingExample
	for _, e := range batch.Examples {
		w := WaitingExample{Key: fmt.Sprintf("%s/%d", p.Node, e.Seq), ID: e.ID, Node: p.Node, Shape: e.Shape, DType: e.DType, Data: e.Data, Model: e.Model, Attr: e.Attr}
		raw, err := msgpack.Marshal(w)
		if err != nil {
			return nil
		}
		b.Put(waitKey(key, w.Key), raw)
		waiting = append(waiting, w)
	}
	if err := c.env.Store.Write(&b); err != nil {
		return fmt.Errorf("incremental: hard examples not stored: %w", err) // redelivered
	}
	for _, w := range waiting {
		if raw, err := topics.Encode(KindWaiting, "incremental/cloud", w); err == nil {
			_ = c.env.Bus.Publish(WaitingTopic(p.Job), raw, false, 1)
		}
	}
	return nil
}

// Waiting lists a job's hard examples that wait for a label, in key
// order, at most limit (0: all).
func (c *Cloud) Waiting(ref topics.JobRef, limit int) ([]WaitingExample, error) {
	l, err := c.waitingList(ref, WaitingRequest{Limit: limit}, limit == 0)
	return l.Examples, err
}

// waitingList answers a WaitingRequest; all lists every example whatever
// its size.
func (c *Cloud) waitingList(ref topics.JobRef, req WaitingRequest, all bool) (WaitingList, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultWaitingLimit
	}
	prefix := []byte("w/" + jobKey(ref) + "/")
	var l WaitingList
	size := 0
	err := c.env.Store.Scan(prefix, nil, func(k, v []byte) error {
		l.Total++
		if req.After != "" && string(k[len(prefix):]) <= req.After {
			return nil
		}
		if !all && (len(l.Examples) >= limit || size+len(v) > MaxWaitingBytes) {
			l.More = true
			return nil
		}
		var w WaitingExample
		if err := msgpack.Unmarshal(v, &w); err != nil {
			return fmt.Errorf("a waiting example %s: %w", k, err)
		}
		l.Examples = append(l.Examples, w)
		size += len(v)
		return nil
	})
	return l, err
}

// ops are the operations users may ask of the cloud half (Half.Ops).
func (c *Cloud) ops() map[string]paradigm.Op {
	return map[string]paradigm.Op{
		OpWaiting: func(_ context.Context, ref topics.JobRef, body []byte) ([]byte, error) {
			var req WaitingRequest
			if len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, &req); err != nil {
					return nil, fmt.Errorf("a waiting request: %w", err)
				}
			}
			l, err := c.waitingList(ref, req, false)
			if err != nil {
				return nil, err
			}
			return json.Marshal(l)
		},
		OpLabel: func(_ context.Context, ref topics.JobRef, body []byte) ([]byte, error) {
			var ls []Label
			if err := json.Unmarshal(body, &ls); err != nil {
				return nil, fmt.Errorf("labels: want a JSON list of {\"key\": ..., \"label\": ...}: %w", err)
			}
			for _, l := range ls { // all or nothing: checked before any is taken
				if l.Label < 0 {
					return nil, fmt.Errorf("label %d of %s: a class is not negative", l.Label, l.Key)
				}
				if l.Key == "" {
					return nil, errors.New("a label without a key")
				}
			}
			var res LabelResult
			var last *cloudState
			for _, l := range ls {
				st, err := c.label(jobKey(ref), l)
				if err != nil {
					return nil, err
				}
				if st == nil {
					res.NotWaiting = append(res.NotWaiting, l.Key)
					continue
				}
				res.Labelled++
				last = st
			}
			if last != nil {
				c.tell(ref, *last)
			}
			return json.Marshal(res)
		},
	}
}

// onLabel moves a labelled example into the job's train or eval set and
// tells the job's controller how many it has.
func (c *Cloud) onLabel(m paradigm.Message) error {
	p, err := topics.Parse(m.Topic)
	if err != nil {
		return nil
	}
	var l Label
	if len(m.Payload) > 0 && m.Payload[0] == '{' {
		err = json.Unmarshal(m.Payload, &l)
	} else {
		err = decode(m.Payload, KindLabel, &l)
	}
	if err == nil && (l.Label < 0 || l.Key == "") {
		err = fmt.Errorf("label %d of %q: want a key and a class that is not negative", l.Label, l.Key)
	}
	if err != nil {
		c.env.Log.Warn(c.fl.Source+": a label refused", "topic", m.Topic, "error", err)
		return nil
	}
	key := jobKey(p.Job)
	st, err := c.label(key, l)
	if err != nil || st == nil {
		return err
	}
	c.tell(p.Job, *st) // not under the lock: a bus may deliver at once
	return nil
}

// label moves the example l labels from the waiting ones to a set; nil
// when it was not waiting.
func (c *Cloud) label(key string, l Label) (*cloudState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	raw, err := c.env.Store.Get(waitKey(key, l.Key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // labelled already, or never seen
	}
	if err != nil {
		return nil, err
	}
	var w WaitingExample
	if err := msgpack.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("a waiting example: %w", err)
	}
	st, err := c.state(key)
	if err != nil {
		return nil, err
	}
	trainProb := 0.8
	if j := c.jobs[key]; j != nil {
		trainProb = j.spec.trainProb
	}
	st.Labelled++
	e := Example{Key: w.Key, Shape: w.Shape, DType: w.DType, Data: w.Data, Label: l.Label, Boxes: l.Boxes, Seq: st.Labelled, Attr: w.Attr}
	ev, err := msgpack.Marshal(e)
	if err != nil {
		return nil, err
	}
	sv, _ := msgpack.Marshal(st)
	var b store.Batch
	b.Delete(waitKey(key, l.Key))
	b.Put(setKey(key, InTrainSet(w.Key, trainProb), e.Seq), ev)
	b.Put(stateKeyOf(key), sv)
	if err := c.env.Store.Write(&b); err != nil {
		return nil, err
	}
	return &st, nil
}

// tell sends the job's controller the count of labelled examples.
func (c *Cloud) tell(ref topics.JobRef, st cloudState) {
	if st.Controller == "" {
		return // told when the controller first asks for a stage
	}
	raw, err := topics.Encode(KindLabelled, "incremental/cloud", labelledCount{Total: int64(st.Labelled)})
	if err != nil {
		return
	}
	_ = c.env.Bus.Send(paradigm.Outbound{Node: st.Controller, Topic: topics.ToNodeJob(st.Controller, ref, "labelled"), Payload: raw})
}

// onRun takes a controller's request for a stage's attempt (the first
// request of a controller is a hello: no attempt).
func (c *Cloud) onRun(m paradigm.Message) error {
	p, err := topics.Parse(m.Topic)
	if err != nil || p.Class != topics.ClassNodeJob {
		return nil
	}
	var req runRequest
	if err := decode(m.Payload, KindRun, &req); err != nil {
		c.env.Log.Warn(c.fl.Source+": a stage request refused", "node", p.Node, "error", err)
		return nil
	}
	key := jobKey(p.Job)
	st, done, err := c.take(p.Node, key, req)
	if err != nil {
		return err
	}
	// Not under the lock: a bus may deliver at once.
	switch {
	case req.Attempt == "":
		c.tell(p.Job, st)
	case done != nil:
		c.report(p.Job, p.Node, *done) // asked again: the same answer
	}
	return nil
}

// take records a stage request (and where its controller is) and hands a
// new one to the job's runner; done is the stored report of one that ran.
func (c *Cloud) take(node, key string, req runRequest) (st cloudState, done *stageReport, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, err = c.state(key); err != nil {
		return st, nil, err
	}
	if st.Controller != node {
		st.Controller = node
		raw, _ := msgpack.Marshal(st)
		var b store.Batch
		b.Put(stateKeyOf(key), raw)
		if err := c.env.Store.Write(&b); err != nil {
			return st, nil, err
		}
	}
	if req.Attempt == "" {
		return st, nil, nil
	}
	raw, err := c.env.Store.Get(runKey(key, req.Attempt))
	switch {
	case err == nil:
		var rec runRecord
		if err := msgpack.Unmarshal(raw, &rec); err != nil {
			return st, nil, fmt.Errorf("a stored attempt: %w", err)
		}
		if rec.Report != nil {
			return st, rec.Report, nil
		}
		return st, nil, nil // running, or queued
	case errors.Is(err, store.ErrNotFound):
		rec, _ := msgpack.Marshal(runRecord{Node: node, Req: req})
		var b store.Batch
		b.Put(runKey(key, req.Attempt), rec)
		if err := c.env.Store.Write(&b); err != nil {
			return st, nil, err
		}
	default:
		return st, nil, err
	}
	if j := c.jobs[key]; j != nil {
		select {
		case j.work <- req.Attempt:
		default: // full: the attempt is stored and runs at the next start
		}
	}
	return st, nil, nil
}

func (c *Cloud) report(ref topics.JobRef, node string, r stageReport) {
	raw, err := topics.Encode(KindStage, "incremental/cloud", r)
	if err != nil {
		return
	}
	if err := c.env.Bus.Send(paradigm.Outbound{Node: node, Topic: topics.ToNodeJob(node, ref, "stage"), Payload: raw}); err != nil {
		c.env.Log.Warn(c.fl.Source+": a stage report not queued", "job", ref.String(), "error", err)
	}
}

// runner runs a job's attempts one at a time.
func (c *Cloud) runner(j *cloudJob) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case attempt, ok := <-j.work:
			if !ok {
				return
			}
			c.runAttempt(j, attempt)
		}
	}
}

func (c *Cloud) runAttempt(j *cloudJob, attempt string) {
	key := jobKey(j.ref)
	raw, err := c.env.Store.Get(runKey(key, attempt))
	if err != nil {
		return
	}
	var rec runRecord
	if msgpack.Unmarshal(raw, &rec) != nil || rec.Report != nil {
		return
	}
	c.mu.Lock()
	spec := j.spec
	c.mu.Unlock()
	c.report(j.ref, rec.Node, stageReport{Attempt: attempt, Started: true})
	c.announce(j.ref, AttemptEvent{Attempt: attempt, Stage: rec.Req.Stage, Node: rec.Node, Started: true})
	t0 := time.Now()
	out, err := c.run(spec, rec.Req)
	if c.ctx.Err() != nil {
		return // stopped: the attempt runs again at the next start
	}
	rep := stageReport{Attempt: attempt, Done: true, Output: out}
	if err != nil {
		rep = stageReport{Attempt: attempt, Done: true, Error: err.Error()}
		c.env.Log.Warn(c.fl.Source+": a stage failed", "job", j.ref.String(), "attempt", attempt, "error", err)
	} else {
		c.env.Log.Info(c.fl.Source+": a stage done", "job", j.ref.String(), "attempt", attempt, "took", time.Since(t0).Round(time.Millisecond))
	}
	rec.Report = &rep
	enc, _ := msgpack.Marshal(rec)
	var b store.Batch
	b.Put(runKey(key, attempt), enc)
	if err := c.env.Store.Write(&b); err != nil {
		c.env.Log.Warn(c.fl.Source+": a stage's result not stored", "job", j.ref.String(), "attempt", attempt, "error", err)
	}
	c.report(j.ref, rec.Node, rep)
	c.announce(j.ref, AttemptEvent{Attempt: attempt, Stage: rec.Req.Stage, Node: rec.Node, Done: true, Error: rep.Error, Output: rep.Output,
		Millis: time.Since(t0).Milliseconds()})
}

// announce publishes an attempt's start or end on the job's attempts
// topic in the cloud, for whoever watches (each attempt runs once: its
// start is announced once).
func (c *Cloud) announce(ref topics.JobRef, ev AttemptEvent) {
	if raw, err := topics.Encode(KindAttempt, "incremental/cloud", ev); err == nil {
		_ = c.env.Bus.Publish(AttemptsTopic(ref), raw, false, 1)
	}
}

// run does one attempt of a stage.
func (c *Cloud) run(j *job, req runRequest) (Output, error) {
	var tmpl api.PodTemplate
	switch req.Stage {
	case Train:
		tmpl = j.spec.TrainTemplate
	case Eval:
		tmpl = j.spec.EvalTemplate
	}
	node := tmpl.Spec.NodeName
	if node == c.env.Node {
		node = "" // the cloud's own
	}
	switch req.Stage {
	case Train:
		return c.train(j, req.Attempt, req.Input, tmpl, node)
	case Eval:
		return c.eval(j, req.Attempt, req.Input, tmpl, node)
	case Deploy:
		return c.deployCandidate(j, req.Input)
	}
	return Output{}, fmt.Errorf("unknown stage %q", req.Stage)
}

// serving returns the serving model and its encoding: the deploy model's
// newest version once one was deployed, the initial model's before.
func (c *Cloud) serving(j *job, version uint64) ([]byte, paradigm.ModelInfo, error) {
	name := j.initial
	if version > 0 {
		name = j.deploy
	}
	if name == "" {
		return nil, paradigm.ModelInfo{}, nil // no model yet: the first training starts from none
	}
	v, data, err := c.env.Models.Latest(j.ref.Namespace, name, 0)
	if err != nil {
		return nil, paradigm.ModelInfo{}, fmt.Errorf("model %s: %w", name, err)
	}
	info, err := paradigm.DescribeModel(c.env.Models, j.ref.Namespace, name, v)
	if err != nil {
		return nil, paradigm.ModelInfo{}, fmt.Errorf("model %s: %w", name, err)
	}
	return data, info, nil
}

// examples reads a job's train or eval set.
func (c *Cloud) examples(job string, train bool, fn func(Example) error) error {
	prefix := setKey(job, train, 0)
	prefix = prefix[:len(prefix)-8]
	return c.env.Store.Scan(prefix, nil, func(_, v []byte) error {
		var e Example
		if err := msgpack.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("a stored example: %w", err)
		}
		return fn(e)
	})
}

// train fine-tunes the serving model on the job's train set, in the
// cloud or on node (the template's placement, "" for the cloud).
func (c *Cloud) train(j *job, attempt string, in Input, tmpl api.PodTemplate, node string) (Output, error) {
	key := jobKey(j.ref)
	params := map[string]string{}
	if len(tmpl.Spec.Containers) > 0 {
		for _, e := range tmpl.Spec.Containers[0].Env {
			params[e.Name] = e.Value
		}
	}
	fit, err := FitOf(params)
	if err != nil {
		return Output{}, err
	}
	fit.Seed = uint64(in.Cycle)
	baseBlob, baseInfo, err := c.serving(j, in.Serving)
	if err != nil {
		return Output{}, err
	}
	learner, err := j.learner(c.env)
	if err != nil {
		return Output{}, err
	}
	c.mu.Lock()
	st, err := c.state(key)
	c.mu.Unlock()
	if err != nil {
		return Output{}, err
	}
	var set TrainSet
	var upTo uint64
	if err := c.examples(key, true, func(e Example) error {
		if e.Seq <= st.TrainedUpTo {
			set.Old = append(set.Old, e)
		} else {
			set.New = append(set.New, e)
		}
		upTo = max(upTo, e.Seq)
		return nil
	}); err != nil {
		return Output{}, err
	}
	var blob []byte
	if node != "" || commanded(tmpl) {
		res, err := c.execute(j, node, workOrder{Attempt: attempt, Stage: Train, Task: j.task, Base: baseBlob, BaseInfo: baseInfo, Set: set, Fit: fit})
		if err != nil {
			return Output{}, err
		}
		if err := learner.Fits(baseBlob, res.Model, baseInfo); err != nil {
			return Output{}, fmt.Errorf("the candidate %s trained: %w", where(node), err)
		}
		blob = res.Model
	} else {
		if blob, err = learner.Learn(c.ctx, baseBlob, set, fit); err != nil {
			return Output{}, err
		}
	}
	if _, err := store.PutBlob(c.env.Store, candidateBlob(key, in.Cycle), bytes.NewReader(blob), 0); err != nil {
		return Output{}, fmt.Errorf("the candidate not stored: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, err = c.state(key); err != nil {
		return Output{}, err
	}
	st.TrainedUpTo = max(st.TrainedUpTo, upTo)
	raw, _ := msgpack.Marshal(st)
	var b store.Batch
	b.Put(stateKeyOf(key), raw)
	if err := c.env.Store.Write(&b); err != nil {
		return Output{}, err
	}
	return Output{Model: uint64(in.Cycle)}, nil
}

func (c *Cloud) candidate(job string, cycle uint64) ([]byte, error) {
	r, err := store.OpenBlob(c.env.Store, candidateBlob(job, int64(cycle)))
	if err != nil {
		return nil, fmt.Errorf("the candidate of cycle %d: %w", cycle, err)
	}
	return io.ReadAll(r)
}

// eval scores the candidate and the serving model on the job's eval set,
// in the cloud or on node.
func (c *Cloud) eval(j *job, attempt string, in Input, tmpl api.PodTemplate, node string) (Output, error) {
	key := jobKey(j.ref)
	candBlob, err := c.candidate(key, in.Model)
	if err != nil {
		return Output{}, err
	}
	baseBlob, baseInfo, err := c.serving(j, in.Serving)
	if err != nil {
		return Output{}, err
	}
	learner, err := j.learner(c.env)
	if err != nil {
		return Output{}, err
	}
	var set []Example
	if err := c.examples(key, false, func(e Example) error { set = append(set, e); return nil }); err != nil {
		return Output{}, err
	}
	if node != "" || commanded(tmpl) {
		res, err := c.execute(j, node, workOrder{Attempt: attempt, Stage: Eval, Task: j.task, Base: baseBlob, BaseInfo: baseInfo, Candidate: candBlob, Eval: set})
		if err != nil {
			return Output{}, err
		}
		return Output{Eval: res.Eval, Base: res.Base}, nil
	}
	got, err := learner.Score(candBlob, baseInfo, set)
	if err != nil {
		return Output{}, err
	}
	was := Metrics{}
	if baseBlob != nil {
		if was, err = learner.Score(baseBlob, baseInfo, set); err != nil {
			return Output{}, err
		}
	}
	return Output{Eval: got, Base: was}, nil
}

// evaluated is the cycle's evaluation of its candidate (the last attempt
// of its Eval that succeeded), as a registered version's metrics: each
// value by name, a per-class one as name[i]; nil when there is none.
func (c *Cloud) evaluated(j *job, cycle int64) map[string]string {
	var eval Metrics
	_ = c.env.Store.Scan([]byte(fmt.Sprintf("r/%s/%d-eval-", jobKey(j.ref), cycle)), nil, func(_, v []byte) error {
		var rec runRecord
		if msgpack.Unmarshal(v, &rec) == nil && rec.Report != nil && rec.Report.Error == "" && rec.Report.Output.Eval != nil {
			eval = rec.Report.Output.Eval
		}
		return nil
	})
	if eval == nil {
		return nil
	}
	out := map[string]string{}
	for name, vs := range eval {
		if len(vs) == 1 {
			out[name] = num(vs[0])
			continue
		}
		for i, v := range vs {
			out[fmt.Sprintf("%s[%d]", name, i)] = num(v)
		}
	}
	return out
}

func (c *Cloud) deployCandidate(j *job, in Input) (Output, error) {
	data, err := c.candidate(jobKey(j.ref), in.Model)
	if err != nil {
		return Output{}, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	source := fmt.Sprintf("%s cycle %d", strings.TrimPrefix(j.ref.String(), j.fl.Kind+"/"), in.Cycle)
	// The format and declarations are the deploy Model's (a candidate of
	// the learning substrate's format is told by its bytes).
	format := ""
	if ml.IsSedna(data) {
		format = api.FormatSedna
	}
	v, err := c.env.Models.Register(ctx, j.ref.Namespace, j.deploy, format, source, c.evaluated(j, in.Cycle), data)
	if err != nil {
		return Output{}, fmt.Errorf("model %s not registered: %w", j.deploy, err)
	}
	out := Output{Model: v}
	learner, err := j.learner(c.env)
	if err != nil {
		return Output{}, err
	}
	if d, ok := learner.(Describer); ok {
		key := jobKey(j.ref)
		c.mu.Lock()
		st, err := c.state(key)
		c.mu.Unlock()
		if err != nil {
			return Output{}, err
		}
		var waiting int64
		if err := c.env.Store.Scan(waitKey(key, ""), nil, func(_, _ []byte) error { waiting++; return nil }); err != nil {
			return Output{}, err
		}
		if out.Status, err = d.Describe(data, int64(st.Labelled), waiting); err != nil {
			return Output{}, fmt.Errorf("the deployed model not described: %w", err)
		}
	}
	return out, nil
}
