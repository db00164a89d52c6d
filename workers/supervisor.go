package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
)

// Phases of a worker, as reported in api.WorkerStatus.
const (
	PhasePending    = api.WorkerPending
	PhaseRunning    = api.WorkerRunning
	PhaseRestarting = api.WorkerRestarting
	// PhaseCrashLoop: failed api.CrashLoopFailures times in a row, each
	// run shorter than StableAfter; waiting for its next restart.
	PhaseCrashLoop = api.WorkerCrashLoop
	PhaseSucceeded = api.WorkerSucceeded
	PhaseFailed    = api.WorkerFailed
	PhaseStopped   = api.WorkerStopped
)

// Spec is one worker to run.
type Spec struct {
	Job        topics.JobRef
	Generation uint64
	// Created is when the job's incarnation was created (unix
	// nanoseconds): with Generation, it orders the job's specs across a
	// delete and a new apply of the same name (topics.Revision).
	Created int64
	api.Worker
	// BrokerURL is the node's broker, for the worker to connect to.
	BrokerURL string
	// Document is the job's resource as JSON, for built-in workers.
	Document []byte
	// Secrets are the secrets the worker gets (the job's credentialName,
	// its Datasets' and Models'), each sealed for the node: the node's
	// Config.Env opens them into the worker's environment.
	Secrets map[string][]byte
	// ReportMetrics, set by the Supervisor for built-in workers, reports
	// the worker's numbers (Config.ReportMetrics receives them).
	ReportMetrics func(map[string]float64) `json:"-"`
	// ReportEvent, set by the Supervisor for built-in workers, records an
	// event of the job (typ "Normal" or "Warning"); Config.ReportEvent
	// receives it.
	ReportEvent func(typ, reason, message string) `json:"-"`
	// ReportMessage, set by the Supervisor for built-in workers, says
	// what a running worker waits for or does now ("" when nothing worth
	// saying): it becomes the message of its status, and of its job's.
	ReportMessage func(message string) `json:"-"`
	// Command, set by the Supervisor for a driver (DriverKey), runs the
	// template's command; nil for every other worker.
	Command *Command `json:"-"`
}

// Say reports what the worker waits for or does now, when its supervisor
// takes such messages, and does nothing otherwise.
func (s Spec) Say(message string) {
	if s.ReportMessage != nil {
		s.ReportMessage(message)
	}
}

// Event records an event of the job when the worker's supervisor takes
// events, and does nothing otherwise.
func (s Spec) Event(typ, reason, message string) {
	if s.ReportEvent != nil {
		s.ReportEvent(typ, reason, message)
	}
}

// Revision is the job's revision this worker runs.
func (s Spec) Revision() topics.Revision {
	return topics.Revision{Created: s.Created, Generation: s.Generation}
}

// ID names the worker: kind/namespace/name/role.
func (s Spec) ID() string { return s.Job.String() + "/" + s.Role }

// Builtin is an in-process worker. It runs until ctx ends or its work is
// done; an error counts as a crash (restarted with backoff).
type Builtin func(ctx context.Context, spec Spec, log *slog.Logger) error

// Config sets a Supervisor up.
type Config struct {
	// Node is the name of the node the supervisor runs on.
	Node string
	// LogDir receives one log file per worker (its stdout and stderr).
	LogDir string
	// Report receives every change of a worker's state. It is called from
	// the worker's goroutine and must not block for long.
	Report func(spec Spec, st api.WorkerStatus)
	// ReportMetrics receives a built-in worker's numbers; nil drops them.
	ReportMetrics func(spec Spec, m topics.WorkerMetrics)
	// ReportEvent receives a built-in worker's events; nil drops them.
	ReportEvent func(spec Spec, typ, reason, message string)
	// Builtins maps "Kind/role" (the role without an index: "train" for
	// "train-3") to a built-in worker.
	Builtins map[string]Builtin
	// BackoffMin and BackoffMax bound the delay before a restart; it
	// doubles with each crash and resets after a run of StableAfter.
	BackoffMin, BackoffMax, StableAfter time.Duration
	// StopGrace is how long a process has between SIGTERM and SIGKILL.
	StopGrace time.Duration
	// RunAs is the user external workers run as; nil is RunAs(""): the
	// supervisor's own user, or DefaultUser when that is root. A worker
	// never runs as root.
	RunAs *Credential
	// Env, when set, is what an external worker's environment gets from
	// what the node knows, in Sedna's names (a training worker's Dataset
	// file as TRAIN_DATASET_URL, say); its template's env wins over it.
	Env func(Spec) []string
	// PassEnv names variables of the supervisor's environment workers get,
	// beside PATH, LANG, LC_*, TZ and TMPDIR; nothing else of it reaches
	// them (the agent's credentials, say).
	PassEnv []string
	Log     *slog.Logger
}

// Supervisor runs workers. Each worker has one goroutine, owned by the
// Supervisor and stopped by Stop or Close.
type Supervisor struct {
	cfg      Config
	runAsErr error // why no external worker can run, if none can
	mu       sync.Mutex
	running  map[string]*worker
	closed   bool
	wg       sync.WaitGroup
}

type worker struct {
	spec   Spec
	cancel context.CancelFunc
	done   chan struct{}
	// reporting orders the worker's reports: its run loop and the timer
	// that ends a crash loop both report.
	reporting sync.Mutex
	mu        sync.Mutex
	status    api.WorkerStatus
}

// New makes a Supervisor.
func New(cfg Config) *Supervisor {
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = time.Minute
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 30 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Report == nil {
		cfg.Report = func(Spec, api.WorkerStatus) {}
	}
	s := &Supervisor{cfg: cfg, running: map[string]*worker{}}
	if cfg.RunAs == nil {
		if s.cfg.RunAs, s.runAsErr = RunAs(""); s.runAsErr != nil {
			cfg.Log.Error("external workers cannot run: no user to run them as", "error", s.runAsErr)
		}
	}
	if s.cfg.RunAs != nil && s.cfg.RunAs.UID == 0 {
		s.cfg.RunAs, s.runAsErr = nil, ErrRoot
	}
	return s
}

// BuiltinKey is the key of Config.Builtins for a job kind and worker role.
func BuiltinKey(kind, role string) string {
	if i := strings.LastIndexByte(role, '-'); i > 0 && strings.Trim(role[i+1:], "0123456789") == "" {
		role = role[:i]
	}
	return kind + "/" + role
}

// Ensure runs the worker of spec: it starts it if it is not running, and
// restarts it if it runs an older generation. It returns at once.
func (s *Supervisor) Ensure(spec Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	id := spec.ID()
	if w, ok := s.running[id]; ok {
		if !spec.Revision().After(w.spec.Revision()) {
			return
		}
		s.stopLocked(id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{spec: spec, cancel: cancel, done: make(chan struct{}),
		status: api.WorkerStatus{Role: spec.Role, Node: spec.Node, Phase: PhasePending, Generation: spec.Generation, Created: spec.Created}}
	s.running[id] = w
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(w.done)
		s.run(ctx, w)
	}()
}

// Stop stops every worker of job (and waits for them).
func (s *Supervisor) Stop(job topics.JobRef) {
	s.mu.Lock()
	var done []chan struct{}
	for id, w := range s.running {
		if w.spec.Job == job {
			done = append(done, w.done)
			s.stopLocked(id)
		}
	}
	s.mu.Unlock()
	for _, d := range done {
		<-d
	}
}

// StopExcept stops the workers of job whose ID is not in keep (and waits
// for them): the roles a new generation of the job no longer places here.
func (s *Supervisor) StopExcept(job topics.JobRef, keep map[string]bool) {
	s.mu.Lock()
	var done []chan struct{}
	for id, w := range s.running {
		if w.spec.Job == job && !keep[id] {
			done = append(done, w.done)
			s.stopLocked(id)
		}
	}
	s.mu.Unlock()
	for _, d := range done {
		<-d
	}
}

func (s *Supervisor) stopLocked(id string) {
	if w, ok := s.running[id]; ok {
		w.cancel()
		delete(s.running, id)
	}
}

// Close stops every worker and waits for them.
func (s *Supervisor) Close() {
	s.mu.Lock()
	s.closed = true
	for id := range s.running {
		s.stopLocked(id)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Statuses reports every worker the supervisor runs, sorted by ID.
func (s *Supervisor) Statuses() map[string]api.WorkerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]api.WorkerStatus, len(s.running))
	for id, w := range s.running {
		w.mu.Lock()
		out[id] = w.status
		w.mu.Unlock()
	}
	return out
}

func (s *Supervisor) report(w *worker, phase, msg string, exit *int) {
	s.reportWith(w, func(st *api.WorkerStatus) bool {
		st.Phase, st.Message, st.ExitCode = phase, msg, exit
		return true
	})
}

// reportWith edits the worker's status and reports it, unless edit says
// there is nothing to report; reports of one worker never interleave.
func (s *Supervisor) reportWith(w *worker, edit func(*api.WorkerStatus) bool) {
	w.reporting.Lock()
	defer w.reporting.Unlock()
	w.mu.Lock()
	ok := edit(&w.status)
	if ok {
		w.status.Updated = time.Now()
	}
	st := w.status
	w.mu.Unlock()
	if ok {
		s.cfg.Report(w.spec, st)
	}
}

func (s *Supervisor) run(ctx context.Context, w *worker) {
	log := s.cfg.Log.With("worker", w.spec.ID(), "node", s.cfg.Node)
	var builtin Builtin
	driver := s.cfg.Builtins[DriverKey(w.spec.Job.Kind, w.spec.Role)]
	if w.spec.External() && driver != nil {
		builtin = driver
	} else if !w.spec.External() {
		builtin = s.cfg.Builtins[BuiltinKey(w.spec.Job.Kind, w.spec.Role)]
		if builtin == nil {
			s.report(w, PhasePending, fmt.Sprintf("no built-in worker for %s role %s yet: give the template a command", w.spec.Job.Kind, w.spec.Role), nil)
			<-ctx.Done()
			s.report(w, PhaseStopped, "", nil)
			return
		}
	}
	backoff := s.cfg.BackoffMin
	for {
		started := time.Now()
		s.report(w, PhaseRunning, "", nil)
		// A run that lasts StableAfter ends a crash loop: say so then,
		// not only at the next failure.
		stable := time.AfterFunc(s.cfg.StableAfter, func() {
			s.reportWith(w, func(st *api.WorkerStatus) bool {
				if st.Failures == 0 || st.Phase != PhaseRunning || ctx.Err() != nil {
					return false
				}
				st.Failures = 0
				return true
			})
		})
		var err error
		var code *int
		if builtin != nil {
			spec := w.spec
			spec.ReportMetrics = func(m map[string]float64) {
				w.mu.Lock()
				w.status.Metrics = m
				w.mu.Unlock()
				if s.cfg.ReportMetrics != nil {
					s.cfg.ReportMetrics(spec, topics.WorkerMetrics{Role: spec.Role, Metrics: m, Updated: time.Now().UnixNano()})
				}
			}
			if s.cfg.ReportEvent != nil {
				spec.ReportEvent = func(typ, reason, message string) { s.cfg.ReportEvent(spec, typ, reason, message) }
			}
			spec.ReportMessage = func(message string) {
				s.reportWith(w, func(st *api.WorkerStatus) bool {
					if st.Phase != PhaseRunning || st.Message == message || ctx.Err() != nil {
						return false
					}
					st.Message = message
					return true
				})
			}
			if spec.External() {
				spec.Command = &Command{s: s, spec: w.spec, log: log}
			}
			blog, end := s.builtinLog(spec, log)
			err = runBuiltin(ctx, builtin, spec, blog)
			end(ctx, err)
		} else {
			code, err = s.runProcess(ctx, w.spec, log, nil)
		}
		stable.Stop()
		if ctx.Err() != nil {
			s.report(w, PhaseStopped, "", code)
			return
		}
		if err == nil {
			s.report(w, PhaseSucceeded, "", code)
			return
		}
		ranLong := time.Since(started) >= s.cfg.StableAfter
		if ranLong {
			backoff = s.cfg.BackoffMin
		}
		log.Warn("worker failed; restarting", "error", err, "after", backoff)
		s.reportWith(w, func(st *api.WorkerStatus) bool {
			if ranLong {
				st.Failures = 0
			}
			st.Restarts++
			st.Failures++
			st.LastError = err.Error()
			st.Phase = PhaseRestarting
			if st.Failures >= api.CrashLoopFailures {
				st.Phase = PhaseCrashLoop
			}
			st.Message, st.ExitCode = fmt.Sprintf("%v; restart in %v", err, backoff), code
			return true
		})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			s.report(w, PhaseStopped, "", code)
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.BackoffMax)
	}
}

func runBuiltin(ctx context.Context, b Builtin, spec Spec, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("built-in worker panicked: %v", r)
		}
	}()
	return b(ctx, spec, log)
}

// Environment is what an external worker gets beside its template's env.
func Environment(spec Spec) []string {
	env := []string{
		"SEDNA_BROKER_URL=" + spec.BrokerURL,
		"SEDNA_NODE=" + spec.Node,
		"SEDNA_JOB_KIND=" + spec.Job.Kind,
		"SEDNA_JOB_NAMESPACE=" + spec.Job.Namespace,
		"SEDNA_JOB_NAME=" + spec.Job.Name,
		"SEDNA_WORKER_ROLE=" + spec.Role,
		"SEDNA_SPEC_TOPIC=" + topics.JobSpec(spec.Job),
		"SEDNA_REPORT_PREFIX=" + topics.NodeJob(spec.Node, spec.Job, ""),
		fmt.Sprintf("SEDNA_GENERATION=%d", spec.Generation),
		// Sedna's names of the same, for workers written against its lib
		// (docs/WORKERS.md, "Sedna's worker environment").
		"NAMESPACE=" + spec.Job.Namespace,
		"JOB_NAME=" + spec.Job.Name,
		"WORKER_NAME=" + spec.Job.Name + "-" + spec.Role + "-" + spec.Node,
	}
	if spec.Job.Kind == "JointInferenceService" {
		env = append(env, "SERVICE_NAME="+spec.Job.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Params)) {
		env = append(env, k+"="+spec.Params[k])
	}
	return env
}

// nodeEnv is Config.Env's variables for spec but those its template sets.
func (s *Supervisor) nodeEnv(spec Spec) []string {
	if s.cfg.Env == nil {
		return nil
	}
	var out []string
	for _, kv := range s.cfg.Env(spec) {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := spec.Params[k]; !set {
			out = append(out, kv)
		}
	}
	return out
}

// runProcess runs the worker's command once, with env added to its
// environment, and returns its exit code.
func (s *Supervisor) runProcess(ctx context.Context, spec Spec, log *slog.Logger, env []string) (*int, error) {
	if s.runAsErr != nil {
		return nil, s.runAsErr
	}
	c := spec.Container
	cmd := exec.Command(c.Command[0], append(append([]string{}, c.Command[1:]...), c.Args...)...)
	cmd.Dir = c.WorkingDir
	cmd.Env = append(append(append(baseEnv(s.cfg.RunAs, s.cfg.PassEnv), Environment(spec)...), s.nodeEnv(spec)...), env...)
	setProcess(cmd, s.cfg.RunAs)
	var out io.Writer = io.Discard
	tail := &tailBuffer{max: 2048}
	if s.cfg.LogDir != "" {
		if err := os.MkdirAll(s.cfg.LogDir, 0o755); err == nil {
			f, err := os.OpenFile(filepath.Join(s.cfg.LogDir, LogName(spec.Job, spec.Role)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err == nil {
				defer f.Close()
				out = f
			}
		}
	}
	w := io.MultiWriter(out, tail)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Command[0], err)
	}
	log.Info("worker started", "pid", cmd.Process.Pid, "command", c.Command[0], "user", s.cfg.RunAs.Name)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-ctx.Done():
		stopProcess(cmd, s.cfg.StopGrace, waited)
		err = ctx.Err()
	}
	code := exitCode(cmd)
	if err != nil && ctx.Err() == nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("exited with %s; last output: %s", ee.ProcessState, tail.String())
		}
	}
	return &code, err
}

// tailBuffer keeps the last bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
