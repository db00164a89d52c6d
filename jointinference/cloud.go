package jointinference

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// CloudEnv is what the cloud worker needs of the cloud manager: the
// cloud's paradigm.Env (Bus, Models, Log).
type CloudEnv = paradigm.Env

// Cloud serves the cloud side of every JointInferenceService: one
// subscription to every node's offloads, dispatched to the cloud worker of
// each service (the cloud manager's own dispatch; several replicas of a
// worker share its queue).
type Cloud struct {
	env  CloudEnv
	stop func() error
	mu   sync.Mutex
	svc  map[string]*cloudWorker // by job key
}

// Close ends the subscription to offloads.
func (c *Cloud) Close() { _ = c.stop() }

// NewCloud subscribes to offloads on env.Bus.
func NewCloud(env CloudEnv) (*Cloud, error) {
	env.Log = env.Logger()
	c := &Cloud{env: env, svc: map[string]*cloudWorker{}}
	filter := topics.NodeJobsFilter(api.KindJointInferenceService, "offload")
	stop, err := env.Bus.Subscribe(filter, func(m paradigm.Message) error { return c.onOffload(m.Topic, m.Payload) })
	if err != nil {
		return nil, fmt.Errorf("jointinference: subscribe %s: %w", filter, err)
	}
	c.stop = stop
	return c, nil
}

type offloadMsg struct {
	node string
	env  *topics.Envelope
	at   time.Time
}

type cloudWorker struct {
	ref      topics.JobRef
	queue    chan offloadMsg
	model    atomic.Pointer[model]
	samples  atomic.Int64
	batches  atomic.Int64
	errors   atomic.Int64
	rejected atomic.Int64
	busy     atomic.Int64 // nanoseconds spent inferring
}

// onOffload routes an offload batch to its service's worker; with none
// running it answers at once with an error, so the edge answers at once.
func (c *Cloud) onOffload(topic string, payload []byte) error {
	p, err := topics.Parse(topic)
	if err != nil || p.Class != topics.ClassNodeJob {
		return nil
	}
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{MaxBody: 64 << 20})
	if err != nil || env.Kind != KindOffload {
		c.env.Log.Warn("joint inference: not an offload", "topic", topic, "error", err)
		return nil
	}
	c.mu.Lock()
	w := c.svc[p.Job.String()]
	c.mu.Unlock()
	if w == nil {
		c.reply(p.Node, env, offloadReply{Error: "no cloud worker of " + p.Job.String() + " is running"})
		return nil
	}
	select {
	case w.queue <- offloadMsg{node: p.Node, env: env, at: time.Now()}:
	default:
		w.rejected.Add(1)
		c.reply(p.Node, env, offloadReply{Error: "the cloud worker is overloaded"})
	}
	return nil
}

func (c *Cloud) reply(node string, req *topics.Envelope, r offloadReply) {
	env, err := topics.NewEnvelope(KindReply, "jointinference/cloud", r)
	if err != nil {
		return
	}
	env.CorrelationID = req.CorrelationID
	raw, err := env.Marshal()
	if err != nil {
		return
	}
	to := req.ReplyTo
	if p, err := topics.Parse(to); err != nil || p.Class != topics.ClassToNode || p.Node != node {
		c.env.Log.Warn("joint inference: an offload asks for a reply elsewhere than its node", "node", node, "replyTo", to)
		return
	}
	if err := c.env.Bus.SendNow(paradigm.Outbound{Node: node, Topic: to, Payload: raw, Expires: c.env.Clock().Add(30 * time.Second)}); err != nil {
		c.env.Log.Warn("joint inference: reply not queued", "node", node, "error", err)
	}
}

// Worker is the built-in cloud worker of a JointInferenceService: it loads
// the cloud model and answers its service's offloads with
// SEDNA_JI_REPLICAS concurrent inferences (default 2).
func (c *Cloud) Worker() workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		js, err := parseSpec(spec)
		if err != nil {
			return err
		}
		tk, err := taskOf(spec.Params)
		if err != nil {
			return err
		}
		replicas, err := replicasOf(spec.Params)
		if err != nil {
			return err
		}
		w, detach := c.attach(spec.Job)
		defer detach()
		name := js.CloudWorker.Model.Name
		var bad uint64
		load := func() {
			var have uint64
			if cur := w.model.Load(); cur != nil {
				have = cur.version
			}
			v, data, err := c.env.Models.Latest(spec.Job.Namespace, name, have)
			if err != nil || v == bad || v == have {
				return
			}
			info, err := paradigm.DescribeModel(c.env.Models, spec.Job.Namespace, name, v)
			var m *model
			if err == nil {
				m, err = loadModel(data, info, v, tk)
			}
			if err != nil {
				bad = v
				log.Error("joint inference: cloud model not usable", "model", name, "error", err)
				spec.Say(unusable("cloud", name, have, err))
				return
			}
			w.model.Store(m)
			spec.Say("")
			log.Info("joint inference: cloud model loaded", "model", name, "version", v, "format", m.format, "task", tk.kind)
		}
		load()
		var wg sync.WaitGroup
		for range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-ctx.Done():
						return
					case m := <-w.queue:
						c.serve(w, m)
					}
				}
			}()
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last int64 = -1
		for {
			select {
			case <-ctx.Done():
				wg.Wait()
				return nil
			case <-tick.C:
				load()
				if n := w.samples.Load() + w.errors.Load() + w.rejected.Load(); n != last && spec.ReportMetrics != nil {
					last = n
					spec.ReportMetrics(w.metrics())
				}
			}
		}
	}
}

// attach makes the cloud worker of service ref, to which its offloads go
// until detach.
func (c *Cloud) attach(ref topics.JobRef) (w *cloudWorker, detach func()) {
	w = &cloudWorker{ref: ref, queue: make(chan offloadMsg, 1024)}
	key := ref.String()
	c.mu.Lock()
	c.svc[key] = w
	c.mu.Unlock()
	return w, func() {
		c.mu.Lock()
		if c.svc[key] == w {
			delete(c.svc, key)
		}
		c.mu.Unlock()
	}
}

// replicasOf is SEDNA_JI_REPLICAS of a cloud worker's env: how many
// batches it serves at once (default 2).
func replicasOf(p map[string]string) (int, error) {
	v := p[ParamReplicas]
	if v == "" {
		return 2, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 64 {
		return 0, fmt.Errorf("jointinference: %s=%q: want 1 to 64", ParamReplicas, v)
	}
	return n, nil
}

// metrics are a cloud worker's numbers for its job's status.
func (w *cloudWorker) metrics() map[string]float64 {
	return map[string]float64{
		"cloudInferences": float64(w.samples.Load()), "cloudBatches": float64(w.batches.Load()),
		"cloudErrors": float64(w.errors.Load()), "cloudRejected": float64(w.rejected.Load()),
		"cloudBusySeconds": float64(w.busy.Load()) / 1e9,
	}
}

// serve answers one offload batch with the worker's model.
func (c *Cloud) serve(w *cloudWorker, m offloadMsg) { c.serveWith(context.Background(), w, m, nil) }

// serveWith answers one offload batch: with ext, the program of an
// external cloud worker, given each sample's values in its shape; else
// the worker's model.
func (c *Cloud) serveWith(ctx context.Context, w *cloudWorker, m offloadMsg, ext *external) {
	var b offloadBatch
	if err := m.env.DecodeBody(&b); err != nil {
		w.errors.Add(1)
		c.reply(m.node, m.env, offloadReply{Error: "offload: " + err.Error()})
		return
	}
	if ext != nil {
		c.serveExternal(ctx, w, m, b, ext)
		return
	}
	model := w.model.Load()
	if model == nil {
		w.errors.Add(1)
		c.reply(m.node, m.env, offloadReply{Error: "the cloud model is not registered yet"})
		return
	}
	start := time.Now()
	out := offloadReply{Results: make([]cloudResult, len(b.Samples))}
	rows := make([][]float32, 0, len(b.Samples))
	shapes := make([][]int, 0, len(b.Samples))
	idx := make([]int, 0, len(b.Samples))
	for i := range b.Samples {
		s := &b.Samples[i]
		out.Results[i].ID = s.ID
		r := s.request()
		x, err := r.Floats()
		if err == nil {
			x, err = model.features(x, s.Shape)
		}
		if err != nil {
			out.Results[i].Error = err.Error()
			continue
		}
		rows = append(rows, x)
		shapes = append(shapes, s.Shape)
		idx = append(idx, i)
	}
	if len(rows) > 0 {
		answers, err := model.infer(rows, shapes)
		if err != nil {
			out = offloadReply{Error: err.Error()}
		} else {
			for j, i := range idx {
				out.Results[i].Probs, out.Results[i].Boxes = answers[j].probs, answers[j].boxes
				if out.Results[i].Boxes == nil && model.det != nil {
					out.Results[i].Boxes = [][6]float32{} // none found, which is an answer
				}
			}
		}
	}
	w.busy.Add(int64(time.Since(start)))
	w.batches.Add(1)
	w.samples.Add(int64(len(rows)))
	c.reply(m.node, m.env, out)
}

// serveExternal answers a batch with an external cloud worker's program.
func (c *Cloud) serveExternal(ctx context.Context, w *cloudWorker, m offloadMsg, b offloadBatch, ext *external) {
	start := time.Now()
	out := offloadReply{Results: make([]cloudResult, len(b.Samples))}
	var ids []string
	var rows [][]float32
	var shapes [][]int
	var idx []int
	for i := range b.Samples {
		s := &b.Samples[i]
		out.Results[i].ID = s.ID
		r := s.request()
		x, err := r.Floats()
		if err != nil {
			out.Results[i].Error = err.Error()
			continue
		}
		ids, rows, shapes, idx = append(ids, s.ID), append(rows, x), append(shapes, s.Shape), append(idx, i)
	}
	if len(rows) > 0 {
		answers, errs, err := ext.serve(ctx, ids, rows, shapes)
		if err != nil {
			w.errors.Add(1)
			out = offloadReply{Error: err.Error()}
		} else {
			for j, i := range idx {
				out.Results[i].Probs, out.Results[i].Error = answers[j].probs, errs[j]
			}
		}
	}
	w.busy.Add(int64(time.Since(start)))
	w.batches.Add(1)
	w.samples.Add(int64(len(rows)))
	c.reply(m.node, m.env, out)
}
