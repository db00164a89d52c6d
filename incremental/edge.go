package incremental

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// InputTopic and ResultTopic are a job's default topics on its inference
// node's broker: devices publish samples (joint inference's request
// format, JSON or envelope) on the first, answers come on the second or on
// the request's reply topic.
func InputTopic(namespace, name string) string  { return "il/" + namespace + "/" + name + "/input" }
func ResultTopic(namespace, name string) string { return "il/" + namespace + "/" + name + "/result" }

// ConditionsTopic is where a job's controller publishes each stage
// condition on its node's broker (and sends it to the cloud's control
// plane as a KindStageCondition).
func ConditionsTopic(r topics.JobRef) string { return topics.JobTopic(r, "conditions") }

// Edge is the edge half of incremental learning on a node: the controller
// of each job whose Dataset the node holds (its triggers are checked
// here, so they hold while the link is down; its state is in the node's
// store, so a restart resumes the stage it was in), and the inference
// worker.
type Edge struct {
	fl       Flavour
	env      paradigm.Env
	mu       sync.Mutex
	datasets map[string]bool        // "ns/name" of the Datasets held here
	specs    map[string]topics.Spec // the jobs' specs, by "ns/name"
	ctls     map[string]*ctlRun
	labelled sync.Map // "ns/name" → int64: the cloud's count of labelled examples
	stops    []func() error
	wg       sync.WaitGroup
	closed   bool
}

type ctlRun struct {
	gen    uint64
	cancel context.CancelFunc
	done   chan struct{}
}

// NewEdge subscribes to the node's Dataset and job specs and runs the
// controllers of the jobs whose Dataset is here.
func NewEdge(env paradigm.Env) (*Edge, error) { return Incremental.NewEdge(env) }

// NewEdge is the edge's half of the flavour's jobs.
func (fl Flavour) NewEdge(env paradigm.Env) (*Edge, error) {
	env.Log = env.Logger()
	e := &Edge{fl: fl, env: env, datasets: map[string]bool{}, specs: map[string]topics.Spec{}, ctls: map[string]*ctlRun{}}
	for _, s := range []struct {
		kind string
		fn   func(paradigm.Message) error
	}{{api.KindDataset, e.onDataset}, {fl.Kind, e.onJob}} {
		filter := topics.JobSpec(topics.JobRef{Kind: s.kind, Namespace: "+", Name: "+"})
		stop, err := env.Bus.Subscribe(filter, s.fn)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("incremental: subscribe %s: %w", filter, err)
		}
		e.stops = append(e.stops, stop)
	}
	return e, nil
}

// Close stops the controllers.
func (e *Edge) Close() {
	for _, st := range e.stops {
		_ = st()
	}
	e.mu.Lock()
	e.closed = true
	for _, r := range e.ctls {
		r.cancel()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

func (e *Edge) onDataset(m paradigm.Message) error {
	p, err := topics.Parse(m.Topic)
	if err != nil {
		return nil
	}
	key := jobKey(p.Job)
	held := false
	var s topics.Spec
	if len(m.Payload) > 0 && decode(m.Payload, topics.KindSpec, &s) == nil && !s.Deleted {
		if res, err := api.ParseDocument(s.Data); err == nil {
			if ds, ok := res.Spec.(*api.DatasetSpec); ok && ds.NodeName == e.env.Node {
				held = true
			}
		}
	}
	e.mu.Lock()
	e.datasets[key] = held
	e.reconcileLocked()
	e.mu.Unlock()
	return nil
}

func (e *Edge) onJob(m paradigm.Message) error {
	p, err := topics.Parse(m.Topic)
	if err != nil {
		return nil
	}
	key := jobKey(p.Job)
	var s topics.Spec
	if len(m.Payload) > 0 {
		if err := decode(m.Payload, topics.KindSpec, &s); err != nil {
			e.env.Log.Warn(e.fl.Source+": a job's spec refused", "topic", m.Topic, "error", err)
			return nil
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(m.Payload) == 0 || s.Deleted {
		delete(e.specs, key)
		e.reconcileLocked()
		// A deleted job's controller state and its pool of hard examples
		// not sent yet go with it.
		var b store.Batch
		b.Delete(ctlKey(key))
		b.Delete(outboxKey(key))
		err := e.env.Store.Write(&b)
		if err == nil {
			err = store.DeletePrefix(e.env.Store, []byte("pool/"+key+"/"))
		}
		if err != nil {
			e.env.Log.Warn(e.fl.Source+": a deleted job's state not removed", "job", key, "error", err)
		}
		return nil
	}
	e.specs[key] = s
	e.reconcileLocked()
	return nil
}

func ctlKey(job string) []byte { return []byte("ctl/" + job) }

// outboxKey holds the stage conditions a job's controller has not yet
// handed to the uplink, saved with the state they follow from.
func outboxKey(job string) []byte { return []byte("ctl-out/" + job) }

// reconcileLocked runs a controller for each job whose Dataset is here,
// restarted on a new generation, and stops the others.
func (e *Edge) reconcileLocked() {
	if e.closed {
		return
	}
	for key, r := range e.ctls {
		s, ok := e.specs[key]
		if ok && s.Generation == r.gen && e.holds(s) {
			continue
		}
		r.cancel()
		<-r.done
		delete(e.ctls, key)
	}
	for key, s := range e.specs {
		if _, ok := e.ctls[key]; ok || !e.holds(s) {
			continue
		}
		ref, err := topics.ParseJobRef(s.Key)
		if err != nil {
			continue
		}
		j, err := jobOf(e.fl, ref, s.Data)
		if err != nil {
			e.env.Log.Warn(e.fl.Source+": a job's spec refused", "job", key, "error", err)
			continue
		}
		j.rev = topics.Revision{Created: s.Created, Generation: s.Generation}
		ctx, cancel := context.WithCancel(context.Background())
		r := &ctlRun{gen: s.Generation, cancel: cancel, done: make(chan struct{})}
		e.ctls[key] = r
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer close(r.done)
			if err := e.control(ctx, j); err != nil && ctx.Err() == nil {
				e.env.Log.Error(e.fl.Source+": a job's controller stopped", "job", key, "error", err)
			}
		}()
	}
}

func (e *Edge) holds(s topics.Spec) bool {
	ref, err := topics.ParseJobRef(s.Key)
	if err != nil {
		return false
	}
	res, err := api.ParseDocument(s.Data)
	if err != nil || res.Kind != e.fl.Kind {
		return false
	}
	js, err := e.fl.Job(res)
	return err == nil && e.datasets[ref.Namespace+"/"+js.Dataset]
}

// control runs one job's controller until ctx ends.
func (e *Edge) control(ctx context.Context, j *job) error {
	key := jobKey(j.ref)
	var st State
	raw, err := e.env.Store.Get(ctlKey(key))
	switch {
	case err == nil:
		if err := msgpack.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("the job's stored state: %w", err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	c := NewController(j.rules, st)
	events := make(chan func(), 256)
	stopLabelled, err := e.env.Bus.Subscribe(topics.JobTopic(j.ref, "labelled"), func(m paradigm.Message) error {
		var n labelledCount
		if decode(m.Payload, KindLabelled, &n) == nil {
			e.labelled.Store(key, n.Total)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer func() { _ = stopLabelled() }()
	for what, fn := range map[string]func([]byte) func(){
		"stage": func(p []byte) func() {
			var r stageReport
			if err := decode(p, KindStage, &r); err != nil {
				return nil
			}
			return func() {
				now := e.env.Clock()
				switch {
				case r.Started:
					e.act(j, c, c.Started(r.Attempt, now))
				case r.Error != "":
					e.act(j, c, c.Failed(r.Attempt, r.Error, now))
				case r.Done:
					e.act(j, c, c.Succeeded(r.Attempt, r.Output, now))
				}
			}
		},
	} {
		stop, err := e.env.Bus.Subscribe(topics.JobTopic(j.ref, what), func(m paradigm.Message) error {
			if f := fn(m.Payload); f != nil {
				select {
				case events <- f:
				case <-ctx.Done():
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		defer func() { _ = stop() }()
	}
	// A hello: the cloud learns where the controller is and tells it the
	// labelled count.
	e.send(j, "run", KindRun, runRequest{})
	e.act(j, c, c.Resume(e.env.Clock()))
	var counted uint64
	var samples int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-events:
			f()
		case <-tick.C:
			if err := e.env.Data.Samples(j.ref.Namespace, j.dataset, counted, func(i uint64, _ []byte) error {
				counted, samples = i, samples+1
				return nil
			}); err != nil {
				e.env.Log.Warn(e.fl.Source+": the Dataset's samples not counted", "job", key, "error", err)
			}
			var lab int64
			if v, ok := e.labelled.Load(key); ok {
				lab = v.(int64)
			}
			now := e.env.Clock()
			e.act(j, c, c.Samples(samples+lab, now))
			e.act(j, c, c.Tick(now))
		}
	}
}

// act does a controller's actions in order: the state saved first,
// together with the stage conditions of the step (an outbox), which are
// then handed to the uplink and taken out of the outbox. A kill between
// the two sends them at the next act, so no condition of a saved state
// is lost; one sent just before a kill is sent again, which the cloud
// drops as a repeat.
func (e *Edge) act(j *job, c *Controller, acts []Action) {
	key := jobKey(j.ref)
	var pending []topics.StageCondition
	if raw, err := e.env.Store.Get(outboxKey(key)); err == nil {
		if err := msgpack.Unmarshal(raw, &pending); err != nil {
			e.env.Log.Error(e.fl.Source+": the job's unsent conditions not readable: dropped", "job", key, "error", err)
			pending = nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		e.env.Log.Error(e.fl.Source+": the job's unsent conditions not read", "job", key, "error", err)
	}
	queued := len(pending)
	st := c.State()
	for _, a := range acts {
		if a.Kind == Report {
			pending = append(pending, topics.StageCondition{Type: string(a.Cond.Type), Status: a.Cond.Status, Stage: string(a.Cond.Stage),
				Reason: a.Cond.Reason, Message: a.Cond.Message, Data: a.Cond.Data, Time: a.Cond.Time.UnixNano(), Revision: j.rev,
				Cycle: a.Cycle, Serving: st.Serving, Deployed: st.Deployed, Done: st.Done, DoneReason: st.Reason})
		}
	}
	for _, a := range acts {
		if a.Kind != Save {
			continue
		}
		raw, err := msgpack.Marshal(a.State)
		if err != nil {
			continue
		}
		var b store.Batch
		b.Put(ctlKey(key), raw)
		if len(pending) > queued {
			out, err := msgpack.Marshal(pending)
			if err != nil {
				continue
			}
			b.Put(outboxKey(key), out)
		}
		if err := e.env.Store.Write(&b); err != nil {
			// Not saved: a restart resumes from the last saved state.
			e.env.Log.Error(e.fl.Source+": the job's state not saved", "job", key, "error", err)
		}
	}
	for _, a := range acts {
		if a.Kind == Start {
			e.send(j, "run", KindRun, runRequest{Attempt: a.Attempt, Stage: a.Stage, Input: a.Input})
		}
	}
	if len(pending) == 0 {
		return
	}
	sent := true
	for _, sc := range pending {
		if raw, err := topics.Encode(topics.KindStageCondition, "incremental/edge", sc); err == nil {
			_ = e.env.Bus.Publish(ConditionsTopic(j.ref), raw, false, 1)
		}
		sent = e.send(j, "conditions", topics.KindStageCondition, sc) && sent
		e.env.Log.Info(e.fl.Source+": stage", "job", key, "cycle", sc.Cycle, "stage", sc.Stage, "phase", sc.Type,
			"reason", sc.Reason, "message", sc.Message)
	}
	if !sent {
		return // kept for the next act
	}
	var b store.Batch
	b.Delete(outboxKey(key))
	if err := e.env.Store.Write(&b); err != nil {
		e.env.Log.Warn(e.fl.Source+": the job's sent conditions not cleared: they will be sent again", "job", key, "error", err)
	}
}

// send queues a message of the job for the cloud, durably; it says false
// when the uplink refused it (a full disk, say), to be tried again.
func (e *Edge) send(j *job, what, kind string, body any) bool {
	raw, err := topics.Encode(kind, "incremental/edge", body)
	if err != nil {
		e.env.Log.Error(e.fl.Source+": not encoded for the cloud: dropped", "job", j.ref.String(), "what", what, "error", err)
		return true
	}
	if err := e.env.Bus.Send(paradigm.Outbound{Topic: topics.NodeJob(e.env.Node, j.ref, what), Payload: raw}); err != nil {
		e.env.Log.Warn(e.fl.Source+": not queued for the cloud", "job", j.ref.String(), "what", what, "error", err)
		return false
	}
	return true
}

// ---- the inference worker ----

// servingModel is the model the inference worker answers with.
type servingModel struct {
	served  Served
	raw     []byte // its encoding
	name    string
	version uint64
}

// Inference is the built-in inference worker (the deploy template's):
// it answers devices' samples with the serving model, judges each answer
// with the job's hard-example miner, keeps the hard ones in the node's
// store (bounded) and sends them to the cloud in the background; a newly
// deployed model version is loaded beside the serving one and swapped in
// between two samples.
func (e *Edge) Inference() workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		w, err := e.newInference(spec, log, true)
		if err != nil {
			return err
		}
		return w.run(ctx)
	}
}

// newInference sets an inference worker of spec's job up: its miner and
// its pool of hard examples. A job without a miner is refused when
// needMiner, and otherwise has none (nil).
func (e *Edge) newInference(spec workers.Spec, log *slog.Logger, needMiner bool) (*inference, error) {
	j, err := jobOf(e.fl, spec.Job, spec.Document)
	if err != nil {
		return nil, err
	}
	var miner *plugins.Miner
	hem := j.spec.Mining
	switch {
	case hem != nil && hem.Name != "":
		params := map[string]string{}
		for _, kv := range hem.Parameters {
			params[kv.Key] = kv.Value
		}
		host, err := e.env.Plugins()
		if err != nil {
			return nil, err
		}
		if miner, err = host.Miner(hem.Name, params); err != nil {
			return nil, fmt.Errorf("incremental: hard-example miner: %w", err)
		}
	case needMiner && j.spec.Learner == nil:
		return nil, errors.New("incremental: spec.deploySpec.hardExampleMining.name is empty: the worker needs a miner")
	}
	learner, err := j.learner(e.env)
	if err != nil {
		return nil, err
	}
	pool, err := OpenPool(store.Sub(e.env.Store, "pool/"+jobKey(j.ref)+"/"), PoolLimits{})
	if err != nil {
		return nil, err
	}
	w := &inference{env: e.env, j: j, learner: learner, spec: spec, log: log, miner: miner, pool: pool, in: make(chan []byte, 1024), kick: make(chan struct{}, 1),
		hot: j.spec.HotUpdate, poll: time.Second, restart: make(chan *servingModel)}
	if p := j.spec.PollSeconds; p > 0 {
		w.poll = time.Duration(p) * time.Second
	}
	return w, nil
}

type inference struct {
	env     paradigm.Env
	j       *job
	learner Learner
	spec    workers.Spec
	log     *slog.Logger
	miner   *plugins.Miner
	pool    *Pool
	model   atomic.Pointer[servingModel]
	in      chan []byte
	kick    chan struct{}
	// hot is deploySpec.model.hotUpdateEnabled; poll its
	// pollPeriodSeconds (default 1 s: the check is of the node's cache);
	// restart takes a new model to restart with when hot is off.
	hot     bool
	poll    time.Duration
	restart chan *servingModel
	// onSwap, when set, hears of each model swapped in (an external
	// worker's files follow it).
	onSwap func(*servingModel)
	// numbers
	samples, hard, bytesSeen, bytesUp, dropped, errors, updates atomic.Int64
}

// awaitModel loads the model to serve first. The initial model may
// still be on its way to the node: the worker waits for it, saying so (a
// model that came but does not load is an error); false when ctx ended.
func (w *inference) awaitModel(ctx context.Context) (bool, error) {
	for said := false; ; {
		err := w.refresh()
		if err == nil {
			return true, nil
		}
		var miss *missingModel
		if !errors.As(err, &miss) {
			return false, err
		}
		if !said {
			w.log.Info(w.j.fl.Source+": waiting for the model to reach the node", "error", err)
			if w.j.initial == "" {
				w.spec.Say(fmt.Sprintf("waiting for the first version of model %s (the job's first training makes it, "+
					"once its Dataset's samples pass the train trigger)", miss.name))
			} else {
				w.spec.Say(fmt.Sprintf("waiting for model %s to reach the node", miss.name))
			}
			said = true
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(time.Second):
		}
	}
}

func (w *inference) run(ctx context.Context) error {
	if ok, err := w.awaitModel(ctx); !ok {
		return err
	}
	input := w.j.topic("input")
	subscribe := func() (func() error, error) { return w.receive(input) }
	stop, err := subscribe()
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	m := w.model.Load()
	miner := "none"
	if w.miner != nil {
		miner = w.miner.Info().Name
	}
	w.log.Info(w.j.fl.Source+": inference worker ready", "input", input, "model", m.name, "version", m.version, "miner", miner,
		"hotUpdate", w.hot)
	w.spec.Say("")
	var wg sync.WaitGroup
	bg, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); w.upload(bg) }()
	go func() { defer wg.Done(); w.watchModels(bg) }()
	report := time.NewTicker(2 * time.Second)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			w.metrics()
			return nil
		case raw := <-w.in:
			w.answer(ctx, raw)
		case next := <-w.restart:
			// hotUpdateEnabled false: the worker restarts with the new
			// model, as Sedna's does: its input is unsubscribed while it
			// loads (what devices send meanwhile is not received), what
			// it had received is answered by the old model.
			_ = stop()
			for drained := false; !drained; {
				select {
				case raw := <-w.in:
					w.answer(ctx, raw)
				default:
					drained = true
				}
			}
			w.swap(next)
			if stop, err = subscribe(); err != nil {
				return err
			}
		case <-report.C:
			w.metrics()
		}
	}
}

// receive subscribes to topic: its messages (not retained ones) queue for
// the worker, or are counted as dropped when the queue is full.
func (w *inference) receive(topic string) (func() error, error) {
	stop, err := w.env.Bus.Subscribe(topic, func(m paradigm.Message) error {
		if m.Retained {
			return nil
		}
		select {
		case w.in <- m.Payload:
		default:
			w.dropped.Add(1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("incremental: subscribe %s: %w", topic, err)
	}
	return stop, nil
}

// watchModels checks the node's model cache every poll period and loads a
// newly deployed version beside the serving one: swapped in at once with
// hot update, handed to the worker's restart without.
func (w *inference) watchModels(ctx context.Context) {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := w.load()
		switch {
		case err != nil:
			w.log.Warn(w.j.fl.Source+": the deployed model not loaded", "error", err)
		case next == nil:
		case w.hot:
			w.swap(next)
		default:
			select {
			case w.restart <- next:
			case <-ctx.Done():
				return
			}
		}
	}
}

// swap makes next the serving model (an atomic pointer: a sample is
// answered by one model or the other, whole).
func (w *inference) swap(next *servingModel) {
	cur := w.model.Swap(next)
	if cur == nil {
		return
	}
	if w.onSwap != nil {
		w.onSwap(next)
	}
	w.updates.Add(1)
	how := "hot update"
	if !w.hot {
		how = "restart"
	}
	w.log.Info(w.j.fl.Source+": "+how, "model", next.name, "from", cur.version, "to", next.version)
	w.spec.Event("Normal", "ModelUpdated", fmt.Sprintf("the inference worker serves model %s version %d (%s)", next.name, next.version, how))
}

// refresh loads the model to serve and swaps it in (at the start).
func (w *inference) refresh() error {
	next, err := w.load()
	if err == nil && next != nil {
		w.swap(next)
	}
	return err
}

// load reads the newest deployed version (or, before the first deploy,
// the initial model) when it is not the one serving; nil when it is.
func (w *inference) load() (*servingModel, error) {
	cur := w.model.Load()
	var have uint64
	if cur != nil && cur.name == w.j.deploy {
		have = cur.version
	}
	v, data, err := w.env.Models.Latest(w.j.ref.Namespace, w.j.deploy, have)
	name := w.j.deploy
	if err != nil || v == 0 {
		if cur != nil {
			return nil, nil // nothing deployed yet: the initial model serves on
		}
		if w.j.initial == "" {
			return nil, &missingModel{name: name, err: err} // none before the first deploy
		}
		name = w.j.initial
		if v, data, err = w.env.Models.Latest(w.j.ref.Namespace, name, 0); err != nil {
			return nil, &missingModel{name: name, err: err}
		}
	}
	if data == nil {
		return nil, nil // the version serving
	}
	info, err := paradigm.DescribeModel(w.env.Models, w.j.ref.Namespace, name, v)
	if err != nil {
		return nil, fmt.Errorf("%s: model %s version %d: %w", w.j.fl.Source, name, v, err)
	}
	served, err := w.learner.Serve(data, info)
	if err != nil {
		return nil, fmt.Errorf("%s: model %s version %d: %w", w.j.fl.Source, name, v, err)
	}
	return &servingModel{served: served, raw: data, name: name, version: v}, nil
}

// missingModel is no version of the model on the node yet.
type missingModel struct {
	name string
	err  error
}

func (m *missingModel) Error() string { return fmt.Sprintf("incremental: model %s: %v", m.name, m.err) }
func (m *missingModel) Unwrap() error { return m.err }

func (w *inference) answer(ctx context.Context, raw []byte) {
	req, replyTo, corr, asJSON, err := jointinference.DecodeRequest(raw, topics.Limits{})
	res := jointinference.Result{ID: req.ID, Source: "edge"}
	m := w.model.Load()
	var x []float32
	if err == nil {
		x, err = req.Floats()
	}
	var batch plugins.Batch
	var keep bool
	var score float64
	if err == nil {
		batch, keep, score, err = m.served.Answer(req, x, &res)
	}
	if err != nil {
		w.errors.Add(1)
		res.Error = err.Error()
	} else {
		w.samples.Add(1)
		w.bytesSeen.Add(int64(len(raw)))
		if !keep && w.miner != nil && (batch.Probs != nil || batch.Boxes != nil) {
			if vs, err := w.miner.Mine(ctx, batch); err == nil && len(vs) == 1 && vs[0].Hard {
				keep, score = true, float64(vs[0].Score)
				res.Hard = true
			}
		}
		if keep {
			w.keep(req, m.version, score)
		}
	}
	out, err := jointinference.EncodeResult(res, corr, asJSON)
	if err != nil {
		return
	}
	if replyTo != "" {
		_ = w.env.Bus.Answer(replyTo, out)
	} else {
		_ = w.env.Bus.Publish(w.j.topic("result"), out, false, 1)
	}
}

// servedNetwork is a network answering an incremental job's samples.
type servedNetwork struct {
	net  ml.Predictor // the learning substrate's network, or an ONNX model
	task jointinference.Task
}

func (m *servedNetwork) Answer(req jointinference.Request, x []float32, res *jointinference.Result) (plugins.Batch, bool, float64, error) {
	var batch plugins.Batch
	var err error
	if m.task.Detection {
		batch, err = m.detect(req, x, res)
	} else {
		batch, err = m.classify(x, res)
	}
	return batch, false, 0, err
}

// classify answers a classification sample; the batch is what the miner
// judges.
func (m *servedNetwork) classify(x []float32, res *jointinference.Result) (plugins.Batch, error) {
	if len(x) != m.net.Inputs() {
		return plugins.Batch{}, fmt.Errorf("a sample of %d values does not fit a model of %d inputs", len(x), m.net.Inputs())
	}
	probs, err := m.net.PredictProba(x)
	if err != nil {
		return plugins.Batch{}, err
	}
	k := m.net.Classes()
	best := 0
	for i := range k {
		if probs[i] > probs[best] {
			best = i
		}
	}
	res.Class, res.Score, res.Probs = best, probs[best], probs
	return plugins.Batch{Probs: probs, Classes: k}, nil
}

// detect answers a detection sample (a scene) with boxes; the batch is
// them, for IBT to judge.
func (m *servedNetwork) detect(req jointinference.Request, x []float32, res *jointinference.Result) (plugins.Batch, error) {
	if len(req.Shape) != 2 || req.Shape[0]*req.Shape[1] != len(x) {
		return plugins.Batch{}, fmt.Errorf("a detection sample is a [height, width] scene; got shape %v for %d values", req.Shape, len(x))
	}
	boxes, err := m.task.Detector(m.net).Detect(detect.Scene{Height: req.Shape[0], Width: req.Shape[1], Pixels: x})
	if err != nil {
		return plugins.Batch{}, err
	}
	pb := make([]plugins.Box, len(boxes))
	for i, b := range boxes {
		res.Boxes = append(res.Boxes, b.Array())
		pb[i] = plugins.Box(b.Array())
	}
	if len(boxes) > 0 {
		res.Class, res.Score = boxes[0].Label, boxes[0].Score
	}
	return plugins.Batch{Boxes: [][]plugins.Box{pb}}, nil
}

// keep puts a hard sample in the node's pool, as the device sent it.
func (w *inference) keep(req jointinference.Request, version uint64, score float64) {
	dtype, data := req.Packed()
	e := HardExample{ID: req.ID, Shape: req.Shape, DType: dtype, Data: data, Model: version, Score: score, At: w.env.Clock().UnixNano(),
		Attr: req.Attr}
	if _, err := w.pool.Add(e); err != nil {
		w.log.Warn(w.j.fl.Source+": a hard example not kept", "error", err)
		return
	}
	w.hard.Add(1)
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// upload sends the pool's oldest examples to the cloud while the link is
// up, and removes what was queued.
func (w *inference) upload(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
		for ctx.Err() == nil {
			if up, _ := w.env.Bus.Link(); !up {
				break
			}
			es, err := w.pool.Oldest(64)
			if err != nil || len(es) == 0 {
				break
			}
			raw, err := topics.Encode(KindExamples, "incremental/edge", exampleBatch{Examples: es})
			if err != nil {
				break
			}
			if err := w.env.Bus.Send(paradigm.Outbound{Topic: topics.NodeJob(w.env.Node, w.j.ref, "examples"), Payload: raw, Bulk: true}); err != nil {
				w.log.Warn(w.j.fl.Source+": hard examples not queued", "error", err)
				break
			}
			w.bytesUp.Add(int64(len(raw)))
			seqs := make([]uint64, len(es))
			for i, e := range es {
				seqs[i] = e.Seq
			}
			if err := w.pool.Remove(seqs...); err != nil {
				w.log.Warn(w.j.fl.Source+": sent examples not removed from the pool", "error", err)
				break
			}
		}
	}
}

func (w *inference) metrics() {
	m := w.model.Load()
	ps := w.pool.Stats()
	if w.spec.ReportMetrics == nil {
		return
	}
	w.spec.ReportMetrics(map[string]float64{
		"samples": float64(w.samples.Load()), cmp.Or(w.j.fl.Kept, "hardExamples"): float64(w.hard.Load()),
		"bytesSeen": float64(w.bytesSeen.Load()), "bytesUp": float64(w.bytesUp.Load()),
		"poolKept": float64(ps.Kept), "poolDropped": float64(ps.Dropped), "inputDropped": float64(w.dropped.Load()),
		"badInputs": float64(w.errors.Load()), "modelVersion": float64(m.version), "hotUpdates": float64(w.updates.Load()),
	})
}
