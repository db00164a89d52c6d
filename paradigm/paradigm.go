// Package paradigm is the plug-in interface of Sedna-Go's learning
// paradigms. A paradigm (joint inference, federated learning, and the ones
// to come) is a package that implements Paradigm: its kind, its edge half,
// its cloud half and how its jobs read in their status. The runtime (the
// edge agent, the cloud manager) imports no paradigm package: a command or
// an embedder gives it the paradigms it runs (edge.Options.Paradigms,
// cloud.Options.Paradigms), and it gives each half one environment, Env,
// the same shape on both sides.
//
// A half talks only through its Env: a Bus (publish and subscribe on the
// side's own broker, request and reply, sends across the link, durable or
// best effort), the side's datasets and models, the plugin host, a clock,
// a logger and a place in the store. No paradigm imports the broker.
package paradigm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Paradigm is one learning paradigm, as the runtime runs it.
type Paradigm interface {
	// Kind is the resource kind of its jobs (api.KindFederatedLearningJob).
	Kind() string
	// Name is a short name ("fl"): its place in each side's store is
	// under Name()+"/", and its logs say it. Not one of Reserved.
	Name() string
	// View says how its jobs read in their status.
	View() View
	// Edge starts its half on a node.
	Edge(env Env) (Half, error)
	// Cloud starts its half in the cloud.
	Cloud(env Env) (Half, error)
}

// View is how a paradigm's jobs read in their status.
type View struct {
	// Deciders are the roles whose workers decide the job: it completes
	// when they all have succeeded, and runs once they all run even if
	// other workers do not yet (a federated job runs with the clients it
	// has). Empty: every worker decides and every worker must run.
	Deciders []string
}

// Decides reports whether a worker of role decides the job.
func (v View) Decides(role string) bool {
	return len(v.Deciders) == 0 || slices.Contains(v.Deciders, role)
}

// Half is what a paradigm runs on one side.
type Half struct {
	// Workers are its built-in workers on this side, by role (the role a
	// job's worker template names, without a replica suffix).
	Workers map[string]workers.Builtin
	// Drivers run, by role, in place of a template that has a command,
	// and run the command when the paradigm needs it (workers.DriverKey);
	// a role without one runs its command as a process of its own.
	Drivers map[string]workers.Builtin
	// Close stops what the half runs beside its workers; nil when there
	// is nothing. The runtime calls it once, after its workers stopped.
	Close func()
	// Ops are what users may ask of the half about one of its jobs, by
	// name (the cloud's control plane serves them as API operations:
	// "examples.waiting", "examples.label"); nil when there are none.
	Ops map[string]Op
}

// Op answers a user's request about a job: body and the answer are JSON.
// An error is the user's to read.
type Op func(ctx context.Context, job topics.JobRef, body []byte) ([]byte, error)

// Side says where a half runs.
type Side int

// The two sides.
const (
	Edge Side = iota
	Cloud
)

func (s Side) String() string {
	if s == Cloud {
		return "cloud"
	}
	return "edge"
}

// Env is what a half gets from the runtime: the same shape on both sides.
type Env struct {
	// Side is where the half runs.
	Side Side
	// Node is the node's name at the edge, the cloud's name in the cloud.
	Node string
	// Bus is the half's messaging.
	Bus Bus
	// Data reads the side's datasets.
	Data Data
	// Models reads (and, in the cloud, registers) models.
	Models Models
	// Plugins returns the side's WASM plugin host, started on first use.
	Plugins func() (*plugins.Host, error)
	// Now is the side's clock (a simulator skews it).
	Now func() time.Time
	// Log is the half's logger.
	Log *slog.Logger
	// Store is the paradigm's own place in the side's store (a prefix no
	// other part uses).
	Store store.Store
}

// Clock returns env's time: Now, or time.Now when Now is nil.
func (env Env) Clock() time.Time {
	if env.Now == nil {
		return time.Now()
	}
	return env.Now()
}

// Logger returns env's logger, or slog's default when Log is nil.
func (env Env) Logger() *slog.Logger {
	if env.Log == nil {
		return slog.Default()
	}
	return env.Log
}

// ErrOffline is what a best-effort send returns when the other side is
// away: the link is down at the edge, the node is offline in the cloud.
var ErrOffline = errors.New("paradigm: the other side is offline")

// ErrNotHere is what an Env's part returns for what its side does not
// have (models are registered in the cloud, a node's samples are read on
// the node).
var ErrNotHere = errors.New("paradigm: not available on this side")

// Message is what a subscription receives.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Outbound is a message for the other side of the link.
type Outbound struct {
	// Node is the node it goes to, in the cloud; at the edge it is ""
	// (the cloud).
	Node    string
	Topic   string
	Payload []byte
	// Expires is when the message is no longer worth delivering; zero:
	// until it is delivered.
	Expires time.Time
	// Bulk sends it on the bulk stream (big payloads: weights, chunks),
	// behind nothing urgent. At the edge only; the cloud has one downlink.
	Bulk bool
}

// Bus is a half's messaging. Subscription IDs, reply topics and sessions
// are the runtime's business.
type Bus interface {
	// Publish publishes on the side's own broker with the runtime's
	// rights; it returns once the broker has the message.
	Publish(topic string, payload []byte, retain bool, qos byte) error
	// Answer publishes at QoS 1 on a topic a sender named (a reply topic
	// in a request from a device), with no more rights than a local app.
	Answer(topic string, payload []byte) error
	// Subscribe calls handler for each message on filter until stop is
	// called. A handler runs on the publisher's goroutine and must be
	// quick. A handler error asks for redelivery where the bus can.
	Subscribe(filter string, handler func(Message) error) (stop func() error, err error)
	// Send queues a message for the other side durably: it survives a
	// restart and a broken link, until delivered or expired.
	Send(m Outbound) error
	// SendNow sends a message to the other side at once, best effort;
	// ErrOffline when the other side is away.
	SendNow(m Outbound) error
	// Link says whether the link to the other side is up (at the edge;
	// the cloud's is always up), and gives a channel closed at the next
	// change.
	Link() (up bool, changed <-chan struct{})
}

// Data reads a side's datasets.
type Data interface {
	// Samples calls fn for each sample of a Dataset held on the node after
	// sample number after, in order; raw samples never leave the node.
	// ErrNotHere in the cloud.
	Samples(namespace, name string, after uint64, fn func(i uint64, sample []byte) error) error
	// Open opens a file a job names (a validation set), confined to the
	// side's data directories. ErrNotHere at the edge.
	Open(path string) (*os.File, error)
}

// Columns is what a side's Data may also do: name the columns of a csv
// Dataset held on the node, from its file's header (its first line).
type Columns interface {
	Columns(namespace, name string) ([]string, error)
}

// Models reads and registers models.
type Models interface {
	// Latest returns the newest version of a model the side holds (at the
	// edge: the newest whole version on the node), and its bytes unless it
	// is the version have.
	Latest(namespace, name string, have uint64) (version uint64, data []byte, err error)
	// Register registers data as a new version of a Model, in the cloud;
	// ErrNotHere at the edge. It gives up when ctx ends.
	Register(ctx context.Context, namespace, name, format, source string, metrics map[string]string, data []byte) (uint64, error)
}

// Set is the paradigms a runtime runs, by kind.
type Set []Paradigm

// Find returns the paradigm of kind.
func (s Set) Find(kind string) (Paradigm, bool) {
	for _, p := range s {
		if p.Kind() == kind {
			return p, true
		}
	}
	return nil, false
}

// View is how the jobs of kind read in their status: their paradigm's
// view, or the zero View (every worker decides) for a kind of none.
func (s Set) View(kind string) View {
	if p, ok := s.Find(kind); ok {
		return p.View()
	}
	return View{}
}

// Kinds lists the kinds of s, in order.
func (s Set) Kinds() []string {
	out := make([]string, len(s))
	for i, p := range s {
		out[i] = p.Kind()
	}
	return out
}

// Reserved are the names the runtime's own parts keep in a side's store:
// no paradigm is named so.
var Reserved = []string{"b", "bridge", "cp", "dl", "downlink", "ds", "ingress", "jobs", "models", "mqtt", "wasm-cache", "workers"}

// Check refuses a set with two paradigms of one kind or one name, or one
// without a kind, or a name that is empty, reserved or not one level of a
// store key (letters, digits, '-').
func (s Set) Check() error {
	kinds, names := map[string]bool{}, map[string]bool{}
	for _, p := range s {
		k, n := p.Kind(), p.Name()
		if k == "" {
			return errors.New("paradigm: a paradigm without a kind")
		}
		if kinds[k] {
			return fmt.Errorf("paradigm: two paradigms of kind %s", k)
		}
		if n == "" || slices.Contains(Reserved, n) || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("paradigm: %s is named %q: want lower-case letters, digits and '-', not one of %v", k, n, Reserved)
		}
		if names[n] {
			return fmt.Errorf("paradigm: two paradigms named %s", n)
		}
		kinds[k], names[n] = true, true
	}
	return nil
}

// Started is a side's halves, started from a Set.
type Started struct {
	halves []startedHalf
}

type startedHalf struct {
	kind string
	half Half
}

// Start starts every paradigm's half on one side: env(p) is p's
// environment. A half that fails to start is logged and left out (its
// jobs' workers then fail with "no built-in worker"), as a side runs the
// others regardless.
func (s Set) Start(side Side, env func(Paradigm) Env, log *slog.Logger) *Started {
	st := &Started{}
	for _, p := range s {
		e := env(p)
		e.Side = side
		start := p.Edge
		if side == Cloud {
			start = p.Cloud
		}
		h, err := start(e)
		if err != nil {
			log.Error("a paradigm's half did not start", "kind", p.Kind(), "side", side.String(), "error", err)
			continue
		}
		st.halves = append(st.halves, startedHalf{kind: p.Kind(), half: h})
	}
	return st
}

// Builtins are the started halves' workers, by workers.BuiltinKey, and
// their drivers, by workers.DriverKey.
func (st *Started) Builtins() map[string]workers.Builtin {
	out := map[string]workers.Builtin{}
	for _, h := range st.halves {
		for role, w := range h.half.Workers {
			out[workers.BuiltinKey(h.kind, role)] = w
		}
		for role, w := range h.half.Drivers {
			out[workers.DriverKey(h.kind, role)] = w
		}
	}
	return out
}

// Op finds the operation named op of the half of the paradigm of kind.
func (st *Started) Op(kind, op string) (Op, bool) {
	for _, h := range st.halves {
		if h.kind == kind {
			f, ok := h.half.Ops[op]
			return f, ok
		}
	}
	return nil, false
}

// Close closes every started half, in the reverse order of their start.
func (st *Started) Close() {
	for i := len(st.halves) - 1; i >= 0; i-- {
		if c := st.halves[i].half.Close; c != nil {
			c()
		}
	}
	st.halves = nil
}

// LatestFunc is Models of a Latest function alone (Register: ErrNotHere),
// for tests and embedders.
type LatestFunc func(namespace, name string, have uint64) (uint64, []byte, error)

// Latest calls f.
func (f LatestFunc) Latest(namespace, name string, have uint64) (uint64, []byte, error) {
	return f(namespace, name, have)
}

// Register is ErrNotHere.
func (LatestFunc) Register(context.Context, string, string, string, string, map[string]string, []byte) (uint64, error) {
	return 0, ErrNotHere
}

// SamplesFunc is Data of a Samples function alone (Open: ErrNotHere), for
// tests and embedders.
type SamplesFunc func(namespace, name string, after uint64, fn func(i uint64, sample []byte) error) error

// Samples calls f.
func (f SamplesFunc) Samples(namespace, name string, after uint64, fn func(i uint64, sample []byte) error) error {
	return f(namespace, name, after, fn)
}

// Open is ErrNotHere.
func (SamplesFunc) Open(path string) (*os.File, error) {
	return nil, fmt.Errorf("open %s: %w", path, ErrNotHere)
}
