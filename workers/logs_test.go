package workers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

func TestTailStartIsWithinTheBoundAndAtALine(t *testing.T) {
	const log = "a\nbb\nccc\n" // lines start at 0, 2, 5; size 9
	var long strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&long, "line %05d\n", i) // 11 bytes each, across read blocks
	}
	cases := []struct {
		name     string
		log      string
		maxBytes int64
		lines    int
		want     int64
	}{
		{"everything", log, 100, -1, 0},
		{"no bound", log, 0, -1, 0},
		{"the last line", log, 100, 1, 5},
		{"the last two", log, 100, 2, 2},
		{"exactly every line", log, 100, 3, 0},
		{"more lines than there are", log, 100, 10, 0},
		{"no line", log, 100, 0, 9},
		{"the bound cuts a line: its end is left out", log, 5, -1, 5},
		{"the bound cuts a line, further in", log, 6, -1, 5},
		{"the bound falls on a line's start", log, 7, -1, 2},
		{"fewer lines than asked within the bound", log, 5, 2, 5},
		{"a last line without its newline", "a\nbb\nccc", 100, 1, 5},
		{"two, the last without its newline", "a\nbb\nccc", 100, 2, 2},
		{"one line longer than the bound: a part of it", "xxxxxxxxxx", 4, -1, 6},
		{"the bound holds only the end of a line", "a\nbbbbbbbb\n", 5, -1, 6},
		{"empty", "", 100, 5, 0},
		{"lines across read blocks", long.String(), 0, 5000, 5000 * 11},
		{"bytes across read blocks", long.String(), 50000, -1, 110000 - 50000 + 11 - (110000-50000)%11},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := workers.TailStart(strings.NewReader(c.log), int64(len(c.log)), c.maxBytes, c.lines)
			if err != nil || got != c.want {
				t.Fatalf("TailStart = %d, %v; want %d (%q)", got, err, c.want, c.log[min(int(c.want), len(c.log)):][:min(20, len(c.log)-min(int(c.want), len(c.log)))])
			}
		})
	}
}

// chunks collects what a LogServer sends.
type chunks struct {
	mu   sync.Mutex
	all  []topics.LogChunk
	wake chan struct{}
}

func newChunks() *chunks { return &chunks{wake: make(chan struct{}, 1)} }

func (c *chunks) send(job topics.JobRef, req topics.LogRequest, ch topics.LogChunk) error {
	if ch.Stream != req.Stream || len(ch.Data) > topics.LogChunkSize {
		return fmt.Errorf("bad chunk: stream %q of request %q, %d bytes", ch.Stream, req.Stream, len(ch.Data))
	}
	c.mu.Lock()
	c.all = append(c.all, ch)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until the chunks so far satisfy ok.
func (c *chunks) waitFor(t *testing.T, what string, ok func([]topics.LogChunk) bool) []topics.LogChunk {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		all := append([]topics.LogChunk(nil), c.all...)
		c.mu.Unlock()
		if ok(all) {
			return all
		}
		select {
		case <-c.wake:
		case <-deadline:
			t.Fatalf("no %s; chunks: %+v", what, all)
		}
	}
}

func joined(cs []topics.LogChunk) string {
	var b bytes.Buffer
	for _, c := range cs {
		b.Write(c.Data)
	}
	return b.String()
}

// clock is a clock a test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestLogServerSendsTheEndOfALogInBoundedChunks(t *testing.T) {
	dir := t.TempDir()
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	var content strings.Builder
	for i := 0; content.Len() < 300<<10; i++ {
		fmt.Fprintf(&content, "line %d of the worker's output\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, workers.LogName(job, "train-0")), []byte(content.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := newChunks()
	s := workers.NewLogServer(workers.LogServerConfig{Node: "edge1", Dir: dir, Send: got.send,
		Missing: func(job topics.JobRef, role string) string { return "no " + job.String() + "/" + role + " here" }})
	defer s.Close()

	s.Serve(job, topics.LogRequest{Stream: "s1", Role: "train-0", Bytes: 200 << 10, Lines: -1})
	all := got.waitFor(t, "end of the log", func(cs []topics.LogChunk) bool { return len(cs) > 0 && cs[len(cs)-1].EOF })
	start, _ := workers.TailStart(strings.NewReader(content.String()), int64(content.Len()), 200<<10, -1)
	if all[0].Offset != start || start == 0 || content.String()[start-1] != '\n' {
		t.Fatalf("the first chunk at %d, want %d (the first whole line of the last 200 KiB)", all[0].Offset, start)
	}
	if joined(all) != content.String()[start:] || len(all) != 4 {
		t.Fatalf("%d chunks of %d bytes; want the log from %d in 4", len(all), len(joined(all)), start)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Offset != all[i-1].Offset+int64(len(all[i-1].Data)) {
			t.Fatalf("chunk %d at %d after %d bytes at %d", i, all[i].Offset, len(all[i-1].Data), all[i-1].Offset)
		}
	}

	// The last lines; from where a requester got to (a resumed request).
	s.Serve(job, topics.LogRequest{Stream: "s2", Role: "train-0", Lines: 2})
	s.Serve(job, topics.LogRequest{Stream: "s3", Role: "train-0", Lines: -1, Resume: true, From: int64(content.Len() - 10)})
	for stream, want := range map[string]string{"s2": lastLines(content.String(), 2), "s3": content.String()[content.Len()-10:]} {
		cs := got.waitFor(t, "the end of "+stream, func(cs []topics.LogChunk) bool {
			return slices.ContainsFunc(cs, func(c topics.LogChunk) bool { return c.Stream == stream && c.EOF })
		})
		if g := joined(filter(cs, stream)); g != want {
			t.Fatalf("%s: %q, want %q", stream, g, want)
		}
	}

	// A worker without a log: an error, saying what the node knows.
	s.Serve(job, topics.LogRequest{Stream: "s4", Role: "train-9", Lines: -1})
	cs := got.waitFor(t, "an error", func(cs []topics.LogChunk) bool {
		return slices.ContainsFunc(cs, func(c topics.LogChunk) bool { return c.Stream == "s4" })
	})
	if e := filter(cs, "s4"); len(e) != 1 || e[0].Error != "no FederatedLearningJob/default/fl/train-9 here" {
		t.Fatalf("%+v", e)
	}
}

func TestLogServerFollowsALogUntilItsLeaseEnds(t *testing.T) {
	dir := t.TempDir()
	job := topics.JobRef{Kind: api.KindJointInferenceService, Namespace: "default", Name: "ji"}
	path := filepath.Join(dir, workers.LogName(job, "edge"))
	if err := os.WriteFile(path, []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	appendTo := func(s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{now: time.Unix(1_000_000, 0)}
	got := newChunks()
	s := workers.NewLogServer(workers.LogServerConfig{Node: "edge1", Dir: dir, Send: got.send, Poll: 5 * time.Millisecond, Now: clk.Now})
	defer s.Close()
	req := topics.LogRequest{Stream: "f1", Role: "edge", Follow: true, Lease: 10 * time.Second, Lines: -1}
	s.Serve(job, req)
	got.waitFor(t, "the log so far", func(cs []topics.LogChunk) bool { return joined(cs) == "first\n" })

	appendTo("second\n")
	got.waitFor(t, "a line written later", func(cs []topics.LogChunk) bool { return joined(cs) == "first\nsecond\n" })

	// Renewed halfway, the follow outlives its first lease.
	clk.add(6 * time.Second)
	s.Serve(job, req)
	clk.add(6 * time.Second)
	appendTo("third\n")
	all := got.waitFor(t, "a line written after the first lease", func(cs []topics.LogChunk) bool {
		return joined(cs) == "first\nsecond\nthird\n"
	})
	for _, c := range all {
		if c.EOF || c.Error != "" {
			t.Fatalf("a follow ended: %+v", c)
		}
	}

	// Not renewed, it ends.
	clk.add(5 * time.Second)
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.Streams() != 0 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the follow outlived its lease")
		}
	}
}

func TestLogServerAnswersARequestSentAgainOnlyOnceItsLeaseEnded(t *testing.T) {
	dir := t.TempDir()
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	if err := os.WriteFile(filepath.Join(dir, workers.LogName(job, "train-0")), []byte("a line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Unix(1_000_000, 0)}
	got := newChunks()
	s := workers.NewLogServer(workers.LogServerConfig{Node: "edge1", Dir: dir, Send: got.send, Now: clk.Now})
	req := topics.LogRequest{Stream: "again", Role: "train-0", Lines: -1, Lease: 10 * time.Second}
	eofs := func(n int) func([]topics.LogChunk) bool {
		return func(cs []topics.LogChunk) bool {
			return len(slices.DeleteFunc(cs, func(c topics.LogChunk) bool { return !c.EOF })) >= n
		}
	}
	s.Serve(job, req)
	got.waitFor(t, "the answer", eofs(1))
	s.Serve(job, req) // its answer may still be on its way: not sent twice
	clk.add(11 * time.Second)
	s.Serve(job, req) // lost, surely: answered again
	got.waitFor(t, "the second answer", eofs(2))
	s.Close() // every stream done: nothing more comes
	if all := got.waitFor(t, "", func([]topics.LogChunk) bool { return true }); len(all) != 2 || joined(all) != "a line\na line\n" {
		t.Fatalf("answers: %+v", all)
	}
}

func TestBuiltinWorkerLogsToItsFile(t *testing.T) {
	logs := t.TempDir()
	rep := newReports()
	var console bytes.Buffer
	var mu sync.Mutex
	runs := 0
	s := workers.New(workers.Config{Node: "cloud", LogDir: logs, Report: rep.add, BackoffMin: 10 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(lockedWriter{&mu, &console}, nil)),
		Builtins: map[string]workers.Builtin{
			"FederatedLearningJob/aggregation": func(_ context.Context, _ workers.Spec, log *slog.Logger) error {
				mu.Lock()
				runs++
				n := runs
				mu.Unlock()
				log.Info("hello from the built-in", "run", n)
				if n == 1 {
					return errors.New("the first run fails")
				}
				return nil
			},
		}})
	defer s.Close()
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}
	s.Ensure(workers.Spec{Job: job, Generation: 1, Worker: api.Worker{Role: "aggregation", Node: "cloud"}})
	rep.waitFor(t, "success", func(st api.WorkerStatus) bool { return st.Phase == workers.PhaseSucceeded })
	b, err := os.ReadFile(filepath.Join(logs, workers.LogName(job, "aggregation")))
	if err != nil {
		t.Fatal(err)
	}
	file := string(b)
	for _, want := range []string{`msg="hello from the built-in" run=1`, `msg="worker failed" error="the first run fails"`, `msg="hello from the built-in" run=2`} {
		if !strings.Contains(file, want) {
			t.Fatalf("the worker's log file lacks %q:\n%s", want, file)
		}
	}
	if strings.Contains(file, "worker=") {
		t.Errorf("the file repeats the supervisor's attributes:\n%s", file)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(console.String(), `msg="hello from the built-in" worker=FederatedLearningJob/default/fl/aggregation`) {
		t.Fatalf("the supervisor's log lacks the worker's records:\n%s", console.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	lines = lines[:len(lines)-1] // after the last newline
	return strings.Join(lines[len(lines)-n:], "")
}

func filter(cs []topics.LogChunk, stream string) []topics.LogChunk {
	var out []topics.LogChunk
	for _, c := range cs {
		if c.Stream == stream {
			out = append(out, c)
		}
	}
	return out
}
