package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
)

// syncBuffer is a buffer a command writes while the test reads it; wrote
// is signalled after each write.
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		select {
		case s.wrote <- struct{}{}:
		default:
		}
	}()
	return s.b.Write(p)
}

// waitFor waits until the buffer holds want, or fails the test.
func (s *syncBuffer) waitFor(t *testing.T, want string, deadline <-chan time.Time) {
	t.Helper()
	for !strings.Contains(s.String(), want) {
		select {
		case <-deadline:
			t.Fatalf("no %q in:\n%s", want, s.String())
		case <-s.wrote:
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cloudWithUsers starts a cloud manager whose users are name: role, each
// with the password "pw"; it stops with the test.
func cloudWithUsers(t *testing.T, users map[string]access.UserRole) *cloud.Manager {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var us []access.User
	for name, role := range users {
		us = append(us, access.User{Username: name, PasswordHash: string(h), Role: role})
	}
	creds, err := access.NewCredentials(us...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.Start(cloud.Config{DataDir: t.TempDir(), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"},
		cloud.Options{Paradigms: all.All(), Logger: discardLogger(), Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// cliCloud is a cloud manager with one admin, ops.
func cliCloud(t *testing.T) *cloud.Manager {
	return cloudWithUsers(t, map[string]access.UserRole{"ops": access.UserAdmin})
}

const twoNamespaces = `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: d1}
spec: {url: /data/a.txt, format: txt, nodeName: edge1}
---
apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: d2, namespace: other}
spec: {url: /data/b.txt, format: txt, nodeName: edge1}
`

// TestCLIAsKubectlUsersExpect: the settings come from SEDNA_* alone (events
// too); get NAME -o yaml is the object, not a list; -A lists every
// namespace; the table has READY, RESTARTS and AGE; get nodes lists the
// nodes jobs name; delete -f deletes a file's resources; get -w prints a
// resource again when its status changes.
func TestCLIAsKubectlUsersExpect(t *testing.T) {
	m := cliCloud(t)
	t.Setenv("SEDNA_CLOUD_URL", m.BrokerURL())
	t.Setenv("SEDNA_USERNAME", "ops")
	t.Setenv("SEDNA_PASSWORD", "pw")
	file := filepath.Join(t.TempDir(), "ds.yaml")
	if err := os.WriteFile(file, []byte(twoNamespaces), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runSedna(t, "", "apply", "-f", file)
	if err != nil || strings.Count(out, " created") != 2 {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	out, err = runSedna(t, "", "get", "dataset", "d1", "-o", "yaml")
	if err != nil || !strings.HasPrefix(out, "apiVersion: sedna.io/v1alpha1\n") || !strings.Contains(out, "\nkind: Dataset\n") || strings.Contains(out, "items:") {
		t.Fatalf("get NAME -o yaml is not the object:\n%s", out)
	}
	out, err = runSedna(t, "", "get", "datasets", "-o", "json")
	if err != nil || !strings.Contains(out, `"kind": "List"`) || strings.Contains(out, "d2") {
		t.Fatalf("get -o json in one namespace: %v\n%s", err, out)
	}
	out, err = runSedna(t, "", "get", "datasets", "-A")
	if err != nil || !strings.Contains(out, "READY") || !strings.Contains(out, "RESTARTS") || !strings.Contains(out, "AGE") ||
		!strings.Contains(out, "d1") || !strings.Contains(out, "d2") || !strings.Contains(out, `waiting for node "edge1" to join`) {
		t.Fatalf("get -A: %v\n%s", err, out)
	}
	out, err = runSedna(t, "", "get", "nodes")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "edge1") || !strings.Contains(out, "unknown") || !strings.Contains(out, "never") {
		t.Fatalf("get nodes: %v\n%s", err, out)
	}

	// get -w: the change of a status is printed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wout := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		root := newRoot()
		root.SetOut(wout)
		root.SetErr(wout)
		root.SetArgs([]string{"get", "datasets", "-w", "--log-level", "error"})
		done <- root.ExecuteContext(ctx)
	}()
	deadline := time.After(20 * time.Second)
	wout.waitFor(t, "d1", deadline)
	if out, err := runSedna(t, "", "delete", "-f", file); err != nil || strings.Count(out, " deleted") != 2 {
		t.Fatalf("delete -f: %v\n%s", err, out)
	}
	wout.waitFor(t, "Dataset/default/d1 deleted", deadline)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("get -w: %v", err)
	}
	out, err = runSedna(t, "", "get", "all", "-A")
	if err != nil || strings.Contains(out, "d1") || strings.Contains(out, "d2") {
		t.Fatalf("after delete -f: %v\n%s", err, out)
	}

	// events takes the same settings: the control plane's event of an
	// apply arrives.
	evDone := make(chan struct{})
	evOut := newSyncBuffer()
	go func() {
		defer close(evDone)
		root := newRoot()
		root.SetOut(evOut)
		root.SetArgs([]string{"events", "--filter", "sedna/v1/job/Dataset/default/d1/events", "--count", "1", "--timeout", "20s", "--log-level", "error"})
		if err := root.Execute(); err != nil {
			evOut.Write([]byte("error: " + err.Error()))
		}
	}()
	for i := 0; ; i++ { // until the subscription is in place: apply again and again
		if _, err := runSedna(t, "", "apply", "-f", file); err != nil {
			t.Fatal(err)
		}
		if _, err := runSedna(t, "", "delete", "dataset", "d1"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-evDone:
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	if !strings.Contains(evOut.String(), `"kind":"job.event"`) || strings.Contains(evOut.String(), "error:") {
		t.Fatalf("events: %s", evOut.String())
	}
}

// TestProgressIsPlainInAPipe: `model push` of a large file says how far it
// got in plain lines when its output is not a terminal.
func TestProgressIsPlainInAPipe(t *testing.T) {
	m := cliCloud(t)
	model := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(model, bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runSednaErr(t, "", "model", "push", "big", model, "--cloud", m.BrokerURL(), "--username", "ops", "--password", "pw")
	if err != nil || !strings.Contains(out, "pushed") || !strings.Contains(errOut, "(100%)") || !strings.Contains(errOut, "pushing "+model+": ") ||
		strings.Contains(errOut, "\r") {
		t.Fatalf("push: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
}

// TestStatusPrintIgnoresTheZone: get -w compares a listed status (JSON,
// the server's zone) with a watched one (msgpack, the local zone): the
// same status is the same print, and a change is not.
func TestStatusPrintIgnoresTheZone(t *testing.T) {
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	st := api.Status{Phase: "Running", StartTime: &at, Conditions: []api.Condition{{Type: "Running", Status: "True", LastTransitionTime: at, LastHeartbeatTime: at}},
		Workers: []api.WorkerStatus{{Role: "edge", Phase: "Running", Updated: at}}}
	there := time.FixedZone("UTC+5", 5*3600)
	other := st
	inZone := at.In(there)
	other.StartTime = &inZone
	other.Conditions = []api.Condition{{Type: "Running", Status: "True", LastTransitionTime: at.In(there), LastHeartbeatTime: at.In(there)}}
	other.Workers = []api.WorkerStatus{{Role: "edge", Phase: "Running", Updated: at.In(there)}}
	if statusPrint(st) != statusPrint(other) {
		t.Fatalf("the same status in two zones prints apart:\n%s\n%s", statusPrint(st), statusPrint(other))
	}
	other.Phase = "Pending"
	if statusPrint(st) == statusPrint(other) {
		t.Fatal("a change prints the same")
	}
}
