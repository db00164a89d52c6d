package federated

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// ModelFormat is the format name of the models this package registers.
const ModelFormat = "sedna-ml"

// maxMessage bounds what the cloud decodes of a node's message.
var msgLimits = topics.Limits{MaxBody: 1 << 20}

// CloudEnv is what the aggregation worker needs of the cloud manager: the
// cloud's paradigm.Env. Bus carries the nodes' updates and joins, and the
// global models to the nodes (SendNow to a node online, else Send through
// the durable downlink); Store keeps each job's rounds (a job resumes
// after a restart); Plugins gives the aggregators; Models reads the job's
// pretrainedModel and registers its output; Data opens its validation set
// (os.Open when Data is nil, for tests and embedders).
type CloudEnv = paradigm.Env

// Cloud serves the cloud side of every FederatedLearningJob: one
// subscription to every node's updates and joins, routed to the
// aggregation worker of each job.
type Cloud struct {
	env      CloudEnv
	stops    []func() error // the subscriptions
	mu       sync.Mutex
	jobs     map[string]*aggregation // running, by job key
	unrouted atomic.Int64
}

// message is an update or a join from a node.
type message struct {
	node  string
	kind  string
	size  int
	upd   update
	join  join
	at    time.Time
	topic string
}

// NewCloud subscribes to the nodes' updates and joins on env.Bus, and to
// the jobs' specs (a deleted job's rounds are forgotten).
func NewCloud(env CloudEnv) (*Cloud, error) {
	env.Log = env.Logger()
	c := &Cloud{env: env, jobs: map[string]*aggregation{}}
	for _, what := range []string{"update", "join"} {
		filter := topics.NodeJobsFilter(api.KindFederatedLearningJob, what)
		stop, err := env.Bus.Subscribe(filter, func(m paradigm.Message) error { return c.onMessage(m.Topic, m.Payload) })
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("federated: subscribe %s: %w", filter, err)
		}
		c.stops = append(c.stops, stop)
	}
	specs := topics.JobSpec(topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "+", Name: "+"})
	stop, err := env.Bus.Subscribe(specs, func(m paradigm.Message) error { return c.onSpec(m.Topic, m.Payload) })
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("federated: subscribe %s: %w", specs, err)
	}
	c.stops = append(c.stops, stop)
	return c, nil
}

// Close ends the subscriptions.
func (c *Cloud) Close() {
	for _, stop := range c.stops {
		_ = stop()
	}
	c.stops = nil
}

func stateKey(job string) []byte { return []byte("job/" + job) }

// onSpec forgets the rounds of a deleted job (its retained spec is
// cleared), so one applied again under the name starts afresh.
func (c *Cloud) onSpec(topic string, payload []byte) error {
	if len(payload) != 0 {
		return nil
	}
	p, err := topics.Parse(topic)
	if err != nil {
		return nil
	}
	job := p.Job.String()
	if raw, err := c.env.Store.Get(stateKey(job)); err == nil {
		var st State
		if msgpack.Unmarshal(raw, &st) == nil {
			c.deleteBlobs(job, st.Saves, st.Saves+1)
		}
	}
	var b store.Batch
	b.Delete(stateKey(job))
	if err := c.env.Store.Write(&b); err != nil {
		c.env.Log.Warn("federated: rounds of a deleted job not forgotten", "job", job, "error", err)
	}
	return nil
}

// The global model and the aggregator's state are blobs beside the job's
// state (a model is larger than one store write takes), under keys
// numbered by save: the state names the ones it goes with, so a crash
// between writing them and the state leaves the previous pair whole.
func globalBlob(job string, save uint64) string { return fmt.Sprintf("global/%s/%d", job, save) }
func aggBlob(job string, save uint64) string    { return fmt.Sprintf("aggstate/%s/%d", job, save) }

func (c *Cloud) deleteBlobs(job string, saves ...uint64) {
	for _, n := range saves {
		if n == 0 {
			continue
		}
		_ = store.DeleteBlob(c.env.Store, globalBlob(job, n))
		_ = store.DeleteBlob(c.env.Store, aggBlob(job, n))
	}
}

// onMessage routes a node's update or join to its job's aggregation
// worker. It waits a little while the worker is busy (an aggregation of a
// large round), then drops the message and counts it: it runs on the
// broker's delivery path, which must not stall, and a client whose update
// is lost sends it again when the round asks (a round past its deadline
// asks its missing clients again).
func (c *Cloud) onMessage(topic string, payload []byte) error {
	p, err := topics.Parse(topic)
	if err != nil || p.Class != topics.ClassNodeJob {
		return nil
	}
	env, err := topics.UnmarshalEnvelope(payload, msgLimits)
	if err != nil {
		c.env.Log.Warn("federated: not a message of ours", "topic", topic, "error", err)
		return nil
	}
	m := message{node: p.Node, kind: env.Kind, size: len(payload), at: time.Now(), topic: topic}
	switch env.Kind {
	case KindUpdate:
		err = env.DecodeBody(&m.upd)
	case KindJoin:
		err = env.DecodeBody(&m.join)
	default:
		err = fmt.Errorf("kind %q", env.Kind)
	}
	if err != nil {
		c.env.Log.Warn("federated: message not understood", "topic", topic, "error", err)
		return nil
	}
	c.mu.Lock()
	a := c.jobs[p.Job.String()]
	c.mu.Unlock()
	if a == nil {
		if m.kind == KindJoin {
			c.answerJoinOfFinished(p.Job, p.Node)
		} else {
			c.unrouted.Add(1)
		}
		return nil
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case a.inbox <- m:
	case <-a.stopped:
		c.unrouted.Add(1)
	case <-t.C:
		c.unrouted.Add(1)
		c.env.Log.Warn("federated: the aggregation worker is busy: a message dropped (its client is asked again)", "job", p.Job.String(), "node", p.Node)
	}
	return nil
}

// Unrouted counts the nodes' messages no aggregation worker took: for a
// job not running here, or dropped while its worker was busy.
func (c *Cloud) Unrouted() int64 { return c.unrouted.Load() }

// answerJoinOfFinished tells a worker of a job that is over (and whose
// aggregation worker ended) that it is.
func (c *Cloud) answerJoinOfFinished(job topics.JobRef, node string) {
	raw, err := c.env.Store.Get(stateKey(job.String()))
	if err != nil {
		return
	}
	var st State
	if msgpack.Unmarshal(raw, &st) != nil || !st.Done {
		return
	}
	if raw, err := topics.Encode(KindGlobal, "federated/cloud", global{Gen: st.Gen, Run: st.Run, Round: st.Round, Done: true}); err == nil {
		_ = c.env.Bus.Send(paradigm.Outbound{Node: node, Topic: GlobalTopic(node, job), Payload: raw, Expires: c.env.Clock().Add(time.Hour)})
	}
}

// aggregation is a running aggregation worker.
type aggregation struct {
	inbox   chan message
	stopped chan struct{}
}

// Worker is the built-in aggregation worker of a FederatedLearningJob.
func (c *Cloud) Worker() workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		cfg, err := parseAggConfig(spec)
		if err != nil {
			return err
		}
		a := &aggregation{inbox: make(chan message, 256), stopped: make(chan struct{})}
		key := spec.Job.String()
		c.mu.Lock()
		prev := c.jobs[key]
		c.jobs[key] = a
		c.mu.Unlock()
		if prev != nil { // the worker of an older generation saves its last round first
			select {
			case <-prev.stopped:
			case <-ctx.Done():
				close(a.stopped)
				return nil
			}
		}
		defer func() {
			close(a.stopped)
			c.mu.Lock()
			if c.jobs[key] == a {
				delete(c.jobs, key)
			}
			c.mu.Unlock()
		}()
		r, err := c.newRun(ctx, spec, cfg, log, a.inbox)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while it waited for the Datasets' reports
			}
			return err
		}
		return r.run(ctx, a.inbox)
	}
}

// run is one aggregation worker's job.
type run struct {
	c         *Cloud
	spec      workers.Spec
	cfg       *aggConfig
	log       *slog.Logger
	agg       *plugins.Aggregator
	val       *samples
	model     *ml.Network // the current global
	coord     *Coordinator
	nodes     []string // the clients' nodes, without repeats
	pieces    map[string]*paradigm.Assembly
	bytesUp   int64
	bytesDown int64
}

// newRun loads the job's state, or makes its initial model; inbox gives
// it the training workers' joins when the model's size waits for their
// Datasets' reports.
func (c *Cloud) newRun(ctx context.Context, spec workers.Spec, cfg *aggConfig, log *slog.Logger, inbox <-chan message) (*run, error) {
	r := &run{c: c, spec: spec, cfg: cfg, log: log, pieces: map[string]*paradigm.Assembly{}}
	host, err := c.env.Plugins()
	if err != nil {
		return nil, fmt.Errorf("federated: plugins: %w", err)
	}
	if r.agg, err = host.Aggregator(cfg.aggregator, cfg.aggParams); err != nil {
		return nil, fmt.Errorf("federated: %s.spec.containers[0].env %s: %w", spec.Field, ParamAggregator, err)
	}
	if cfg.validation != "" {
		open := os.Open
		if c.env.Data != nil {
			open = c.env.Data.Open
		}
		if r.val, err = readCSV(open, cfg.validation); err != nil {
			return nil, fmt.Errorf("federated: validation set (%s): %w", ParamValidation, err)
		}
	}
	seen := map[string]bool{}
	for _, cl := range cfg.clients {
		if !seen[cl.Node] {
			seen[cl.Node] = true
			r.nodes = append(r.nodes, cl.Node)
		}
	}
	st, err := c.load(key(spec))
	if err != nil {
		return nil, err
	}
	def := cfg.modelKey()
	switch {
	case st.Done && st.Gen < spec.Generation:
		log.Info("federated: the job changed after it finished: a new run", "generation", spec.Generation)
		st = State{}
	case len(st.Global) > 0 && st.Model != def:
		log.Info("federated: the job's model changed: a new run", "was", st.Model, "now", def)
		st = State{}
	}
	if len(st.Global) > 0 {
		if r.model, err = ml.Unmarshal(st.Global); err != nil {
			log.Warn("federated: the stored global model is unusable: a new run", "error", err)
			st = State{}
		}
	}
	if len(st.Global) == 0 {
		if r.model, err = r.initialModel(ctx, inbox); err != nil {
			return nil, err
		}
		if st.Global, err = r.model.MarshalBinary(); err != nil {
			return nil, err
		}
		st.Run = newRunID()
		st.Gen, st.Model = spec.Generation, def
		log.Info("federated: a new run", "run", st.Run, "model", r.model.Sizes(), "weights", r.model.NumWeights(),
			"aggregator", cfg.aggregator, "clients", len(cfg.clients), "minClients", cfg.minClients, "rounds", cfg.rounds)
	} else {
		log.Info("federated: resuming", "run", st.Run, "round", st.Round, "done", st.Done)
	}
	if r.val != nil {
		if r.val.cols != r.model.Inputs() {
			return nil, fmt.Errorf("federated: the validation set has %d features, the model takes %d", r.val.cols, r.model.Inputs())
		}
		r.val.keep(r.model.Classes())
		if r.val.bad > 0 {
			return nil, fmt.Errorf("federated: %d rows of the validation set have a label the model does not have (%d classes)", r.val.bad, r.model.Classes())
		}
	}
	if !st.Done {
		st.Gen = spec.Generation // a running job takes its new generation's rules
	}
	r.coord, err = NewCoordinator(cfg.rules(), st)
	if err != nil {
		return nil, err
	}
	// Stored at once: a join is then answered from this run's state, not
	// from an earlier run's.
	return r, r.save()
}

func key(spec workers.Spec) string { return spec.Job.String() }

func newRunID() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func (c *Cloud) load(job string) (State, error) {
	raw, err := c.env.Store.Get(stateKey(job))
	if errors.Is(err, store.ErrNotFound) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("federated: state of %s: %w", job, err)
	}
	var st State
	if err := msgpack.Unmarshal(raw, &st); err != nil {
		return State{}, fmt.Errorf("federated: state of %s: %w", job, err)
	}
	c.deleteBlobs(job, st.Saves+1) // written by a save that did not finish
	if st.Saves > 0 {
		if st.Global, err = readBlob(c.env.Store, globalBlob(job, st.Saves)); err != nil {
			return State{}, fmt.Errorf("federated: global model of %s: %w", job, err)
		}
		agg, err := readBlob(c.env.Store, aggBlob(job, st.Saves))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return State{}, fmt.Errorf("federated: aggregator state of %s: %w", job, err)
		}
		if len(agg) > 0 {
			if st.AggState, err = fromF32le(agg); err != nil {
				return State{}, fmt.Errorf("federated: aggregator state of %s: %w", job, err)
			}
		}
	}
	return st, nil
}

func readBlob(st store.Store, key string) ([]byte, error) {
	r, err := store.OpenBlob(st, key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// save stores the job's state: the global model and the aggregator's
// state as blobs of this save, then the state naming them, then it drops
// the previous save's blobs.
func (r *run) save() error {
	st := r.coord.State()
	job := key(r.spec)
	prev := st.Saves
	st.Saves++
	if _, err := store.PutBlob(r.c.env.Store, globalBlob(job, st.Saves), bytes.NewReader(st.Global), 256<<10); err != nil {
		return err
	}
	if len(st.AggState) > 0 {
		if _, err := store.PutBlob(r.c.env.Store, aggBlob(job, st.Saves), bytes.NewReader(f32le(st.AggState)), 256<<10); err != nil {
			return err
		}
	}
	meta := st
	meta.Global, meta.AggState = nil, nil
	raw, err := msgpack.Marshal(meta)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Put(stateKey(job), raw)
	if err := r.c.env.Store.Write(&b); err != nil {
		return err
	}
	r.coord.st.Saves = st.Saves
	r.c.deleteBlobs(job, prev)
	return nil
}

// initialModel is the pretrainedModel's newest version, or a new model of
// SEDNA_FL_MODEL's architecture, of the size decideSize decides: from
// SEDNA_FL_INPUTS and SEDNA_FL_CLASSES, the validation set, the
// aggregationWorker.model's newest version, or else the training
// workers' Datasets, whose reports it waits for on inbox.
func (r *run) initialModel(ctx context.Context, inbox <-chan message) (*ml.Network, error) {
	if r.cfg.pretrained != "" {
		_, data, err := r.c.env.Models.Latest(r.spec.Job.Namespace, r.cfg.pretrained, 0)
		if err != nil {
			return nil, fmt.Errorf("federated: pretrainedModel %q: %w", r.cfg.pretrained, err)
		}
		m, err := ml.Unmarshal(data)
		if err != nil {
			return nil, fmt.Errorf("federated: pretrainedModel %q is not a %s model: %w", r.cfg.pretrained, ModelFormat, err)
		}
		return m, nil
	}
	src := sizeSources{Clients: r.cfg.clients, Reports: map[string]*datasetReport{}, MinClients: r.cfg.minClients}
	src.Given = append(src.Given, sizeSource{Name: ParamInputs, Inputs: r.cfg.inputs}, sizeSource{Name: ParamClasses, Classes: r.cfg.classes})
	if r.val != nil {
		src.Given = append(src.Given, sizeSource{Name: "the validation set (" + ParamValidation + ")", Inputs: r.val.cols, Classes: r.val.classes()})
	}
	if r.val == nil && (r.cfg.inputs == 0 || r.cfg.classes == 0) {
		r.outputModelSize(&src)
	}
	size, err := r.awaitSize(ctx, inbox, src)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("federated: %s: %w", r.spec.Field, err)
	}
	r.log.Info("federated: the model's size", "inputs", size.Inputs, "inputsFrom", size.InputsFrom,
		"classes", size.Classes, "classesFrom", size.ClassesFrom)
	return newModel(r.cfg.model, size.Inputs, size.Classes, r.cfg.seed)
}

// outputModelSize adds the size of the aggregationWorker.model's newest
// version to src, when it has one in this package's format, and
// otherwise notes why it tells nothing. Its weights are not used: a
// pretrainedModel is the starting point.
func (r *run) outputModelSize(src *sizeSources) {
	name := r.cfg.outputModel
	if name == "" || r.c.env.Models == nil {
		return
	}
	what := fmt.Sprintf("aggregationWorker.model %q", name)
	_, data, err := r.c.env.Models.Latest(r.spec.Job.Namespace, name, 0)
	if err != nil {
		src.Notes = append(src.Notes, fmt.Sprintf("%s: %v", what, err))
		return
	}
	m, err := ml.Unmarshal(data)
	if err != nil {
		src.Notes = append(src.Notes, fmt.Sprintf("%s: its newest version is not a %s model (%v)", what, ModelFormat, err))
		return
	}
	src.Given = append(src.Given, sizeSource{Name: what + "'s newest version", Inputs: m.Inputs(), Classes: m.Classes()})
}

// awaitSize decides the model's size (decideSize), taking the training
// workers' joins from inbox, with their Datasets' reports, until it can.
// It says once what it waits for, and warns once per round deadline
// while it still waits; past the first deadline, SEDNA_FL_MIN_CLIENTS
// Datasets are enough.
func (r *run) awaitSize(ctx context.Context, inbox <-chan message, src sizeSources) (modelSize, error) {
	size, waiting, err := decideSize(src)
	if err != nil || waiting == "" {
		return size, err
	}
	r.log.Info("federated: the model's size comes from the training workers' Datasets: waiting for their reports", "waiting", waiting)
	r.spec.Event("Normal", "WaitingForDatasets", "the model's size comes from the training workers' Datasets: waiting for "+waiting)
	r.spec.Say("the model's size comes from the training workers' Datasets: waiting for " + waiting)
	defer r.spec.Say("")
	timer := time.NewTimer(r.cfg.timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return modelSize{}, ctx.Err()
		case m := <-inbox:
			switch {
			case m.kind != KindJoin:
				r.log.Debug("federated: an update before the run has a model: ignored", "node", m.node, "role", m.upd.Role)
				continue
			case !r.clientOn(m.join.Role, m.node):
				r.log.Warn("federated: a join from a node that does not run its role: ignored", "role", m.join.Role, "node", m.node)
				continue
			}
			src.Reports[m.join.Role] = m.join.Data
			if _, w, err := decideSize(src); err == nil && w != "" && w != waiting {
				waiting = w
				r.spec.Say("the model's size comes from the training workers' Datasets: waiting for " + waiting)
			}
		case <-timer.C:
			src.PastDeadline = true
			timer.Reset(r.cfg.timeout)
			if _, waiting, err = decideSize(src); err == nil && waiting != "" {
				r.log.Warn("federated: the model's size is not known yet", "waiting", waiting)
				r.spec.Event("Warning", "WaitingForDatasets", "the model's size is not known yet: waiting for "+waiting)
			}
		}
		if size, waiting, err = decideSize(src); err != nil || waiting == "" {
			if err == nil {
				r.spec.Event("Normal", "ModelSized", fmt.Sprintf("the model takes %d features (from %s) into %d classes (from %s)",
					size.Inputs, size.InputsFrom, size.Classes, size.ClassesFrom))
			}
			return size, err
		}
	}
}

// send sends a message to every client node: at once to those online
// when now is set, through the durable downlink otherwise (ttl 0: until
// delivered). It returns the bytes sent.
func (r *run) send(nodes []string, body global, ttl time.Duration, now bool) int64 {
	body.Gen = r.coord.State().Gen
	raw, err := topics.Encode(KindGlobal, "federated/cloud", body)
	if err != nil {
		return 0
	}
	var n int64
	for _, node := range nodes {
		topic := GlobalTopic(node, r.spec.Job)
		m := paradigm.Outbound{Node: node, Topic: topic, Payload: raw}
		if ttl > 0 {
			m.Expires = r.c.env.Clock().Add(ttl)
		}
		err := paradigm.ErrOffline
		if now {
			err = r.c.env.Bus.SendNow(m)
		}
		if errors.Is(err, paradigm.ErrOffline) {
			err = r.c.env.Bus.Send(m)
		}
		if err != nil {
			r.log.Warn("federated: message for a node not queued", "node", node, "error", err)
			continue
		}
		n += int64(len(raw))
	}
	return n
}

// broadcast sends the current round's global model to nodes.
func (r *run) broadcast(nodes []string) {
	st := r.coord.State()
	ttl := time.Until(r.coord.Deadline())
	if ttl < time.Second {
		ttl = time.Second
	}
	parts := paradigm.Chunks(st.Global, r.cfg.chunkBytes)
	for i, p := range parts {
		r.bytesDown += r.send(nodes, global{Run: st.Run, Round: st.Round, Rounds: r.cfg.rounds, Chunk: i, Chunks: len(parts), Size: len(st.Global), Data: p}, ttl, true)
	}
}

func (r *run) run(ctx context.Context, inbox <-chan message) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s := r.coord.Next(time.Now())
		switch {
		case s.Done:
			return r.finish(ctx)
		case s.Close:
			if err := r.close(ctx); err != nil {
				return err
			}
			continue
		case s.Begin:
			clear(r.pieces)
			r.bytesUp, r.bytesDown = 0, 0
			r.broadcast(r.nodes)
			r.log.Debug("federated: round started", "round", s.Round)
		}
		if s.Overdue {
			have, need, missing := r.coord.Waiting()
			r.log.Warn("federated: round past its deadline without enough clients", "round", s.Round,
				"have", have, "need", need, "missing", missing)
			r.spec.Event("Warning", "RoundWaiting", fmt.Sprintf("round %d: %d of the %d updates it needs at its deadline; waiting for %v",
				s.Round, have, need, missing))
		}
		if len(s.Ask) > 0 {
			r.broadcast(r.nodesOf(s.Ask))
		}
		timer.Reset(time.Until(s.Wait))
		select {
		case <-ctx.Done():
			return nil
		case m := <-inbox:
			r.take(m)
		case <-timer.C:
		}
	}
}

// take handles a node's message.
func (r *run) take(m message) {
	st := r.coord.State()
	switch m.kind {
	case KindJoin:
		if !r.clientOn(m.join.Role, m.node) {
			r.log.Warn("federated: a join from a node that does not run its role: ignored", "role", m.join.Role, "node", m.node)
			return
		}
		if d := m.join.Data; d != nil && d.usable() && (d.Inputs != r.model.Inputs() || d.Classes > r.model.Classes()) {
			r.log.Warn("federated: a client's Dataset does not fit the model: its samples of another width, or with a label beyond the model's classes, are skipped",
				"role", m.join.Role, "node", m.node, "features", d.Inputs, "labels", d.Classes, "inputs", r.model.Inputs(), "classes", r.model.Classes())
		}
		if m.join.Run == st.Run && m.join.Round >= st.Round && r.coord.Has(m.join.Role) {
			return // its update for this round is in
		}
		// Otherwise it gets the round's global: it trains, or, if it has
		// trained on it already, sends its update again (one lost, or held
		// only in the memory of a cloud that restarted).
		r.log.Info("federated: a client joins", "role", m.join.Role, "node", m.node, "round", st.Round)
		r.broadcast([]string{m.node})
	case KindUpdate:
		u := m.upd
		id := u.Role + "/" + strconv.FormatUint(u.Run, 16) + "/" + strconv.FormatInt(u.Round, 10)
		if !r.clientOn(u.Role, m.node) {
			r.log.Warn("federated: an update from a node that does not run its role: ignored", "role", u.Role, "node", m.node)
			return
		}
		if u.Run != st.Run || u.Round != st.Round {
			if u.Chunk == 0 { // counted once per update
				v := r.coord.Offer(u.Run, u.Round, Contribution{Role: u.Role})
				r.log.Info("federated: update not counted", "role", u.Role, "node", m.node, "round", u.Round, "current", st.Round, "verdict", v)
			}
			return
		}
		if r.coord.Has(u.Role) {
			return // sent again; this round has it
		}
		if err := checkUpdate(u, r.model.NumWeights()); err != nil {
			r.log.Warn("federated: update refused", "role", u.Role, "node", m.node, "error", err)
			delete(r.pieces, id)
			return
		}
		a := r.pieces[id]
		if a == nil {
			a = &paradigm.Assembly{Max: 4 * r.model.NumWeights(), MinPiece: minChunkBytes}
			r.pieces[id] = a
		}
		whole, err := a.Add(u.Chunk, u.Chunks, u.Data)
		if err != nil {
			r.log.Warn("federated: update piece refused", "role", u.Role, "error", err)
			delete(r.pieces, id)
			return
		}
		r.bytesUp += int64(m.size)
		if !whole {
			return
		}
		delete(r.pieces, id)
		w, err := fromF32le(a.Bytes())
		if err == nil && len(w) != r.model.NumWeights() {
			err = fmt.Errorf("%d weights, the model has %d", len(w), r.model.NumWeights())
		}
		if err != nil {
			r.log.Warn("federated: update refused", "role", u.Role, "node", m.node, "error", err)
			return
		}
		v := r.coord.Offer(u.Run, u.Round, Contribution{Role: u.Role, Weights: w, Samples: u.Samples, Loss: u.Loss, Train: u.Train})
		r.log.Debug("federated: update", "role", u.Role, "round", u.Round, "samples", u.Samples, "verdict", v)
	}
}

// checkUpdate refuses an update whose numbers cannot be true: they would
// skew the average (a sample count) or the job's status (a loss).
func checkUpdate(u update, weights int) error {
	switch {
	case u.Params != weights:
		return fmt.Errorf("%d weights, the model has %d", u.Params, weights)
	case u.Samples <= 0 || u.Samples > 1<<40:
		return fmt.Errorf("%d samples", u.Samples)
	case math.IsNaN(u.Loss) || math.IsInf(u.Loss, 0) || u.Loss < 0:
		return fmt.Errorf("loss %v", u.Loss)
	case math.IsNaN(u.Train) || math.IsInf(u.Train, 0) || u.Train < 0:
		return fmt.Errorf("training time %v", u.Train)
	}
	return nil
}

// nodesOf returns the nodes of roles, without repeats.
func (r *run) nodesOf(roles []string) []string {
	var out []string
	for _, c := range r.cfg.clients {
		if slices.Contains(roles, c.Role) && !slices.Contains(out, c.Node) {
			out = append(out, c.Node)
		}
	}
	return out
}

// clientOn reports whether role is a training worker placed on node (a
// node may send updates only for its own workers).
func (r *run) clientOn(role, node string) bool {
	for _, c := range r.cfg.clients {
		if c.Role == role {
			return c.Node == node
		}
	}
	return false
}

// close aggregates the open round, scores it and decides what is next.
func (r *run) close(ctx context.Context) error {
	contribs := r.coord.Contributions()
	updates := make([]plugins.Update, len(contribs))
	for i, u := range contribs {
		updates[i] = plugins.Update{Weights: u.Weights, Samples: float64(u.Samples)}
	}
	st := r.coord.State()
	res, err := r.agg.Aggregate(ctx, plugins.Round{Number: st.Round, Updates: updates, Global: r.model.Weights(), State: st.AggState})
	if err != nil {
		r.spec.Event("Warning", "AggregationFailed", fmt.Sprintf("round %d: %v", st.Round, err))
		return fmt.Errorf("federated: round %d: %w", st.Round, err)
	}
	next := r.model.Clone().(*ml.Network)
	if err := next.SetWeights(res.Weights); err != nil {
		r.spec.Event("Warning", "AggregationFailed", fmt.Sprintf("round %d: the aggregate is unusable: %v", st.Round, err))
		return fmt.Errorf("federated: round %d: the aggregator %s returned unusable weights: %w", st.Round, r.cfg.aggregator, err)
	}
	// The round's numbers count the updates the aggregator used.
	excluded := map[int]bool{}
	for _, f := range strings.Split(res.Metadata["excluded"], ",") {
		if i, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			excluded[i] = true
		}
	}
	var samples int64
	var lossSum, slowest float64
	var out []string
	for i, u := range contribs {
		if excluded[i] {
			out = append(out, u.Role)
			continue
		}
		samples += u.Samples
		lossSum += u.Loss * float64(u.Samples)
		slowest = max(slowest, u.Train)
	}
	next.SetSamples(int(min(samples, math.MaxInt32)))
	blob, err := next.MarshalBinary()
	if err != nil {
		return err
	}
	rec := Record{Samples: samples, Accuracy: -1, BytesUp: r.bytesUp, BytesDown: r.bytesDown, TrainSeconds: slowest,
		Excluded: strings.Join(out, ",")}
	if samples > 0 {
		rec.TrainLoss = lossSum / float64(samples)
	}
	rec.Loss = rec.TrainLoss
	if r.val != nil {
		ev, err := ml.Evaluate(next, r.val.x, r.val.y)
		if err != nil {
			return fmt.Errorf("federated: round %d: validation: %w", st.Round, err)
		}
		rec.Accuracy, rec.Loss = ev.Accuracy, ev.LogLoss
	}
	rec = r.coord.Close(time.Now(), blob, res.State, rec)
	r.model = next
	if err := r.save(); err != nil {
		return fmt.Errorf("federated: round %d not stored: %w", rec.Round, err)
	}
	msg := fmt.Sprintf("round %d/%d: %d of %d clients, %d samples", rec.Round, r.cfg.rounds, rec.Participants, rec.Clients, rec.Samples)
	if rec.Accuracy >= 0 {
		msg += fmt.Sprintf(", accuracy %.4f, loss %.4f", rec.Accuracy, rec.Loss)
	} else {
		msg += fmt.Sprintf(", training loss %.4f", rec.TrainLoss)
	}
	msg += fmt.Sprintf(", %d B up, %d B down, %.2f s", rec.BytesUp, rec.BytesDown, rec.Seconds)
	if len(rec.Missing) > 0 {
		msg += fmt.Sprintf(", without %v", rec.Missing)
	}
	if rec.Late > 0 {
		msg += fmt.Sprintf(", %d late updates ignored", rec.Late)
	}
	if rec.Excluded != "" {
		msg += ", excluded by the aggregator: " + rec.Excluded
	}
	r.spec.Event("Normal", "RoundCompleted", msg)
	if raw, err := topics.Encode(KindRound, "federated/cloud", rec); err == nil {
		if err := r.c.env.Bus.Publish(RoundTopic(r.spec.Job), raw, false, 0); err != nil {
			r.log.Warn("federated: round record not published", "error", err)
		}
	}
	r.log.Info("federated: "+msg, "round", rec.Round)
	r.report(rec)
	return nil
}

// report gives the job its numbers (RoundMetrics).
func (r *run) report(rec Record) {
	if r.spec.ReportMetrics != nil {
		r.spec.ReportMetrics(RoundMetrics(rec, r.coord.State(), r.cfg.rounds))
	}
}

// finish registers the final model and tells the workers the job is over.
func (r *run) finish(ctx context.Context) error {
	st := r.coord.State()
	if r.cfg.outputModel != "" && !st.Registered {
		metrics := map[string]string{"rounds": strconv.FormatInt(st.Round, 10), "aggregator": r.cfg.aggregator}
		if n := len(st.History); n > 0 {
			last := st.History[n-1]
			if last.Accuracy >= 0 {
				metrics["accuracy"] = strconv.FormatFloat(last.Accuracy, 'f', 4, 64)
			}
			metrics["loss"] = strconv.FormatFloat(last.Loss, 'f', 4, 64)
			metrics["participants"] = strconv.Itoa(last.Participants)
		}
		v, err := r.c.env.Models.Register(ctx, r.spec.Job.Namespace, r.cfg.outputModel, ModelFormat, r.spec.Job.String(), metrics, st.Global)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped: the next run of the worker registers it
			}
			return fmt.Errorf("federated: the final model not registered: %w", err)
		}
		r.coord.st.Registered = true
		if err := r.save(); err != nil {
			return err
		}
		r.spec.Event("Normal", "ModelRegistered", fmt.Sprintf("model %s version %d (%s)", r.cfg.outputModel, v, st.Reason))
	}
	if st.Announced {
		return nil // told before a restart
	}
	r.send(r.nodes, global{Run: st.Run, Round: st.Round, Done: true}, time.Hour, false)
	r.coord.st.Announced = true
	if err := r.save(); err != nil {
		return err
	}
	r.spec.Event("Normal", "Finished", st.Reason)
	r.log.Info("federated: the job is over", "reason", st.Reason)
	return nil
}
