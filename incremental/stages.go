package incremental

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sedna-go/sedna/api"
)

// Stage is a stage of a cycle, as Sedna names them.
type Stage string

// The stages, in the order a cycle runs them.
const (
	Train  Stage = "Train"
	Eval   Stage = "Eval"
	Deploy Stage = "Deploy"
)

// Phase is where a stage is, as Sedna's stage condition types say it.
type Phase string

// The phases of a stage: Waiting for its trigger, Ready (it holds),
// Starting (its worker asked to run), Running, then Completed or Failed.
const (
	Waiting   Phase = "Waiting"
	Ready     Phase = "Ready"
	Starting  Phase = "Starting"
	Running   Phase = "Running"
	Completed Phase = "Completed"
	Failed    Phase = "Failed"
)

// Trigger is when a stage starts: a condition on a metric, a daily
// window, both (ANDed, as in Sedna), checked at most once per period.
type Trigger struct {
	Condition *api.TriggerCondition
	Window    *api.Window
	Period    time.Duration // 0: at every check
}

// NewTrigger reads a trigger of a job's spec; a zero CheckPeriodSeconds
// checks at every tick.
func NewTrigger(t *api.Trigger) (Trigger, error) {
	if t == nil {
		return Trigger{}, nil
	}
	tr := Trigger{Condition: t.Condition, Period: time.Duration(t.CheckPeriodSeconds) * time.Second}
	if t.Timer != nil {
		w, err := api.ParseWindow(*t.Timer)
		if err != nil {
			return Trigger{}, err
		}
		tr.Window = &w
	}
	if t.Condition != nil {
		if _, err := api.ParseMetric(t.Condition.Metric); err != nil {
			return Trigger{}, err
		}
		if _, err := api.Compare(t.Condition.Operator, 0, 0); err != nil {
			return Trigger{}, err
		}
	}
	return tr, nil
}

// holds evaluates the trigger at now against values; why says what held or
// what did not.
func (t Trigger) holds(now time.Time, values map[string][]float64) (ok bool, why string, err error) {
	if t.Window != nil && !t.Window.Contains(now) {
		return false, fmt.Sprintf("%s is outside the timer's window", now.Format("15:04")), nil
	}
	if t.Condition == nil {
		return true, "no condition", nil
	}
	c := *t.Condition
	m, _ := api.ParseMetric(c.Metric)
	v, err := m.Lookup(values)
	if err != nil {
		return false, "", err
	}
	ok, err = api.Compare(c.Operator, v, c.Threshold)
	return ok, fmt.Sprintf("%s = %s, needs %s %s", m, num(v), c.Operator, num(c.Threshold)), err
}

// Rules are what a job's spec says of its cycles.
type Rules struct {
	// TrainTrigger starts a cycle's training; its metric is
	// num_of_samples, the samples the node's Dataset gained since the
	// last training began.
	TrainTrigger Trigger
	// DeployTrigger decides whether an evaluated model is deployed; its
	// metrics are the evaluation's, each as "{name}_delta" (the new
	// model's value minus the serving model's, per class where the metric
	// has one value per class). Without a condition every evaluated model
	// is deployed.
	DeployTrigger Trigger
	// MaxCycles ends the job after that many cycles (0: it runs until
	// deleted, as in Sedna).
	MaxCycles int64
	// Target ends the job once the serving model's metric reaches it (a
	// metric of the evaluation, e.g. "accuracy >= 0.95"); nil: none.
	Target *api.TriggerCondition
	// Attempts bounds the attempts of one stage in a cycle; after the
	// last failed one the cycle ends and the next waits for the trigger
	// (default 3).
	Attempts int
}

// Metrics are an evaluation's numbers, by name, one value or one per
// class.
type Metrics map[string][]float64

// State is what an incremental job keeps (in the node's store: a restart
// resumes from it).
type State struct {
	Cycle   int64     `msgpack:"cycle"`
	Stage   Stage     `msgpack:"stage"`
	Phase   Phase     `msgpack:"phase"`
	Since   time.Time `msgpack:"since"`
	Attempt string    `msgpack:"attempt,omitempty"` // of the stage's current attempt
	Tries   int       `msgpack:"tries,omitempty"`   // attempts of the stage in this cycle
	// Serving is the model version that serves; Candidate the one this
	// cycle trained.
	Serving   uint64 `msgpack:"serving"`
	Candidate uint64 `msgpack:"candidate,omitempty"`
	// Samples is the Dataset's count as last reported; Training its
	// count when this cycle's training began; TrainedAt its count when
	// the last successful training began (num_of_samples counts from it).
	Samples   int64 `msgpack:"samples"`
	Training  int64 `msgpack:"training,omitempty"`
	TrainedAt int64 `msgpack:"trainedAt"`
	// Eval is the last evaluation: the candidate's and the serving
	// model's numbers.
	Eval    Metrics   `msgpack:"eval,omitempty"`
	Base    Metrics   `msgpack:"base,omitempty"`
	Checked time.Time `msgpack:"checked,omitempty"` // the last check of the stage's trigger
	// Failures counts the cycles in a row that ended with a stage
	// failed; the train trigger is not checked before RetryAt then.
	Failures int       `msgpack:"failures,omitempty"`
	RetryAt  time.Time `msgpack:"retryAt,omitempty"`
	// Deployed counts the cycles whose model was deployed.
	Deployed int64  `msgpack:"deployed"`
	Done     bool   `msgpack:"done,omitempty"`
	Reason   string `msgpack:"reason,omitempty"`
}

// Output is what a stage's worker gives back when it succeeds.
type Output struct {
	// Model is the version a training registered, or the one a deploy
	// made serve.
	Model uint64 `json:"model,omitempty"`
	// Metrics are an evaluation's: the candidate's (Eval) and the
	// serving model's (Base) on the same evaluation set.
	Eval Metrics `json:"eval,omitempty"`
	Base Metrics `json:"base,omitempty"`
	// Status is what a deploy adds to the job's status (JSON: a lifelong
	// job's {"knowledgeBase": ...}), from a Describer.
	Status json.RawMessage `json:"status,omitempty"`
}

// Input is what a stage's worker is asked to do.
type Input struct {
	Cycle int64 `json:"cycle"`
	// Model is the model it starts from (Train), the one to evaluate
	// beside Serving (Eval), or the one to deploy (Deploy).
	Model   uint64 `json:"model"`
	Serving uint64 `json:"serving"`
	// Samples is the Dataset's count the training sees (Train).
	Samples int64 `json:"samples,omitempty"`
}

// ActionKind says what an Action asks for.
type ActionKind string

// The actions of the controller.
const (
	// Save the state (before anything else of the step is done).
	Save ActionKind = "save"
	// Start a stage's worker for an attempt (again after a restart: a
	// worker that finished that attempt reports its output again).
	Start ActionKind = "start"
	// Report a condition, in Sedna's shape, in the job's status and as an
	// event on its topic.
	Report ActionKind = "report"
)

// Condition is a stage's condition as Sedna's status holds it; Data is
// the stage's input and output as JSON.
type Condition struct {
	Type    Phase     `json:"type"`
	Status  string    `json:"status"`
	Stage   Stage     `json:"stage"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Data    string    `json:"data,omitempty"`
	Time    time.Time `json:"lastTransitionTime"`
}

// API is the condition as a resource's status holds it.
func (c Condition) API() api.Condition {
	return api.Condition{Type: string(c.Type), Status: c.Status, Stage: string(c.Stage), Reason: c.Reason, Message: c.Message,
		Data: c.Data, LastTransitionTime: c.Time, LastHeartbeatTime: c.Time}
}

// Action is one thing the controller asks its adapter to do.
type Action struct {
	Kind    ActionKind
	State   State     // Save
	Stage   Stage     // Start
	Attempt string    // Start
	Input   Input     // Start
	Cond    Condition // Report
	Cycle   int64     // Report: the cycle the condition is of
}

// Controller is the pure logic of an incremental job's cycles: Train,
// then Eval, then Deploy (when the deploy trigger holds), then Train
// again. It takes events and the time and returns the state's actions; it
// does no I/O. An event of an attempt that is not the current one (a
// worker of a stage that moved on, a report sent twice) is ignored, so no
// stage runs twice for one cycle.
type Controller struct {
	rules Rules
	st    State
}

// NewController resumes a job from st (a new job: a zero State with the
// initial model as Serving).
func NewController(rules Rules, st State) *Controller {
	if rules.Attempts <= 0 {
		rules.Attempts = 3
	}
	if st.Cycle == 0 {
		st.Cycle, st.Stage, st.Phase = 1, Train, Waiting
	}
	return &Controller{rules: rules, st: st}
}

// State returns the job's state.
func (c *Controller) State() State { return c.st }

// step collects a step's actions: the state saved first, then the rest in
// order.
type step struct {
	c   *Controller
	now time.Time
	out []Action
}

func (c *Controller) begin(now time.Time) *step { return &step{c: c, now: now} }

func (s *step) done() []Action {
	if len(s.out) == 0 {
		return nil
	}
	return append([]Action{{Kind: Save, State: s.c.st}}, s.out...)
}

// enter moves the current stage to phase and reports it.
func (s *step) enter(p Phase, reason, msg string, data any) {
	st := &s.c.st
	st.Phase, st.Since = p, s.now
	cond := Condition{Type: p, Status: api.StatusTrue, Stage: st.Stage, Reason: reason, Message: msg, Time: s.now}
	if data != nil {
		if b, err := json.Marshal(data); err == nil {
			cond.Data = string(b)
		}
	}
	s.out = append(s.out, Action{Kind: Report, Cond: cond, Cycle: st.Cycle})
}

// start makes a new attempt of the current stage and asks for its worker.
func (s *step) start(in Input) {
	st := &s.c.st
	st.Tries++
	st.Attempt = fmt.Sprintf("%d-%s-%d", st.Cycle, strings.ToLower(string(st.Stage)), st.Tries)
	s.enter(Starting, "", "attempt "+st.Attempt, in)
	s.out = append(s.out, Action{Kind: Start, Stage: st.Stage, Attempt: st.Attempt, Input: in})
}

// input is what the current stage's worker is asked to do.
func (c *Controller) input() Input {
	st := c.st
	in := Input{Cycle: st.Cycle, Serving: st.Serving}
	switch st.Stage {
	case Train:
		in.Model, in.Samples = st.Serving, st.Training
	case Eval, Deploy:
		in.Model = st.Candidate
	}
	return in
}

// Samples takes the count of the node's Dataset, and checks the train
// trigger.
func (c *Controller) Samples(total int64, now time.Time) []Action {
	if total == c.st.Samples {
		return nil
	}
	c.st.Samples = total
	if acts := c.Tick(now); len(acts) > 0 {
		return acts
	}
	return []Action{{Kind: Save, State: c.st}}
}

// Tick checks the trigger of a stage that waits for one (at most once per
// its period).
func (c *Controller) Tick(now time.Time) []Action {
	st := &c.st
	if st.Done || st.Phase != Waiting {
		return nil
	}
	s := c.begin(now)
	switch st.Stage {
	case Train:
		tr := c.rules.TrainTrigger
		if now.Before(st.RetryAt) {
			return nil // after failed cycles: not yet
		}
		if tr.Period > 0 && !st.Checked.IsZero() && now.Sub(st.Checked) < tr.Period {
			return nil
		}
		st.Checked = now
		n := st.Samples - st.TrainedAt
		ok, why, err := tr.holds(now, map[string][]float64{"num_of_samples": {float64(n)}})
		if err != nil || !ok {
			return nil // checked again at the next period
		}
		s.enter(Ready, "TriggerHeld", why, nil)
		st.Training = st.Samples
		s.start(c.input())
	case Deploy:
		c.decideDeploy(s)
	}
	return s.done()
}

// decideDeploy checks the deploy trigger on the evaluation's deltas: the
// model is deployed, or the cycle ends with the old model serving on.
func (c *Controller) decideDeploy(s *step) {
	st := &c.st
	tr := c.rules.DeployTrigger
	if tr.Window != nil && !tr.Window.Contains(s.now) {
		return // waits for the window (checked at each tick)
	}
	ok, why, err := tr.holds(s.now, deltas(st.Eval, st.Base))
	switch {
	case err != nil:
		s.enter(Completed, "NotDeployed", fmt.Sprintf("the deploy trigger cannot be evaluated: %v; %s keeps serving", err, serving(st.Serving)), nil)
		c.next(s, false, "", "")
	case !ok:
		s.enter(Completed, "NotDeployed", fmt.Sprintf("%s: %s keeps serving", why, serving(st.Serving)), nil)
		c.next(s, false, "", "")
	default:
		s.enter(Ready, "TriggerHeld", why, nil)
		s.start(c.input())
	}
}

// deltas are the deploy trigger's values: each metric of the evaluation
// as the new model's minus the serving model's, named "{name}_delta", and
// the new model's own values under their names.
func deltas(eval, base Metrics) map[string][]float64 {
	out := map[string][]float64{}
	for name, vs := range eval {
		out[name] = vs
		bs, ok := base[name]
		if !ok || len(bs) != len(vs) {
			continue
		}
		d := make([]float64, len(vs))
		for i := range vs {
			d[i] = vs[i] - bs[i]
		}
		out[name+"_delta"] = d
	}
	return out
}

// Started is a stage's worker running its attempt.
func (c *Controller) Started(attempt string, now time.Time) []Action {
	st := &c.st
	if st.Done || attempt != st.Attempt || st.Phase != Starting {
		return nil
	}
	s := c.begin(now)
	s.enter(Running, "", "attempt "+attempt, nil)
	return s.done()
}

// Succeeded is a stage's worker done with its attempt.
func (c *Controller) Succeeded(attempt string, out Output, now time.Time) []Action {
	st := &c.st
	if st.Done || attempt != st.Attempt || (st.Phase != Starting && st.Phase != Running) {
		return nil
	}
	s := c.begin(now)
	s.enter(Completed, "", "attempt "+attempt, out)
	st.Tries, st.Attempt = 0, ""
	switch st.Stage {
	case Train:
		st.Candidate, st.TrainedAt = out.Model, st.Training
		st.Failures, st.RetryAt = 0, time.Time{}
		st.Stage = Eval
		s.enter(Waiting, "", "", nil)
		s.enter(Ready, "", "an evaluation follows each training", nil)
		s.start(c.input())
	case Eval:
		st.Eval, st.Base = out.Eval, out.Base
		st.Stage = Deploy
		s.enter(Waiting, "", "", nil)
		c.decideDeploy(s)
	case Deploy:
		st.Serving = out.Model
		st.Deployed++
		c.next(s, true, "", "")
	}
	return s.done()
}

// Failed is a stage's worker failing its attempt: the stage is tried
// again, up to the attempts the rules allow; then the cycle ends and the
// next one waits for the train trigger.
func (c *Controller) Failed(attempt, why string, now time.Time) []Action {
	st := &c.st
	if st.Done || attempt != st.Attempt || (st.Phase != Starting && st.Phase != Running) {
		return nil
	}
	s := c.begin(now)
	s.enter(Failed, "WorkerFailed", fmt.Sprintf("attempt %s: %s", attempt, why), nil)
	if st.Tries < c.rules.Attempts {
		s.start(c.input())
		return s.done()
	}
	st.Tries, st.Attempt = 0, "" // a failed training's samples count again
	st.Failures++
	wait := FailedCycleBackoff(st.Failures)
	st.RetryAt = now.Add(wait)
	c.next(s, false, "CycleFailed", fmt.Sprintf("; %s in a row failed: the train trigger is checked again in %v", plural(st.Failures, "cycle"), wait))
	return s.done()
}

// FailedCycleBackoff is how long the train trigger waits after n cycles
// in a row ended with a stage failed: 10 s, doubling, at most 10 minutes
// (a worker that always fails does not start a cycle every check).
func FailedCycleBackoff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Resume is the job after a restart of its node: a stage whose worker was
// asked to run is asked again, with the same attempt.
func (c *Controller) Resume(now time.Time) []Action {
	st := c.st
	if st.Done || (st.Phase != Starting && st.Phase != Running) {
		return c.Tick(now)
	}
	return []Action{{Kind: Start, Stage: st.Stage, Attempt: st.Attempt, Input: c.input()}}
}

// next ends the cycle: the job is done if a stop condition holds,
// otherwise the next cycle waits for the train trigger.
func (c *Controller) next(s *step, deployed bool, reason, note string) {
	st := &c.st
	switch {
	case c.rules.Target != nil && deployed && c.targetMet():
		st.Done, st.Reason = true, fmt.Sprintf("the serving model's %s reached %s %s", c.rules.Target.Metric, c.rules.Target.Operator, num(c.rules.Target.Threshold))
	case c.rules.MaxCycles > 0 && st.Cycle >= c.rules.MaxCycles:
		st.Done, st.Reason = true, fmt.Sprintf("%d cycles done", st.Cycle)
	}
	if st.Done {
		return
	}
	st.Cycle++
	st.Stage, st.Candidate = Train, 0
	s.enter(Waiting, reason, fmt.Sprintf("cycle %d%s", st.Cycle, note), nil)
}

// targetMet reports whether the serving model (the one just deployed,
// evaluated as the candidate) reaches the target.
func (c *Controller) targetMet() bool {
	ok, err := c.rules.Target.Check(c.st.Eval)
	return err == nil && ok
}

// serving names the serving model in a message: a version of the deploy
// model, or the initial model before the first deploy.
func serving(v uint64) string {
	if v == 0 {
		return "the initial model"
	}
	return fmt.Sprintf("model version %d", v)
}

// num writes a number without trailing zeros.
func num(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", v), "0"), ".")
}
