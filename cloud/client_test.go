package cloud

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/topics"
)

const watchTestPassword = "secret"

// startManager starts a cloud manager with creds on a free loopback port,
// closed when the test ends.
func startManager(t *testing.T, creds *access.Credentials) *Manager {
	t.Helper()
	m, err := Start(Config{DataDir: t.TempDir(), Broker: BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"},
		Options{Credentials: creds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startWatchCloud starts a cloud manager on a free loopback port and
// dials it as the operator "app".
func startWatchCloud(t *testing.T) (*Manager, *Client) {
	t.Helper()
	hash, err := access.HashPassword(watchTestPassword)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := access.NewCredentials(access.User{Username: "app", PasswordHash: hash, Role: access.UserOperator})
	if err != nil {
		t.Fatal(err)
	}
	m := startManager(t, creds)
	c, err := Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "app", Password: watchTestPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return m, c
}

var watchedRef = topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "watched"}

// publishWatchedStatus publishes a retained status of watchedRef as the control
// plane does.
func publishWatchedStatus(t *testing.T, m *Manager, st api.Status) {
	t.Helper()
	env, err := topics.NewEnvelope(topics.KindStatus, "cloud/control", st)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	publishWatchedRaw(t, m, topics.JobStatus(watchedRef), raw)
}

func publishWatchedRaw(t *testing.T, m *Manager, topic string, raw []byte) {
	t.Helper()
	if err := m.Broker().Publish(access.SystemPrincipal("test"), topic, raw, true, 1); err != nil {
		t.Fatal(err)
	}
}

// watching runs a Watch of watchedRef whose statuses go to the returned
// channel; stop ends it and returns what it returned.
func watching(t *testing.T, c *Client, onStatus func(api.Status)) (statuses <-chan api.Status, stop func() error) {
	t.Helper()
	ch := make(chan api.Status, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, watchedRef, func(st api.Status) {
			if onStatus != nil {
				onStatus(st)
			}
			ch <- st
		}, nil)
	}()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return ch, stop
}

func waitWatchedPhase(t *testing.T, ch <-chan api.Status, phase, who string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case st := <-ch:
			if st.Phase == phase {
				return
			}
		case <-deadline:
			t.Fatalf("%s: no status of phase %s in 10 s", who, phase)
		}
	}
}

// A status that does not decode is an error of Watch, naming it: it was
// dropped silently, and the watch read it as "no status yet", for ever.
func TestWatchEndsWithAStatusThatCannotBeRead(t *testing.T) {
	m, c := startWatchCloud(t)
	for _, bad := range []struct {
		name string
		raw  func() []byte
	}{
		{"not an envelope", func() []byte { return []byte("not msgpack") }},
		{"a body that is not a status", func() []byte {
			env, _ := topics.NewEnvelope(topics.KindStatus, "cloud/control", map[string]any{"phase": []int{1, 2}})
			raw, _ := env.Marshal()
			return raw
		}},
		{"another kind", func() []byte {
			env, _ := topics.NewEnvelope(topics.KindJobEvent, "cloud/control", topics.JobEvent{Reason: "x"})
			raw, _ := env.Marshal()
			return raw
		}},
	} {
		t.Run(strings.ReplaceAll(bad.name, " ", "-"), func(t *testing.T) {
			publishWatchedRaw(t, m, topics.JobStatus(watchedRef), bad.raw())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			called := false
			err := c.Watch(ctx, watchedRef, func(api.Status) { called = true }, nil)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("Watch returned %v after %v: the status that cannot be read was taken for none", err, ctx.Err())
			}
			if called || !strings.Contains(err.Error(), "status") {
				t.Fatalf("called %v; error %v", called, err)
			}
			t.Logf("%v", err)
		})
	}
}

// A Watch that returns has ended its subscriptions: nothing of its
// filters is subscribed again at the next connection, and its callbacks
// are never called again.
func TestWatchUnsubscribesWhenDone(t *testing.T) {
	m, c := startWatchCloud(t)
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionRunning})
	calls := make(chan struct{}, 64)
	ch, stop := watching(t, c, func(api.Status) { calls <- struct{}{} })
	waitWatchedPhase(t, ch, api.ConditionRunning, "the watch")
	if subs := c.bus.Subscriptions(); !slices.Contains(subs, topics.JobStatus(watchedRef)) || !slices.Contains(subs, topics.JobEvents(watchedRef)) {
		t.Fatalf("while watching, subscribed to %v", subs)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if subs := c.bus.Subscriptions(); len(subs) != 1 || subs[0] != topics.APIReplyTopic(c.user, c.id) {
		t.Fatalf("after the watch, still subscribed to %v", subs)
	}
	c.wmu.Lock()
	left := len(c.watchers)
	c.wmu.Unlock()
	if left != 0 {
		t.Fatalf("%d filters still have watches", left)
	}
	for len(calls) > 0 {
		<-calls
	}
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionCompleted})
	// A request's answer comes after anything published before it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Do(ctx, topics.APIRequest{Op: "get", Kind: api.KindFederatedLearningJob}); err != nil {
		t.Fatal(err)
	}
	if len(calls) > 0 {
		t.Fatal("the callback of a watch that returned was called")
	}
}

// Two watches of one resource on one client each get every status; one
// ending leaves the other's subscription. The second used to replace the
// first's handler, so the first received nothing more.
func TestWatchesOfOneResourceAreIndependent(t *testing.T) {
	m, c := startWatchCloud(t)
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionPending})
	a, stopA := watching(t, c, nil)
	waitWatchedPhase(t, a, api.ConditionPending, "the first watch")
	b, stopB := watching(t, c, nil)
	waitWatchedPhase(t, b, api.ConditionPending, "the second watch (the retained status, on joining)")
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionRunning})
	waitWatchedPhase(t, a, api.ConditionRunning, "the first watch, once a second one watches too")
	waitWatchedPhase(t, b, api.ConditionRunning, "the second watch")
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionCompleted})
	waitWatchedPhase(t, a, api.ConditionCompleted, "the first watch, after the second ended")
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
}

// A callback that does not return holds up its own watch only: paho
// delivers every message on one goroutine, and a callback run there kept
// the client from reading anything else, replies included.
func TestWatchCallbackDoesNotHoldUpTheClient(t *testing.T) {
	m, c := startWatchCloud(t)
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionRunning})
	stuck := make(chan struct{})
	var unstick sync.Once
	defer unstick.Do(func() { close(stuck) }) // before the cleanup stops the watch
	in := make(chan struct{}, 1)
	_, stop := watching(t, c, func(api.Status) {
		select {
		case in <- struct{}{}:
		default:
		}
		<-stuck
	})
	select {
	case <-in:
	case <-time.After(10 * time.Second):
		t.Fatal("no status in 10 s")
	}
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionCompleted}) // queued behind the stuck callback
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Do(ctx, topics.APIRequest{Op: "get", Kind: api.KindFederatedLearningJob}); err != nil {
		t.Fatalf("a request while a watch's callback is busy: %v", err)
	}
	unstick.Do(func() { close(stuck) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Close ends a watch with ErrClosed.
func TestWatchEndsWhenTheClientCloses(t *testing.T) {
	m, c := startWatchCloud(t)
	publishWatchedStatus(t, m, api.Status{Phase: api.ConditionRunning})
	done := make(chan error, 1)
	got := make(chan struct{}, 1)
	go func() {
		done <- c.Watch(context.Background(), watchedRef, func(api.Status) {
			select {
			case got <- struct{}{}:
			default:
			}
		}, nil)
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no status in 10 s")
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Watch returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after Close")
	}
}
