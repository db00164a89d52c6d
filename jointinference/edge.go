package jointinference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// EdgeEnv is what the edge worker needs of its node: the node's
// paradigm.Env (Bus, Models, Plugins, Now, Node).
type EdgeEnv = paradigm.Env

// Edge serves the edge side of a node's JointInferenceServices. It keeps
// each service's input subscription and request queue across restarts of
// its worker (a new spec restarts it), so a frame sent meanwhile waits for
// the next worker instead of reaching no one; a service whose worker does
// not come back within a grace period is unsubscribed, and what waited is
// answered with an error.
type Edge struct {
	env   EdgeEnv
	grace time.Duration
	mu    sync.Mutex
	svc   map[string]*inbox
}

// inbox is a service's input subscription and queue.
type inbox struct {
	topic    string
	results  atomic.Value // string: where answers go without a reply topic
	stop     func() error // ends the subscription
	requests chan *item
	workers  int         // attached (0 or 1; 2 briefly during a handover)
	timer    *time.Timer // the grace period, while none is attached
	dropped  atomic.Int64
}

// NewEdge makes the edge side of a node.
func NewEdge(env EdgeEnv) *Edge {
	return &Edge{env: env, grace: 10 * time.Second, svc: map[string]*inbox{}}
}

// attach returns the service's queue, subscribing to topic if needed.
func (e *Edge) attach(key, topic, results string) (*inbox, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in := e.svc[key]
	if in != nil && in.topic != topic {
		_ = in.stop()
		if in.timer != nil {
			in.timer.Stop()
		}
		delete(e.svc, key)
		drain(in, e.env.Bus, "the service's input topic changed")
		in = nil
	}
	if in == nil {
		in = &inbox{topic: topic, requests: make(chan *item, 4096)}
		in.results.Store(results)
		stop, err := e.env.Bus.Subscribe(topic, func(m paradigm.Message) error {
			in.take(e.env.Bus, m.Payload, m.Retained)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("jointinference: subscribe %s: %w", topic, err)
		}
		in.stop = stop
		e.svc[key] = in
	}
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	in.results.Store(results)
	in.workers++
	return in, nil
}

// detach lets a service's worker go; without a successor in the grace
// period the service's subscription ends.
func (e *Edge) detach(key string, in *inbox) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in.workers--
	if in.workers > 0 || e.svc[key] != in {
		return
	}
	in.timer = time.AfterFunc(e.grace, func() {
		e.mu.Lock()
		if e.svc[key] != in || in.workers > 0 {
			e.mu.Unlock()
			return
		}
		delete(e.svc, key)
		_ = in.stop()
		e.mu.Unlock()
		drain(in, e.env.Bus, "the service has no worker on this node")
	})
}

// Close ends every subscription; what waits is answered with an error.
func (e *Edge) Close() {
	e.mu.Lock()
	svc := e.svc
	e.svc = map[string]*inbox{}
	e.mu.Unlock()
	for _, in := range svc {
		if in.timer != nil {
			in.timer.Stop()
		}
		_ = in.stop()
		drain(in, e.env.Bus, "the node is stopping")
	}
}

func drain(in *inbox, bus paradigm.Bus, why string) {
	for {
		select {
		case it := <-in.requests:
			publishResult(bus, it, in.results.Load().(string), Result{ID: it.req.ID, Error: "not answered: " + why})
		default:
			return
		}
	}
}

// take runs on the publisher's goroutine: it only decodes and queues.
func (in *inbox) take(bus paradigm.Bus, payload []byte, retained bool) {
	if retained {
		return // a retained sample is old news
	}
	req, replyTo, corr, asJSON, err := DecodeRequest(payload, topics.Limits{})
	it := &item{req: req, replyTo: replyTo, corr: corr, asJSON: asJSON, arrived: time.Now()}
	if err == nil {
		it.x, err = req.Floats()
	}
	results := in.results.Load().(string)
	if err != nil {
		publishResult(bus, it, results, Result{ID: req.ID, Error: err.Error()})
		return
	}
	select {
	case in.requests <- it:
	default:
		in.dropped.Add(1)
		publishResult(bus, it, results, Result{ID: req.ID, Error: "the joint inference worker is overloaded: try again"})
	}
}

// Worker is the built-in edge worker of a JointInferenceService.
func (e *Edge) Worker() workers.Builtin {
	env := e.env
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		cfg, err := edgeConfigOf(spec)
		if err != nil {
			return err
		}
		host, err := env.Plugins()
		if err != nil {
			return fmt.Errorf("jointinference: plugins: %w", err)
		}
		miner, err := host.Miner(cfg.miner, cfg.minerParams)
		if err != nil {
			return fmt.Errorf("jointinference: hard-example miner: %w", err)
		}
		in, err := e.attach(spec.Job.String(), cfg.inputTopic, cfg.results)
		if err != nil {
			return err
		}
		defer e.detach(spec.Job.String(), in)
		w := &edgeWorker{env: env, cfg: cfg, spec: spec, log: log, miner: miner, stats: newEdgeStats(), in: in,
			requests: in.requests, replies: make(chan []byte, 256), expired: make(chan string, 64),
			done: make(chan struct{}), pending: map[string]*offload{}}
		return w.run(ctx)
	}
}

type edgeWorker struct {
	env   EdgeEnv
	cfg   *edgeConfig
	spec  workers.Spec
	log   *slog.Logger
	miner *plugins.Miner
	model *model
	bad   uint64 // a model version that would not load (logged once)
	stats *edgeStats

	in       *inbox
	requests <-chan *item
	replies  chan []byte
	expired  chan string
	done     chan struct{}
	pending  map[string]*offload // by correlation ID; the loop's alone
	seq      uint64
}

// item is one request through the worker.
type item struct {
	req      Request
	replyTo  string
	corr     string
	asJSON   bool
	arrived  time.Time
	x        []float32 // the values, normalised
	feat     []float32 // fitted to the edge model
	edge     *Result   // the edge model's answer, once made
	hard     bool
	answered bool
}

type offload struct {
	items []*item
	timer *time.Timer
}

func (w *edgeWorker) run(ctx context.Context) error {
	defer close(w.done)
	replyTopic := topics.JobTopic(w.cfg.ref, "reply")
	stop, err := w.env.Bus.Subscribe(replyTopic, func(m paradigm.Message) error {
		select {
		case w.replies <- m.Payload:
		default:
			w.log.Warn("joint inference: reply dropped: the worker is behind")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("jointinference: subscribe %s: %w", replyTopic, err)
	}
	defer func() { _ = stop() }()
	w.log.Info("joint inference edge worker serving", "input", w.cfg.inputTopic, "results", w.cfg.results,
		"model", w.cfg.model, "miner", w.cfg.miner, "mode", w.cfg.mode, "timeout", w.cfg.timeout)

	w.refreshModel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	up, linkCh := w.env.Bus.Link()
	batchTimer := time.NewTimer(time.Hour)
	batchTimer.Stop()
	var batch []*item
	for {
		select {
		case <-ctx.Done():
			w.flushPending("stopping")
			w.requeue(batch)
			w.report()
			return nil
		case it := <-w.requests:
			batch = append(batch, it)
			if len(batch) == 1 {
				batchTimer.Reset(w.cfg.batchWait)
			}
		fill:
			for len(batch) < w.cfg.batch {
				select {
				case it := <-w.requests:
					batch = append(batch, it)
				default:
					break fill
				}
			}
			if len(batch) >= w.cfg.batch {
				batchTimer.Stop()
				w.process(ctx, batch, up)
				batch = nil
			}
		case <-batchTimer.C:
			if len(batch) > 0 {
				w.process(ctx, batch, up)
				batch = nil
			}
		case raw := <-w.replies:
			w.onReply(raw)
		case id := <-w.expired:
			if o := w.pending[id]; o != nil {
				delete(w.pending, id)
				w.fallback(o.items, "timeout")
			}
		case <-linkCh:
			up, linkCh = w.env.Bus.Link()
			if !up {
				w.flushPending("link-down")
			}
		case <-tick.C:
			w.refreshModel()
			w.report()
		}
	}
}

// refreshModel loads the newest version of the edge model the node holds.
func (w *edgeWorker) refreshModel() {
	v, data, err := w.env.Models.Latest(w.cfg.ref.Namespace, w.cfg.model, 0)
	if err != nil || (w.model != nil && v == w.model.version) || v == w.bad {
		return
	}
	info, err := paradigm.DescribeModel(w.env.Models, w.cfg.ref.Namespace, w.cfg.model, v)
	var c *model
	if err == nil {
		c, err = loadModel(data, info, v, w.cfg.task)
	}
	if err != nil {
		w.bad = v
		w.log.Error("joint inference: edge model not usable", "model", w.cfg.model, "error", err)
		var have uint64
		if w.model != nil {
			have = w.model.version
		}
		w.spec.Say(unusable("edge", w.cfg.model, have, err))
		return
	}
	w.model = c
	w.spec.Say("")
	w.log.Info("joint inference: edge model loaded", "model", w.cfg.model, "version", v, "format", c.format, "inputs", c.net.Inputs())
}

// process answers a batch: inference and mining in the worker's mode,
// easy samples at once, hard ones offloaded while the link is up.
func (w *edgeWorker) process(ctx context.Context, batch []*item, up bool) {
	if w.model == nil {
		w.refreshModel()
	}
	if w.model == nil {
		for _, it := range batch {
			w.stats.errors++
			w.publish(it, Result{ID: it.req.ID, Error: "edge model " + w.cfg.model + " is not on this node yet"})
		}
		return
	}
	var ok []*item
	for _, it := range batch {
		f, err := w.model.features(it.x, it.req.Shape)
		if err != nil {
			w.stats.errors++
			w.publish(it, Result{ID: it.req.ID, Error: err.Error()})
			continue
		}
		it.feat = f
		ok = append(ok, it)
	}
	if len(ok) == 0 {
		return
	}
	w.stats.inferences += int64(len(ok))
	w.stats.changed = true
	var verdicts []plugins.Verdict
	var err error
	if w.cfg.mode == ModeMiningThenInference {
		verdicts, err = w.mineInputs(ctx, ok)
	} else {
		if err = w.inferEdge(ok); err == nil {
			verdicts, err = w.miner.Mine(ctx, w.mineBatch(ok))
		}
	}
	if err != nil {
		// The miner failed: every sample gets the edge's answer, marked.
		w.log.Warn("joint inference: mining failed; answering at the edge", "miner", w.cfg.miner, "error", err)
		w.fallback(ok, "mining-error")
		return
	}
	var hard []*item
	var easy []*item
	for i, it := range ok {
		it.hard = verdicts[i].Hard
		if it.hard {
			w.stats.hard++
			hard = append(hard, it)
		} else {
			easy = append(easy, it)
		}
	}
	if err := w.inferEdge(easy); err != nil {
		w.log.Error("joint inference: edge inference failed", "error", err)
	}
	for _, it := range easy {
		w.answer(it, *it.edge, w.stats.edgeLat)
	}
	if len(hard) == 0 {
		return
	}
	if !up {
		w.fallback(hard, "link-down")
		return
	}
	w.offload(hard)
}

// inferEdge makes the edge model's answer for items that lack one.
func (w *edgeWorker) inferEdge(items []*item) error {
	var need []*item
	for _, it := range items {
		if it.edge == nil {
			need = append(need, it)
		}
	}
	if len(need) == 0 {
		return nil
	}
	rows := make([][]float32, len(need))
	shapes := make([][]int, len(need))
	for i, it := range need {
		rows[i], shapes[i] = it.feat, it.req.Shape
	}
	answers, err := w.model.infer(rows, shapes)
	if err != nil {
		return err
	}
	for i, it := range need {
		r := answers[i].result(it.req.ID, "edge")
		it.edge = &r
		if it.req.Label != nil && *it.req.Label == r.Class {
			w.stats.edgeCorrect++
		}
	}
	return nil
}

// mineBatch is what the miner judges of items the edge answered: class
// probabilities, or a detector's boxes.
func (w *edgeWorker) mineBatch(items []*item) plugins.Batch {
	if w.model.det != nil {
		b := plugins.Batch{Boxes: make([][]plugins.Box, len(items))}
		for i, it := range items {
			b.Boxes[i] = make([]plugins.Box, len(it.edge.Boxes))
			for j, bx := range it.edge.Boxes {
				b.Boxes[i][j] = plugins.Box(bx)
			}
		}
		return b
	}
	k := w.model.classes()
	b := plugins.Batch{Classes: k, Probs: make([]float32, 0, len(items)*k)}
	for _, it := range items {
		b.Probs = append(b.Probs, it.edge.Probs...)
	}
	return b
}

// mineInputs gives the miner the raw samples (mining-then-inference).
func (w *edgeWorker) mineInputs(ctx context.Context, items []*item) ([]plugins.Verdict, error) {
	cols := len(items[0].feat)
	x := make([]float32, 0, len(items)*cols)
	for _, it := range items {
		if len(it.feat) != cols {
			return nil, errors.New("samples of different sizes in one batch")
		}
		x = append(x, it.feat...)
	}
	return w.miner.Mine(ctx, plugins.Batch{Inputs: x, InputCols: cols})
}

// offload sends hard samples to the cloud in batches of at most cfg.batch.
func (w *edgeWorker) offload(items []*item) {
	now := time.Now()
	for len(items) > 0 {
		n := min(len(items), w.cfg.batch)
		part := items[:n]
		items = items[n:]
		w.seq++
		id := w.env.Node + "-" + strconv.FormatInt(now.UnixNano(), 36) + "-" + strconv.FormatUint(w.seq, 36)
		b := offloadBatch{Samples: make([]offloadSample, len(part))}
		for i, it := range part {
			b.Samples[i] = it.req.compact()
		}
		env, err := topics.NewEnvelope(KindOffload, "jointinference/edge", b)
		if err != nil {
			w.fallback(part, "not-sent")
			continue
		}
		expires := w.env.Clock().Add(w.cfg.timeout)
		env.CorrelationID, env.Expires = id, expires
		env.ReplyTo = topics.ToNodeJob(w.env.Node, w.cfg.ref, "reply")
		raw, err := env.Marshal()
		if err == nil {
			err = w.env.Bus.SendNow(paradigm.Outbound{Topic: topics.NodeJob(w.env.Node, w.cfg.ref, "offload"), Payload: raw, Expires: expires})
		}
		if err != nil {
			w.log.Warn("joint inference: offload not queued; answering at the edge", "error", err)
			w.fallback(part, "not-sent")
			continue
		}
		w.stats.offloaded += int64(len(part))
		w.stats.bytesUp += int64(len(raw))
		o := &offload{items: part}
		o.timer = time.AfterFunc(w.cfg.timeout, func() {
			select {
			case w.expired <- id:
			case <-w.done:
			}
		})
		w.pending[id] = o
	}
}

func (w *edgeWorker) onReply(raw []byte) {
	env, err := topics.UnmarshalEnvelope(raw, topics.Limits{MaxBody: 64 << 20})
	if err != nil || env.Kind != KindReply {
		w.log.Warn("joint inference: a reply that is not one", "error", err)
		return
	}
	o := w.pending[env.CorrelationID]
	if o == nil {
		w.stats.lateReplies++ // answered at the edge already
		w.stats.changed = true
		return
	}
	delete(w.pending, env.CorrelationID)
	o.timer.Stop()
	var rep offloadReply
	if err := env.DecodeBody(&rep); err != nil || rep.Error != "" || len(rep.Results) != len(o.items) {
		w.log.Warn("joint inference: the cloud could not answer a batch", "error", err, "cloud", rep.Error)
		w.fallback(o.items, "cloud-error")
		return
	}
	var failed []*item
	for i, it := range o.items {
		r := rep.Results[i]
		if r.Error != "" || (w.model.det == nil && len(r.Probs) != w.model.classes()) || (w.model.det != nil && r.Boxes == nil) {
			failed = append(failed, it)
			continue
		}
		w.stats.cloudAnswers++
		res := answer{probs: r.Probs, boxes: r.Boxes}.result(it.req.ID, "cloud")
		res.Hard = true
		w.answer(it, res, w.stats.cloudLat)
	}
	if len(failed) > 0 {
		w.fallback(failed, "cloud-error")
	}
}

// fallback answers items with the edge's answer, marked with why.
func (w *edgeWorker) fallback(items []*item, why string) {
	if err := w.inferEdge(items); err != nil {
		for _, it := range items {
			w.stats.errors++
			w.publish(it, Result{ID: it.req.ID, Error: "edge inference failed: " + err.Error()})
		}
		return
	}
	for _, it := range items {
		r := *it.edge
		r.Hard, r.Fallback = it.hard, why
		if it.hard {
			w.stats.fallbacks++
		}
		w.answer(it, r, w.stats.edgeLat)
	}
}

func (w *edgeWorker) flushPending(why string) {
	for id, o := range w.pending {
		delete(w.pending, id)
		o.timer.Stop()
		w.fallback(o.items, why)
	}
}

// requeue gives requests the worker took but did not start back to its
// inbox, for its successor.
func (w *edgeWorker) requeue(items []*item) {
	for _, it := range items {
		select {
		case w.in.requests <- it:
		default:
			w.publish(it, Result{ID: it.req.ID, Error: "not answered: the worker stopped"})
		}
	}
}

// answer sends r for it and counts it.
func (w *edgeWorker) answer(it *item, r Result, lat *window) {
	d := time.Since(it.arrived)
	r.LatencyMicros = d.Microseconds()
	lat.add(d)
	if it.req.Label != nil {
		w.stats.labeled++
		if r.Class == *it.req.Label {
			w.stats.correct++
		}
	}
	w.stats.changed = true
	w.publish(it, r)
}

func (w *edgeWorker) publish(it *item, r Result) {
	publishResult(w.env.Bus, it, w.cfg.results, r)
}

// publishResult answers it once: on its reply topic, else on results
// (else on the service's default result topic).
func publishResult(bus paradigm.Bus, it *item, results string, r Result) {
	if it.answered {
		return
	}
	it.answered = true
	raw, err := EncodeResult(r, it.corr, it.asJSON)
	if err != nil {
		return
	}
	topic := it.replyTo
	if topic == "" || topics.ValidateTopic(topic) != nil {
		topic = results
	}
	if topic == "" {
		return
	}
	// A reply topic comes from whoever sent the sample: the worker answers
	// with no more rights than a local app has.
	_ = bus.Answer(topic, raw)
}

func (w *edgeWorker) report() {
	if !w.stats.changed || w.spec.ReportMetrics == nil {
		return
	}
	w.stats.changed = false
	m := w.stats.metrics()
	m["overloaded"] = float64(w.in.dropped.Load())
	w.spec.ReportMetrics(m)
}
