package workers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/internal/shareddir"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

var crashy string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "workers-test-")
	if err != nil {
		panic(err)
	}
	// Workers run as another user than root (nobody, when the tests run
	// as root): they must be able to run the test worker.
	if err := os.Chmod(dir, 0o755); err != nil {
		panic(err)
	}
	crashy = filepath.Join(dir, "crashy")
	if out, err := exec.Command("go", "build", "-o", crashy, "./testdata/crashy").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// reports collects worker states and lets a test wait for one.
type reports struct {
	mu   sync.Mutex
	all  []api.WorkerStatus
	wake chan struct{}
}

func newReports() *reports { return &reports{wake: make(chan struct{}, 1)} }

func (r *reports) add(_ workers.Spec, st api.WorkerStatus) {
	r.mu.Lock()
	r.all = append(r.all, st)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *reports) waitFor(t *testing.T, what string, ok func(api.WorkerStatus) bool) api.WorkerStatus {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		for _, st := range r.all {
			if ok(st) {
				r.mu.Unlock()
				return st
			}
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("no report of %s; got %+v", what, r.all)
		}
	}
}

func phases(r *reports) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p []string
	for _, st := range r.all {
		p = append(p, st.Phase)
	}
	return strings.Join(p, ",")
}

func TestExternalWorkerIsRestartedAfterACrashAndReportsItsExit(t *testing.T) {
	out := shareddir.New(t)
	if err := syscall.Mkfifo(filepath.Join(out, "ready"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(out, "ready"), 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	rep := newReports()
	s := workers.New(workers.Config{Node: "edge1", LogDir: t.TempDir(), Report: rep.add, BackoffMin: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	spec := workers.Spec{Job: job, Generation: 1, Worker: api.Worker{Role: "train-0", Node: "edge1",
		Container: api.Container{Command: []string{crashy}, Args: []string{"--epochs", "1"}},
		Params:    map[string]string{"batch_size": "32", "OUT_DIR": out}}}
	s.Ensure(spec)
	crash := rep.waitFor(t, "the crash", func(st api.WorkerStatus) bool { return st.Phase == workers.PhaseRestarting })
	if crash.ExitCode == nil || *crash.ExitCode != 3 || !strings.Contains(crash.Message, "crashing on purpose") {
		t.Fatalf("crash report %+v", crash)
	}
	rep.waitFor(t, "the restart", func(st api.WorkerStatus) bool { return st.Phase == workers.PhaseRunning && st.Restarts == 1 })
	ready, err := os.ReadFile(filepath.Join(out, "ready")) // blocks until the second run is up
	if err != nil || string(ready) != "ready\n" {
		t.Fatalf("ready: %q %v", ready, err)
	}
	env, _ := os.ReadFile(filepath.Join(out, "env-0"))
	if want := "node=edge1 role=train-0 job=FederatedLearningJob/default/fl batch_size=32 args=[--epochs 1]"; strings.TrimSpace(string(env)) != want {
		t.Fatalf("worker saw %q, want %q", env, want)
	}
	s.Ensure(spec) // same generation: nothing happens
	s.Stop(job)
	st := rep.waitFor(t, "the stop", func(st api.WorkerStatus) bool { return st.Phase == workers.PhaseStopped })
	if st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("stopped with %+v (SIGTERM handled: want exit 0)", st)
	}
	t.Logf("phases: %s", phases(rep))
	if got := phases(rep); got != "Running,Restarting,Running,Stopped" {
		t.Fatalf("phases %s", got)
	}
}

func TestFinishedWorkerSucceedsAndIsNotRestarted(t *testing.T) {
	out := shareddir.New(t)
	os.WriteFile(filepath.Join(out, "crashed"), nil, 0o644)
	rep := newReports()
	s := workers.New(workers.Config{Node: "edge1", Report: rep.add, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	s.Ensure(workers.Spec{Job: topics.JobRef{Kind: "K", Namespace: "default", Name: "j"}, Generation: 1,
		Worker: api.Worker{Role: "train", Container: api.Container{Command: []string{crashy}}, Params: map[string]string{"OUT_DIR": out, "MODE": "finish"}}})
	st := rep.waitFor(t, "success", func(st api.WorkerStatus) bool { return st.Phase == workers.PhaseSucceeded })
	if st.ExitCode == nil || *st.ExitCode != 0 || st.Restarts != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestBuiltinWorkers(t *testing.T) {
	rep := newReports()
	runs := 0
	var mu sync.Mutex
	s := workers.New(workers.Config{Node: "cloud", Report: rep.add, BackoffMin: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Builtins: map[string]workers.Builtin{
			"FederatedLearningJob/train": func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
				mu.Lock()
				runs++
				n := runs
				mu.Unlock()
				if n == 1 {
					panic("first run panics")
				}
				if n == 2 {
					return errors.New("second run fails")
				}
				return nil
			},
		}})
	defer s.Close()
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	s.Ensure(workers.Spec{Job: job, Generation: 1, Worker: api.Worker{Role: "train-3"}})
	s.Ensure(workers.Spec{Job: job, Generation: 1, Worker: api.Worker{Role: "aggregation"}})
	st := rep.waitFor(t, "success", func(st api.WorkerStatus) bool { return st.Phase == workers.PhaseSucceeded })
	if st.Restarts != 2 {
		t.Fatalf("%+v", st)
	}
	p := rep.waitFor(t, "no built-in", func(st api.WorkerStatus) bool { return st.Role == "aggregation" && st.Phase == workers.PhasePending })
	if !strings.Contains(p.Message, "no built-in worker for FederatedLearningJob role aggregation") {
		t.Fatalf("%+v", p)
	}
	if !strings.Contains(phases(rep), "Restarting") {
		t.Fatal(phases(rep))
	}
}

// Must-show (issue 14): an external worker never runs as root, and gets
// none of the agent's environment but what it needs: run as root (as CI
// does), the worker's `id -u` is nobody's; run as another user, it is that
// user's. The agent's password in its environment does not reach it.
func TestExternalWorkersNeverRunAsRoot(t *testing.T) {
	t.Setenv("SEDNA_PASSWORD", "s3cret")
	logs := t.TempDir()
	rep := newReports()
	s := workers.New(workers.Config{Node: "edge1", LogDir: logs, Report: rep.add, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "whoami"}
	s.Ensure(workers.Spec{Job: job, Generation: 1, Worker: api.Worker{Role: "train-0", Node: "edge1",
		Container: api.Container{Command: []string{"/bin/sh", "-c", `echo "uid=$(id -u) password=[$SEDNA_PASSWORD] home=$HOME"`}}}})
	rep.waitFor(t, "the worker's exit", func(st api.WorkerStatus) bool { return st.Phase == workers.PhaseSucceeded })
	out, err := os.ReadFile(filepath.Join(logs, "FederatedLearningJob_default_whoami_train-0.log"))
	if err != nil {
		t.Fatal(err)
	}
	want := os.Getuid()
	home := ""
	if want == 0 {
		u, err := user.Lookup(workers.DefaultUser)
		if err != nil {
			t.Fatalf("the default worker user: %v", err)
		}
		want, _ = strconv.Atoi(u.Uid)
		home = u.HomeDir
	}
	line := strings.TrimSpace(string(out))
	if want == 0 || !strings.HasPrefix(line, fmt.Sprintf("uid=%d password=[] home=", want)) {
		t.Fatalf("the worker said %q, want uid %d (not root) and no password", line, want)
	}
	if home != "" && !strings.HasSuffix(line, "home="+home) {
		t.Errorf("the worker's HOME: %q, want %s", line, home)
	}
	t.Logf("the agent runs as uid %d; its worker said %q", os.Getuid(), line)

	// Root is refused by name and by number, whoever asks.
	for _, spec := range []string{"root", "0", "0:0"} {
		if _, err := workers.RunAs(spec); err == nil {
			t.Errorf("RunAs(%q) accepted", spec)
		}
	}
}

// A driver (workers.DriverKey) runs in place of a template with a
// command and runs the command itself, as often as it needs: each run
// gets the driver's environment added and the run's directory (readable
// by the worker's user, nobody when the tests run as root; its "out"
// writable), and the driver reads back what the command wrote there (a
// link the command left is not an output, and handing the directory over
// again does not follow it). A role without a driver runs its command as
// a process of its own.
func TestADriverRunsItsTemplatesCommand(t *testing.T) {
	job := topics.JobRef{Kind: api.KindIncrementalLearningJob, Namespace: "default", Name: "il"}
	type run struct {
		out  string
		code *int
		err  error
	}
	runs := make(chan run, 2)
	// A file of the agent's the worker may not read, which its link names.
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	driver := func(ctx context.Context, spec workers.Spec, _ *slog.Logger) error {
		if spec.Command == nil {
			return errors.New("no command")
		}
		for i := range 2 {
			dir, err := os.MkdirTemp("", "driver-") // 0700: the run gives it to the worker's user
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if err := os.WriteFile(filepath.Join(dir, "in"), []byte(fmt.Sprint("input ", i)), 0o600); err != nil {
				return err
			}
			code, err := spec.Command.Run(ctx, dir, []string{"IN=" + filepath.Join(dir, "in"), "OUT=" + filepath.Join(dir, workers.OutDir, "result"),
				"SECRET=" + secret})
			out, rerr := spec.Command.Output(dir, "result", 64)
			if err == nil {
				err = rerr
			}
			if _, lerr := spec.Command.Output(dir, "link", 64); err == nil && (lerr == nil || !strings.Contains(lerr.Error(), "is a link")) {
				err = fmt.Errorf("a link read as an output: %v", lerr)
			}
			// Handing the directory over again leaves what the worker
			// made alone: its link's target keeps its mode.
			if herr := spec.Command.HandOver(dir); err == nil && herr != nil {
				err = herr
			}
			runs <- run{string(out), code, err}
		}
		<-ctx.Done()
		return nil
	}
	rep := newReports()
	s := workers.New(workers.Config{Node: "edge1", LogDir: t.TempDir(), Report: rep.add, Log: slog.New(slog.DiscardHandler),
		Builtins: map[string]workers.Builtin{workers.DriverKey(job.Kind, "train"): driver}})
	defer s.Close()
	s.Ensure(workers.Spec{Job: job, Generation: 1, Worker: api.Worker{Role: "train", Node: "edge1",
		Container: api.Container{Command: []string{"/bin/sh", "-c", `(cat "$IN"; echo " as $(id -u)") > "$OUT"; ln -sf "$SECRET" "$(dirname "$OUT")/link"`}}}})
	uid := os.Geteuid()
	if uid == 0 {
		u, err := user.Lookup(workers.DefaultUser)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	for i := range 2 {
		r := <-runs
		if want := fmt.Sprintf("input %d as %d\n", i, uid); r.err != nil || r.out != want || r.code == nil || *r.code != 0 {
			t.Fatalf("run %d: %q (exit %v, %v), want %q", i, r.out, r.code, r.err, want)
		}
	}
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the file the worker's link names: %v %v, want its mode 0600 kept", fi.Mode(), err)
	}
	// Without a driver, the same template runs as a process: it ends at
	// once (no IN), and its worker says it failed.
	s.Ensure(workers.Spec{Job: job, Generation: 1, Worker: api.Worker{Role: "eval", Node: "edge1",
		Container: api.Container{Command: []string{"/bin/sh", "-c", `exit 7`}}}})
	st := rep.waitFor(t, "the eval process's exit", func(st api.WorkerStatus) bool { return st.Role == "eval" && st.ExitCode != nil })
	if *st.ExitCode != 7 {
		t.Fatalf("eval: %+v", st)
	}
}
