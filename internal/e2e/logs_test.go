package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/internal/shareddir"
)

// logBuffer is what a log stream wrote, and a way to wait for a part of it.
type logBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	wake chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{wake: make(chan struct{}, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.b.Write(p)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return n, err
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the stream wrote want, or it ended (done).
func (l *logBuffer) waitFor(t *testing.T, want string, done <-chan error) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(l.String(), want) {
		select {
		case <-l.wake:
		case err := <-done:
			t.Fatalf("the stream ended (%v) without %q:\n%s", err, want, l.String())
		case <-deadline:
			t.Fatalf("no %q in the stream:\n%s", want, l.String())
		}
	}
}

// waitLogs asks for a worker's log (without following it) until it
// holds want: a worker writes its first words some time after it starts.
func waitLogs(t *testing.T, c *cloud.Client, o cloud.LogOptions, want string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var out bytes.Buffer
		_, err := c.Logs(ctx, o, &out)
		cancel()
		if err == nil && strings.Contains(out.String(), want) {
			return out.String()
		}
		if err != nil && !strings.Contains(err.Error(), "has written no log yet") {
			t.Fatalf("logs of %s: %v", o.Role, err)
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the log of %s: %q, %v; want %q in it", o.Role, out.String(), err, want)
		}
	}
}

// TestWorkerLogsStreamFromTheirNode: `sedna logs` (cloud.Client.Logs, as a
// viewer) returns the output of a real external worker process on an edge
// node, and of a built-in worker of the cloud; following it, a line the
// worker writes later arrives; a follow ends when the node goes away, and a
// request then says the node is offline since when, and that its workers'
// logs stay on it.
func TestWorkerLogsStreamFromTheirNode(t *testing.T) {
	dir := t.TempDir()
	shared := shareddir.New(t) // the worker runs as another user
	later := filepath.Join(shared, "later")
	if err := syscall.Mkfifo(later, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(later, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	m := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer m.Close()
	a := startEdge(t, "edge1", filepath.Join(dir, "edge1"), m.BrokerURL())
	defer a.Close()
	waitLink(t, a)
	waitJoined(t, m.BrokerURL(), "edge1")

	admin := adminClient(t, m.BrokerURL()) // a command: an admin's to apply
	docs, err := api.Parse([]byte(`apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: logs-data}
spec: {url: /data/logs.txt, format: txt, nodeName: edge1}
---
apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: logs}
spec:
  aggregationWorker: {template: {spec: {nodeName: cloud}}}
  trainingWorkers:
    - dataset: {name: logs-data}
      template:
        spec:
          nodeName: edge1
          containers:
            - image: ignored
              command: [sh, -c, 'echo hello-from-worker; read line < "$LATER"; echo "$line"; exec sleep 3600']
              env: [{name: LATER, value: "`+later+`"}]
`), "logs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, admin, docs, "created")

	viewer, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "viewer", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	train := cloud.LogOptions{Kind: "fl", Name: "logs", Role: "train-0", Lines: -1}

	waitWorkerRunning(t, a, "FederatedLearningJob/default/logs/train-0")

	// The worker's output, from its node.
	out := waitLogs(t, viewer, train, "hello-from-worker\n")
	if out != "hello-from-worker\n" {
		t.Fatalf("the log: %q", out)
	}

	// Followed, a line the worker writes later arrives.
	follow := train
	follow.Follow = true
	stream := newLogBuffer()
	ctx, stopFollowing := context.WithCancel(context.Background())
	defer stopFollowing()
	done := make(chan error, 1)
	go func() {
		node, err := viewer.Logs(ctx, follow, stream)
		if err == nil && node != "edge1" {
			err = errors.New("answered by " + node)
		}
		done <- err
	}()
	stream.waitFor(t, "hello-from-worker\n", done)
	f, err := os.OpenFile(later, os.O_WRONLY, 0) // the worker waits on the other end
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("a-line-written-later\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	stream.waitFor(t, "a-line-written-later\n", done)
	stopFollowing()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the follow ended with %v, want context.Canceled", err)
	}
	if got := stream.String(); got != "hello-from-worker\na-line-written-later\n" {
		t.Fatalf("followed: %q", got)
	}

	// The last line only.
	last := train
	last.Lines = 1
	if out := waitLogs(t, viewer, last, "a-line-written-later"); out != "a-line-written-later\n" {
		t.Fatalf("--tail 1: %q", out)
	}

	// A built-in worker of the cloud has a log too: its failures.
	agg := cloud.LogOptions{Kind: "FederatedLearningJob", Name: "logs", Role: "aggregation", Lines: -1}
	waitLogs(t, viewer, agg, "the model's size is unknown")

	// A role the job does not have: its workers are named.
	ctx2, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bad := train
	bad.Role = "train-7"
	if _, err := viewer.Logs(ctx2, bad, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no worker \"train-7\"") ||
		!strings.Contains(err.Error(), "train-0 (on edge1)") {
		t.Fatalf("a role the job lacks: %v", err)
	}

	// A follow ends when its node goes away, with why.
	follow.Lease = 600 * time.Millisecond // renewed every 200ms
	stream = newLogBuffer()
	done = make(chan error, 1)
	go func() {
		_, err := viewer.Logs(context.Background(), follow, stream)
		done <- err
	}()
	stream.waitFor(t, "a-line-written-later\n", done)
	a.Close()
	const offline = "node edge1 is offline since "
	const stays = ": its workers' logs stay on it until it returns"
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), offline) || !strings.Contains(err.Error(), stays) {
			t.Fatalf("the follow ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the follow went on after its node stopped")
	}
	_, err = viewer.Logs(ctx2, train, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), offline) || !strings.HasSuffix(err.Error(), stays) {
		t.Fatalf("the logs of a worker of an offline node: %v", err)
	}
	t.Log(err)
}

// waitWorkerRunning waits until the agent's node runs the worker id.
func waitWorkerRunning(t *testing.T, a *edge.Agent, id string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		if st, ok := a.Workers()[id]; ok && st.Phase == api.WorkerRunning {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("worker %s does not run: %+v", id, a.Workers())
		}
	}
}
