package incremental

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// A Train or Eval stage the template places on an edge node runs there:
// the cloud, which holds the labelled examples and the models, sends the
// node a work order (the models and the examples it needs) in parts; the
// node's train or eval worker computes and sends the result back in parts
// (a training's candidate model, an evaluation's numbers). The cloud sends
// the order again every workResend until the result comes, so a node that
// restarted mid-work (or never got it) does it again; a node that finished
// the attempt sends its result again.

// workOrder is what a node needs for one attempt of a stage.
type workOrder struct {
	Attempt string              `msgpack:"attempt"`
	Stage   Stage               `msgpack:"stage"`
	Task    jointinference.Task `msgpack:"task"`
	// Base is the serving model; Candidate the model to evaluate beside
	// it (Eval).
	Base []byte `msgpack:"base"`
	// BaseInfo describes Base (and Candidate, which stands in for it).
	BaseInfo  paradigm.ModelInfo `msgpack:"baseInfo"`
	Candidate []byte             `msgpack:"candidate,omitempty"`
	Set       TrainSet           `msgpack:"set"`
	Eval      []Example          `msgpack:"eval,omitempty"`
	Fit       Fit                `msgpack:"fit"`
}

// workResult is a node's result of a work order.
type workResult struct {
	Attempt string  `msgpack:"attempt"`
	Model   []byte  `msgpack:"model,omitempty"` // Train: the candidate
	Eval    Metrics `msgpack:"evalm,omitempty"`
	Base    Metrics `msgpack:"basem,omitempty"`
	Error   string  `msgpack:"error,omitempty"`
}

// workPart is one piece of an encoded order or result.
type workPart struct {
	Attempt string `msgpack:"attempt"`
	Part    int    `msgpack:"part"`
	Parts   int    `msgpack:"parts"`
	Data    []byte `msgpack:"data"`
}

// workPartBytes bounds a part (well within a message of the bus).
const workPartBytes = 256 << 10

// workResend is how long the cloud waits for a node's result before it
// sends the order again.
var workResend = 30 * time.Second

// workTopic is the topic of a role's work orders under a job ("work/train").
func workTopic(stage Stage) string {
	if stage == Train {
		return "work/train"
	}
	return "work/eval"
}

// split encodes v into parts of attempt.
func split(attempt string, v any) ([]workPart, error) {
	raw, err := msgpack.Marshal(v)
	if err != nil {
		return nil, err
	}
	chunks := paradigm.Chunks(raw, workPartBytes)
	parts := make([]workPart, len(chunks))
	for i, c := range chunks {
		parts[i] = workPart{Attempt: attempt, Part: i, Parts: len(chunks), Data: c}
	}
	return parts, nil
}

// assembler puts the parts of attempts together; it holds at most
// maxAssembling attempts (the oldest forgotten: sent again, they come
// again). A part that disagrees with the earlier ones on their count
// starts its attempt again.
type assembler struct {
	parts map[string]*paradigm.Assembly
	order []string
}

const maxAssembling = 4

func newAssembler() *assembler { return &assembler{parts: map[string]*paradigm.Assembly{}} }

// add takes a part; it returns the whole encoding once every part came.
func (a *assembler) add(p workPart) ([]byte, error) {
	fresh := func() *paradigm.Assembly { return &paradigm.Assembly{MinPiece: workPartBytes} }
	as, held := a.parts[p.Attempt]
	if !held {
		as = fresh()
	}
	whole, err := as.Add(p.Part, p.Parts, p.Data)
	if err != nil && held { // another count: the attempt again
		as = fresh()
		whole, err = as.Add(p.Part, p.Parts, p.Data)
	}
	if err != nil {
		return nil, err
	}
	if !held {
		a.order = append(a.order, p.Attempt)
		if len(a.order) > maxAssembling {
			delete(a.parts, a.order[0])
			a.order = a.order[1:]
		}
	}
	a.parts[p.Attempt] = as
	if !whole {
		return nil, nil
	}
	delete(a.parts, p.Attempt)
	for i, at := range a.order {
		if at == p.Attempt {
			a.order = append(a.order[:i], a.order[i+1:]...)
			break
		}
	}
	return as.Bytes(), nil
}

// ---- the cloud's side ----

// delegate sends a work order to node and waits for its result, sending
// the order again every workResend; ctx's end (the cloud stopping) cuts
// the attempt, which then runs again at the next start.
func (c *Cloud) delegate(ctx context.Context, j *job, node string, order workOrder) (workResult, error) {
	parts, err := split(order.Attempt, order)
	if err != nil {
		return workResult{}, err
	}
	ch := make(chan workResult, 1)
	c.mu.Lock()
	if c.remote == nil {
		c.remote = map[string]chan workResult{}
	}
	c.remote[jobKey(j.ref)+"/"+order.Attempt] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.remote, jobKey(j.ref)+"/"+order.Attempt)
		c.mu.Unlock()
	}()
	topic := topics.ToNodeJob(node, j.ref, workTopic(order.Stage))
	send := func() {
		// A copy expires after three periods: a node offline for a day
		// finds a few copies in its downlink, not one per period (the
		// parts of copies of one order come together).
		expires := time.Now().Add(3 * workResend)
		for _, p := range parts {
			raw, err := topics.Encode(KindWork, "incremental/cloud", p)
			if err == nil {
				err = c.env.Bus.Send(paradigm.Outbound{Node: node, Topic: topic, Payload: raw, Bulk: true, Expires: expires})
			}
			if err != nil {
				c.env.Log.Warn(c.fl.Source+": a work order not queued", "job", j.ref.String(), "node", node, "error", err)
				return
			}
		}
	}
	send()
	t := time.NewTicker(workResend)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return workResult{}, ctx.Err()
		case res := <-ch:
			if res.Error != "" {
				return res, fmt.Errorf("on node %s: %s", node, res.Error)
			}
			return res, nil
		case <-t.C:
			c.env.Log.Info(c.fl.Source+": no result from the node yet: the work order sent again", "job", j.ref.String(), "node", node,
				"attempt", order.Attempt)
			send()
		}
	}
}

// onWork takes a part of a node's result.
func (c *Cloud) onWork(m paradigm.Message) error {
	p, err := topics.Parse(m.Topic)
	if err != nil || p.Class != topics.ClassNodeJob {
		return nil
	}
	var part workPart
	if err := decode(m.Payload, KindWork, &part); err != nil {
		c.env.Log.Warn(c.fl.Source+": a work result refused", "node", p.Node, "error", err)
		return nil
	}
	key := jobKey(p.Job)
	c.mu.Lock()
	j := c.jobs[key]
	ch := c.remote[key+"/"+part.Attempt]
	var placed bool
	if j != nil {
		placed = j.spec.placement(Train) == p.Node || j.spec.placement(Eval) == p.Node
	}
	if ch == nil || !placed {
		c.mu.Unlock()
		return nil // not waited for (done, or not that node's to answer)
	}
	if c.results == nil {
		c.results = newAssembler()
	}
	whole, err := c.results.add(workPart{Attempt: p.Node + "/" + key + "/" + part.Attempt, Part: part.Part, Parts: part.Parts, Data: part.Data})
	c.mu.Unlock()
	if err != nil || whole == nil {
		return nil
	}
	var res workResult
	if err := msgpack.Unmarshal(whole, &res); err != nil || res.Attempt != part.Attempt {
		c.env.Log.Warn(c.fl.Source+": a work result that cannot be read", "node", p.Node, "error", err)
		return nil
	}
	select {
	case ch <- res:
	default:
	}
	return nil
}

// placement is the node a stage's template names ("" for the cloud's).
func (j *job) placement(s Stage) string {
	switch s {
	case Train:
		return j.spec.TrainTemplate.Spec.NodeName
	case Eval:
		return j.spec.EvalTemplate.Spec.NodeName
	}
	return ""
}

// ---- the node's side ----

// stageWorker is the built-in train or eval worker: in the cloud it
// stands by (the cloud half runs the stages), on an edge node it does the
// work orders the cloud sends for its stage.
func (e *Edge) stageWorker(stage Stage) workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		j, err := jobOf(e.fl, spec.Job, spec.Document)
		if err != nil {
			return err
		}
		learner, err := j.learner(e.env)
		if err != nil {
			return err
		}
		in := make(chan []byte, 256)
		stop, err := e.env.Bus.Subscribe(topics.JobTopic(j.ref, workTopic(stage)), func(m paradigm.Message) error {
			select {
			case in <- m.Payload:
			case <-ctx.Done():
			}
			return nil
		})
		if err != nil {
			return err
		}
		defer func() { _ = stop() }()
		what := "runs the job's %s attempts the cloud sends this node"
		if spec.Command != nil {
			what += ", with the template's command"
		}
		spec.Say(fmt.Sprintf(what, strings.ToLower(string(stage))))
		asm := newAssembler()
		done := map[string][]workPart{} // results of attempts done, sent again when asked again
		var doneOrder []string
		for {
			var raw []byte
			select {
			case <-ctx.Done():
				return nil
			case raw = <-in:
			}
			var part workPart
			if err := decode(raw, KindWork, &part); err != nil {
				log.Warn(e.fl.Source+": a work order refused", "error", err)
				continue
			}
			whole, err := asm.add(part)
			if err != nil {
				log.Warn(e.fl.Source+": a work order refused", "error", err)
				continue
			}
			if whole == nil {
				continue
			}
			if parts, ok := done[part.Attempt]; ok {
				e.sendWork(j, stage, parts)
				continue
			}
			var order workOrder
			res := workResult{Attempt: part.Attempt}
			if err := msgpack.Unmarshal(whole, &order); err != nil {
				res.Error = "a work order that cannot be read: " + err.Error()
			} else {
				t0 := time.Now()
				if spec.Command != nil {
					res = external(ctx, spec.Command, j.ref, learner, order)
				} else {
					res = work(ctx, learner, order)
				}
				if ctx.Err() != nil {
					return nil
				}
				log.Info(e.fl.Source+": a stage's work done", "attempt", order.Attempt, "stage", order.Stage, "took", time.Since(t0).Round(time.Millisecond),
					"error", res.Error)
			}
			parts, err := split(res.Attempt, res)
			if err != nil {
				return err
			}
			done[part.Attempt] = parts
			doneOrder = append(doneOrder, part.Attempt)
			if len(doneOrder) > maxAssembling {
				delete(done, doneOrder[0])
				doneOrder = doneOrder[1:]
			}
			e.sendWork(j, stage, parts)
		}
	}
}

func (e *Edge) sendWork(j *job, stage Stage, parts []workPart) {
	for _, p := range parts {
		raw, err := topics.Encode(KindWork, "incremental/edge", p)
		if err == nil {
			err = e.env.Bus.Send(paradigm.Outbound{Topic: topics.NodeJob(e.env.Node, j.ref, "work"), Payload: raw, Bulk: true})
		}
		if err != nil {
			e.env.Log.Warn(e.fl.Source+": a stage's result not queued", "job", j.ref.String(), "stage", stage, "error", err)
			return
		}
	}
}

// work does a work order: a training or an evaluation.
func work(ctx context.Context, learner Learner, o workOrder) workResult {
	res := workResult{Attempt: o.Attempt}
	fail := func(err error) workResult { res.Error = err.Error(); return res }
	var err error
	switch o.Stage {
	case Train:
		if res.Model, err = learner.Learn(ctx, o.Base, o.Set, o.Fit); err != nil {
			return fail(err)
		}
	case Eval:
		if res.Eval, err = learner.Score(o.Candidate, o.BaseInfo, o.Eval); err != nil {
			return fail(fmt.Errorf("the candidate: %w", err))
		}
		res.Base = Metrics{}
		if o.Base != nil {
			if res.Base, err = learner.Score(o.Base, o.BaseInfo, o.Eval); err != nil {
				return fail(fmt.Errorf("the serving model: %w", err))
			}
		}
	default:
		return fail(errors.New("no work for stage " + string(o.Stage)))
	}
	return res
}

// ---- external workers in the cloud ----

// localWork is a work order for one of the cloud's drivers.
type localWork struct {
	order workOrder
	reply chan workResult
}

// driverWait bounds how long a stage waits for the cloud's driver of its
// worker to start (the cloud's supervisor starts it with the job).
var driverWait = time.Minute

// commanded reports whether a template runs a command (an external worker).
func commanded(t api.PodTemplate) bool {
	return len(t.Spec.Containers) > 0 && len(t.Spec.Containers[0].Command) > 0
}

func where(node string) string {
	if node == "" {
		return "in the cloud"
	}
	return "on node " + node
}

// execute has a work order done on node, or ("") by the cloud's driver of
// the stage's external worker.
func (c *Cloud) execute(j *job, node string, order workOrder) (workResult, error) {
	if node != "" {
		return c.delegate(c.ctx, j, node, order)
	}
	key := jobKey(j.ref) + "/" + string(order.Stage)
	wait := time.NewTimer(driverWait)
	defer wait.Stop()
	for {
		c.mu.Lock()
		ch, changed := c.local[key], c.localChanged
		c.mu.Unlock()
		if ch != nil {
			w := localWork{order: order, reply: make(chan workResult, 1)}
			select {
			case ch <- w:
			case <-changed: // the driver went (or another came): look again
				continue
			case <-c.ctx.Done():
				return workResult{}, c.ctx.Err()
			}
			select {
			case res := <-w.reply:
				if res.Error != "" {
					return res, errors.New(res.Error)
				}
				return res, nil
			case <-c.ctx.Done():
				return workResult{}, c.ctx.Err()
			}
		}
		select {
		case <-changed:
		case <-c.ctx.Done():
			return workResult{}, c.ctx.Err()
		case <-wait.C:
			return workResult{}, fmt.Errorf("no %s worker of the job runs in the cloud after %v (see its workers in sedna describe)",
				strings.ToLower(string(order.Stage)), driverWait)
		}
	}
}

// driver is the cloud's train or eval worker for a template with a
// command: it runs the command for each attempt of its stage the job's
// controller asks for.
func (c *Cloud) driver(stage Stage) workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		if spec.Command == nil {
			return errors.New("incremental: a driver without a command")
		}
		j, err := jobOf(c.fl, spec.Job, spec.Document)
		if err != nil {
			return err
		}
		learner, err := j.learner(c.env)
		if err != nil {
			return err
		}
		key := jobKey(spec.Job) + "/" + string(stage)
		ch := make(chan localWork)
		c.setLocal(key, ch)
		defer c.setLocal(key, nil)
		spec.Say(fmt.Sprintf("runs the template's command for each %s attempt of the job", strings.ToLower(string(stage))))
		for {
			select {
			case <-ctx.Done():
				return nil
			case w := <-ch:
				t0 := time.Now()
				res := external(ctx, spec.Command, spec.Job, learner, w.order)
				log.Info(c.fl.Source+": a stage's command done", "attempt", w.order.Attempt, "stage", stage, "took", time.Since(t0).Round(time.Millisecond),
					"error", res.Error)
				w.reply <- res
			}
		}
	}
}

// setLocal registers (ch) or removes (nil) the cloud's driver of key.
func (c *Cloud) setLocal(key string, ch chan localWork) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch == nil {
		delete(c.local, key)
	} else {
		c.local[key] = ch
	}
	close(c.localChanged)
	c.localChanged = make(chan struct{})
}
