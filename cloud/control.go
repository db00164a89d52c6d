package cloud

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/internal/serial"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// ControlPlane admits Sedna resources, keeps them and their status in the
// store, publishes desired state (retained specs, and specs in each node's
// outbox) and observed state (retained status, events), and runs the
// workers placed on the cloud. One goroutine owns its state: bus handlers
// only queue work for it.
type ControlPlane struct {
	cfg   ControlConfig
	log   *slog.Logger
	st    store.Store
	owner *serial.Loop
	// jobSecrets are the secrets each job's workers get, by resource key
	// (for the cloud's own workers, whose environment is made off the
	// owner goroutine).
	jobSecrets sync.Map
	res        map[string]*entry // by api.Resource.Key
	nodes      map[string]string // node -> last state seen
	// sessions is the latest status of each node since start, since
	// when, and when the node was last heard from.
	sessions map[string]topics.NodeStatus
	since    map[string]time.Time
	seen     map[string]time.Time
	// silent says why a node that was online is taken to be offline
	// without its word: it did not answer a status request.
	silent map[string]string
	sup    *workers.Supervisor
	// sweepStop ends the status sweeper; sweepDone is closed when it has.
	sweepStop, sweepDone chan struct{}
	// deleted is when the last deleted incarnation of each name was
	// created: a new one is created later, whatever the clock says.
	deleted map[string]int64
	// fx carries out what job control decides (effects).
	fx effects
	// logsrv serves the logs of the cloud's own workers, once asked.
	logsrv *workers.LogServer

	chunksSent atomic.Uint64
}

// ModelChunksSent counts the model chunks queued for nodes since start.
func (c *ControlPlane) ModelChunksSent() uint64 { return c.chunksSent.Load() }

// ControlConfig wires a ControlPlane.
type ControlConfig struct {
	// Name is the cloud's node name: workers placed on it run here.
	Name     string
	Store    store.Store
	Bus      cloudlink.Bus
	Downlink *cloudlink.Downlink
	// Backlog, if set, gives the nodes' outbox statistics instead of
	// Downlink's queue (replicas that share the outboxes).
	Backlog   func() []queue.StreamStats
	Admission api.Admission
	// WorkerLogDir, when set, makes the control plane run the workers placed
	// on the cloud, their output kept there.
	WorkerLogDir string
	// BrokerURL is given to the cloud's external workers.
	BrokerURL string
	Logger    *slog.Logger
	Now       func() time.Time
	// Builtins, if set, gives the built-in workers of the cloud, by
	// "Kind/role"; it is called once with the control plane.
	Builtins func(*ControlPlane) map[string]workers.Builtin
	// View gives how the jobs of a kind read in their status (their
	// paradigm's); nil: every worker decides.
	View func(kind string) paradigm.View
	// JobOps, if set, finds the operation op a paradigm serves about its
	// jobs of kind (paradigm.Half.Ops).
	JobOps func(kind, op string) (paradigm.Op, bool)
	// Roles says what each user may ask (see Access); nil refuses every
	// request.
	Roles func(user string) (access.UserRole, bool)
	// Access bounds what users and the resources they apply may do.
	Access Access
	// RunAs is the user the cloud's external workers run as; nil is
	// workers.RunAs("").
	RunAs *workers.Credential
	// PassEnv names variables of the manager's environment its workers get.
	PassEnv []string
	// Dead, if set, keeps the messages the control plane could not read.
	Dead *queue.DeadLetters
	// Secrets, if set, keeps the secrets resources name (credentialName)
	// and seals them for the nodes their workers run on.
	Secrets SecretKeeper
	// DashboardURL, if set, makes a user a link to the dashboard: its path
	// with a token, and the address it is served on.
	DashboardURL func(user string) (path, addr string, err error)
	// StatusSweep is how often the control plane asks every node it knows
	// for its status (topics.StatusRequest, on the node's
	// topics.StatusRequestTopic), beside once at start; a node that
	// has not been heard from StatusGrace (plus the answers' spread) after
	// a request is taken to be offline. Default 1 min and 5 s; a negative
	// StatusSweep asks at start only. Node statuses never rest on
	// retained messages, which clustered brokers do not deliver to
	// wildcard subscriptions.
	StatusSweep, StatusGrace time.Duration
	// AdminOps, if set, serves the operations only an admin may ask
	// beyond resources (nodes' identities: OpTokenCreate, ...), their
	// bodies and answers JSON.
	AdminOps func(op string, body []byte) ([]byte, error)
}

// SecretKeeper keeps secrets and seals them for nodes (Secrets).
type SecretKeeper interface {
	Create(ns, name string, sealed []byte) ([]string, error)
	List(ns string) ([]SecretInfo, error)
	Delete(ns, name string) error
	PublicKey() []byte
	// Ready says why the secrets names cannot reach node (nil: they can).
	Ready(node, ns string, names []string) error
	SealFor(node, ns string, names []string) (map[string][]byte, error)
	// Env is the environment of the cloud's own workers that use names.
	Env(ns string, names []string) ([]string, error)
}

// Access is what the control plane lets users do beyond their role.
type Access struct {
	// AllowedCommands lists the worker commands an operator may apply:
	// each is the start of an argv (command then args), matched exactly.
	// An admin may apply any command; a resource with a command outside
	// the list, applied by anyone else, is rejected naming the worker.
	AllowedCommands [][]string
	// ModelDirs are the only directories a Model's url may name on the
	// cloud's machine (a file the cloud reads into its registry); a url
	// elsewhere is never opened. Empty: the cloud reads no model file.
	ModelDirs []string
	// DataDirs are the only directories, with ModelDirs, whose files the
	// cloud's built-in workers read for a job (a validation set).
	DataDirs []string
}

// OpenFile opens a file a job names on the cloud, if it lies in the model
// or data directories (see Access), for the cloud's built-in workers.
func (c *ControlPlane) OpenFile(path string) (*os.File, error) {
	return openConfined(path, append(append([]string{}, c.cfg.Access.DataDirs...), c.cfg.Access.ModelDirs...))
}

type entry struct {
	rec    record
	res    *api.Resource
	status api.Status
	// dispatched is the generation last sent to the nodes.
	dispatched uint64
	sentTo     []string
}

// record is what the store keeps of a resource.
type record struct {
	Generation uint64   `msgpack:"gen"`
	Created    int64    `msgpack:"created"`
	Updated    int64    `msgpack:"updated"`
	Source     []byte   `msgpack:"source"`
	Dispatched uint64   `msgpack:"dispatched"`
	SentTo     []string `msgpack:"sentTo"`
	// AppliedBy and Role are the user who applied this generation and
	// the role it had: a resource with commands is run only if that role
	// may run them.
	AppliedBy string          `msgpack:"by,omitempty"`
	Role      access.UserRole `msgpack:"role,omitempty"`
}

func recordKey(k string) []byte { return []byte("r/" + k) }

// deletedKey keeps when the last deleted incarnation of a name was
// created: a new one is created later, whatever the clock says.
func deletedKey(k string) []byte { return []byte("t/" + k) }

// revision is the resource's place in its name's history.
func (r record) revision() topics.Revision {
	return topics.Revision{Created: r.Created, Generation: r.Generation}
}
func statusKey(k string) []byte { return []byte("s/" + k) }

func refOf(r *api.Resource) topics.JobRef {
	return topics.JobRef{Kind: r.Kind, Namespace: r.Metadata.Namespace, Name: r.Metadata.Name}
}

// NewControlPlane loads what the store holds and starts serving requests.
func NewControlPlane(cfg ControlConfig) (*ControlPlane, error) {
	fx := &storeEffects{st: cfg.Store, bus: cfg.Bus, downlink: cfg.Downlink}
	c := newControl(cfg, fx)
	cfg = c.cfg // with its defaults
	c.owner = serial.New(1024)
	if err := c.load(); err != nil {
		return nil, err
	}
	if cfg.WorkerLogDir != "" {
		var builtins map[string]workers.Builtin
		if cfg.Builtins != nil {
			builtins = cfg.Builtins(c)
		}
		c.sup = workers.New(workers.Config{Node: cfg.Name, LogDir: cfg.WorkerLogDir, Log: c.log, Report: c.ReportWorker,
			RunAs: cfg.RunAs, PassEnv: cfg.PassEnv, Env: c.cloudWorkerEnv,
			ReportMetrics: c.ReportWorkerMetrics, ReportEvent: c.ReportWorkerEvent, Builtins: builtins})
		fx.sup = c.sup
	}
	c.owner.Start()
	c.do(c.start)
	subs := []struct {
		filter string
		h      func(string, []byte)
	}{
		{topics.APIRequestFilter(), c.onRequest},
		{topics.NodeJobFilter(), c.onNodeJob},
		{topics.NodeStatusFilter(), c.onNodeStatus},
	}
	for _, s := range subs {
		h := s.h
		if err := cfg.Bus.Subscribe(s.filter, func(t string, p []byte) error { h(t, p); return nil }); err != nil {
			c.Close()
			return nil, fmt.Errorf("control: subscribe %s: %w", s.filter, err)
		}
	}
	c.sweepStop, c.sweepDone = make(chan struct{}), make(chan struct{})
	go c.sweeper()
	return c, nil
}

// sweeper asks every node for its status at start and every StatusSweep
// after, and takes the nodes that stay silent to be offline.
func (c *ControlPlane) sweeper() {
	defer close(c.sweepDone)
	sweep, grace := c.cfg.StatusSweep, c.cfg.StatusGrace
	if sweep == 0 {
		sweep = time.Minute
	}
	if grace <= 0 {
		grace = 5 * time.Second
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-c.sweepStop:
			return false
		}
	}
	for {
		var a statusAsk
		asked := make(chan statusAsk, 1)
		c.do(func() { asked <- c.statusAsk(c.cfg.Now()) })
		select {
		case a = <-asked:
		case <-c.sweepStop:
			return
		}
		c.askStatus(a)
		if !wait(a.spread + grace) {
			return
		}
		c.do(func() { c.markSilent(a.at) })
		if sweep < 0 || !wait(max(sweep-a.spread-grace, time.Second)) {
			if sweep < 0 {
				<-c.sweepStop
			}
			return
		}
	}
}

// statusAsk is one round of status requests: when, to which nodes, and
// the spread their answers get.
type statusAsk struct {
	at     time.Time
	nodes  []string
	spread time.Duration
}

// statusAsk lists the nodes to ask (every node the cloud knows but
// itself) and gives their answers a spread of 50 µs per node (20,000
// answers a second), at most 30 s.
func (c *ControlPlane) statusAsk(now time.Time) statusAsk {
	a := statusAsk{at: now, nodes: make([]string, 0, len(c.nodes))}
	for n := range c.nodes {
		if n != c.cfg.Name {
			a.nodes = append(a.nodes, n)
		}
	}
	a.spread = min(time.Duration(len(a.nodes))*50*time.Microsecond, 30*time.Second)
	return a
}

// statusRequest is the payload of a status request from source, asked at
// at, the nodes answering within spread.
func statusRequest(source string, at time.Time, spread time.Duration) ([]byte, error) {
	env, err := topics.NewEnvelope(topics.KindStatusRequest, source, topics.StatusRequest{Asked: at.UnixNano(), Spread: int64(spread)})
	if err != nil {
		return nil, err
	}
	return env.Marshal()
}

// askStatus publishes a status request to each node of a, on the node's
// own StatusRequestTopic (below its downlink, which its bridge
// subscribes to anyway). It runs in the sweeper, outside the machine: on
// an external broker each publish waits for the broker's acknowledgement.
// A request the broker refused is said once per round; the node it was
// for is taken to be offline after the grace, as one that did not answer.
func (c *ControlPlane) askStatus(a statusAsk) {
	raw, err := statusRequest("cloud/control", a.at, a.spread)
	if err != nil {
		c.log.Warn("status requests not sent", "error", err)
		return
	}
	failed, first := 0, error(nil)
	for _, n := range a.nodes {
		select {
		case <-c.sweepStop:
			return
		default:
		}
		if err := c.cfg.Bus.Publish(topics.StatusRequestTopic(n), raw, false, 1); err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("%s: %w", n, err)
			}
		}
	}
	if failed > 0 {
		c.log.Warn("status requests not sent", "nodes", failed, "of", len(a.nodes), "first", first)
	}
}

// markSilent takes every node last known online that has not been heard
// from since asked to be offline. Like a node's own word that it left, it
// changes no job: their workers' last reports stand until they report.
func (c *ControlPlane) markSilent(asked time.Time) {
	now := c.cfg.Now()
	for n, st := range c.nodes {
		if st != topics.NodeOnline || n == c.cfg.Name {
			continue
		}
		if t, ok := c.seen[n]; ok && !t.Before(asked) {
			continue
		}
		c.nodes[n] = topics.NodeOffline
		c.since[n] = now
		c.silent[n] = "no status from the node since the cloud asked at " + asked.Format(time.RFC3339)
		c.log.Info("node taken to be offline: it did not answer the status request", "node", n, "asked", asked)
	}
}

// newControl is the machine of job control with no state yet, its effects
// carried out by fx: NewControlPlane's, or a test's.
func newControl(cfg ControlConfig, fx effects) *ControlPlane {
	if cfg.Name == "" {
		cfg.Name = "cloud"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &ControlPlane{cfg: cfg, log: cfg.Logger.With("component", "control"), st: cfg.Store, fx: fx,
		res: map[string]*entry{}, nodes: map[string]string{}, sessions: map[string]topics.NodeStatus{},
		since: map[string]time.Time{}, seen: map[string]time.Time{}, deleted: map[string]int64{}, silent: map[string]string{}}
}

// start is what the control plane does once its state is loaded:
// republish what the broker may have lost (an embedded broker keeps
// retained messages in memory), and run the cloud's workers again.
func (c *ControlPlane) start() {
	for _, e := range c.sorted() {
		c.publishSpec(e)
		c.publishStatus(e)
		c.dispatch(e)
	}
	c.offerModels()
}

// do queues f for the owner goroutine.
func (c *ControlPlane) do(f func()) { c.owner.Do(f) }

// Close stops serving and stops the cloud's workers.
func (c *ControlPlane) Close() {
	if c.sweepStop != nil {
		close(c.sweepStop)
		<-c.sweepDone
	}
	c.owner.Close()
	// The owner goroutine has ended: nothing makes the log server now.
	if c.logsrv != nil {
		c.logsrv.Close()
	}
	if c.sup != nil {
		c.sup.Close()
	}
}

func (c *ControlPlane) load() error {
	err := c.st.Scan([]byte("r/"), nil, func(k, v []byte) error {
		var rec record
		if err := msgpack.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("control: record %s: %w", k, err)
		}
		r, err := api.ParseDocument(rec.Source)
		if err != nil || r == nil {
			c.log.Error("stored resource no longer parses; kept, not served", "key", string(k), "error", err)
			return nil
		}
		e := &entry{rec: rec, res: r, dispatched: rec.Dispatched, sentTo: rec.SentTo}
		sv, err := c.st.Get(statusKey(r.Key()))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("control: status of %s: %w", r.Key(), err)
		default:
			if err := msgpack.Unmarshal(sv, &e.status); err != nil {
				// The document is intact: serve it, with a status that
				// says what happened, rebuilt from here on.
				c.log.Error("stored status does not decode; rebuilt", "key", r.Key(), "error", err)
				e.status = api.Status{Generation: rec.Generation}
				e.status.SetCondition(api.ConditionAccepted, api.StatusTrue, "StatusRebuilt",
					"the stored status did not decode ("+err.Error()+"); workers report again", c.cfg.Now())
			}
		}
		c.res[r.Key()] = e
		return nil
	})
	if err != nil {
		return err
	}
	// Nodes that ever joined: a restart must not make their jobs wait again.
	err = c.st.Scan([]byte("n/"), nil, func(k, v []byte) error {
		c.nodes[strings.TrimPrefix(string(k), "n/")] = string(v)
		return nil
	})
	if err != nil {
		return err
	}
	err = c.st.Scan([]byte("t/"), nil, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("control: the history of %s is unreadable: %d bytes", strings.TrimPrefix(string(k), "t/"), len(v))
		}
		c.deleted[strings.TrimPrefix(string(k), "t/")] = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	c.log.Info("control plane loaded", "resources", len(c.res), "nodes", len(c.nodes))
	return err
}

func (c *ControlPlane) sorted() []*entry {
	keys := make([]string, 0, len(c.res))
	for k := range c.res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*entry, len(keys))
	for i, k := range keys {
		out[i] = c.res[k]
	}
	return out
}

func (c *ControlPlane) save(e *entry) error {
	e.rec.Dispatched, e.rec.SentTo = e.dispatched, e.sentTo
	return c.fx.save(e.res.Key(), e.rec, e.status)
}

// ---- requests ----

func (c *ControlPlane) onRequest(topic string, payload []byte) {
	p, err := topics.Parse(topic)
	if err != nil || p.Class != topics.ClassAPIRequest {
		return
	}
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil {
		c.refuse(topic, "user "+p.User, payload, err)
		return
	}
	var req topics.APIRequest
	if err := env.DecodeBody(&req); err != nil || req.Client == "" || req.ID == "" {
		if err == nil {
			err = errors.New("api request: no client or id")
		}
		c.refuse(topic, "user "+p.User, payload, err)
		return
	}
	if topics.ValidateName("client", req.Client) != nil {
		c.log.Warn("api request refused: bad client name", "user", p.User, "client", req.Client)
		return
	}
	role, known := access.UserRole(""), false
	if c.cfg.Roles != nil {
		role, known = c.cfg.Roles(p.User)
	}
	c.do(func() {
		if !known {
			c.reply(p.User, req, topics.APIReply{Error: fmt.Sprintf("user %q has no role on this control plane", p.User)})
			return
		}
		c.reply(p.User, req, c.handle(caller{user: p.User, role: role}, req))
	})
}

// caller is who sent a request: its user and role.
type caller struct {
	user string
	role access.UserRole
}

func (c *ControlPlane) reply(user string, req topics.APIRequest, rep topics.APIReply) {
	rep.ID = req.ID
	env, err := topics.NewEnvelope(topics.KindAPIReply, "cloud/control", rep)
	if err == nil {
		var raw []byte
		if raw, err = env.Marshal(); err == nil {
			err = c.cfg.Bus.Publish(topics.APIReplyTopic(user, req.Client), raw, false, 1)
		}
	}
	if err != nil {
		c.log.Error("api reply not sent", "user", user, "client", req.Client, "error", err)
	}
}

// may lists the operations of each role.
var may = map[access.UserRole][]string{
	access.UserViewer: {"get", "describe", "nodes", "logs", "examples.waiting", "kb.describe", OpSecretList, OpDashboardURL},
	access.UserOperator: {"get", "describe", "nodes", "logs", "examples.waiting", "kb.describe", "apply", "delete", "model.push", "examples.label",
		OpSecretList, OpSecretKey, OpSecretCreate, OpSecretDelete, OpDashboardURL},
	access.UserAdmin: {"get", "describe", "nodes", "logs", "examples.waiting", "kb.describe", "apply", "delete", "model.push", "examples.label",
		OpSecretList, OpSecretKey, OpSecretCreate, OpSecretDelete, OpDashboardURL, OpTokenCreate, OpTokenList, OpTokenRevoke, OpNodeRevoke},
}

func (c *ControlPlane) handle(who caller, req topics.APIRequest) topics.APIReply {
	if ops := may[access.UserAdmin]; !slices.Contains(ops, req.Op) {
		return topics.APIReply{Error: fmt.Sprintf("unknown operation %q (%s)", req.Op, strings.Join(ops, ", "))}
	}
	if !slices.Contains(may[who.role], req.Op) {
		c.log.Warn("api request refused: not allowed for the role", "user", who.user, "role", who.role, "op", req.Op)
		return topics.APIReply{Error: fmt.Sprintf("user %q (role %s) may not %s", who.user, who.role, req.Op)}
	}
	switch req.Op {
	case "apply":
		return c.apply(who, req)
	case "delete":
		return c.delete(req)
	case "model.push":
		return c.push(req)
	case "nodes":
		return topics.APIReply{Nodes: c.nodeList()}
	case "logs":
		return c.logs(who, req)
	case "examples.waiting", "examples.label", "kb.describe":
		return c.jobOp(req)
	case OpSecretList, OpSecretKey, OpSecretCreate, OpSecretDelete:
		return c.secretOp(who, req)
	case OpDashboardURL:
		if c.cfg.DashboardURL == nil {
			return topics.APIReply{Error: "this cloud serves no dashboard"}
		}
		path, addr, err := c.cfg.DashboardURL(who.user)
		if err != nil {
			return topics.APIReply{Error: err.Error()}
		}
		body, _ := json.Marshal(DashboardLink{Path: path, Addr: addr})
		return topics.APIReply{Body: body}
	case OpTokenCreate, OpTokenList, OpTokenRevoke, OpNodeRevoke:
		if c.cfg.AdminOps == nil {
			return topics.APIReply{Error: req.Op + ": this cloud gives nodes no identities"}
		}
		body, err := c.cfg.AdminOps(req.Op, req.Body)
		if err != nil {
			return topics.APIReply{Error: err.Error()}
		}
		c.log.Info("identity operation", "user", who.user, "op", req.Op)
		return topics.APIReply{Body: body}
	}
	return c.get(req)
}

// jobOpTimeout bounds an operation a paradigm serves.
const jobOpTimeout = 30 * time.Second

// jobOp asks the paradigm of a job for an operation it serves (its hard
// examples waiting for labels, labels for them).
func (c *ControlPlane) jobOp(req topics.APIRequest) topics.APIReply {
	e, msg := c.lookup(req)
	if e == nil {
		return topics.APIReply{Error: msg}
	}
	var op paradigm.Op
	if c.cfg.JobOps != nil {
		op, _ = c.cfg.JobOps(e.res.Kind, req.Op)
	}
	if op == nil {
		return topics.APIReply{Error: fmt.Sprintf("%s: a %s has no %s", e.res.Key(), e.res.Kind, req.Op)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobOpTimeout)
	defer cancel()
	body, err := op(ctx, refOf(e.res), req.Body)
	if err != nil {
		return topics.APIReply{Error: fmt.Sprintf("%s: %s: %v", e.res.Key(), req.Op, err)}
	}
	return topics.APIReply{Body: body}
}

// commandAllowed says why a resource applied by role may not run its
// workers' commands, or "" if it may.
func (c *ControlPlane) commandAllowed(r *api.Resource, role access.UserRole) string {
	if role == access.UserAdmin {
		return ""
	}
	for _, w := range r.Workers() {
		if !w.External() {
			continue
		}
		argv := append(append([]string{}, w.Container.Command...), w.Container.Args...)
		if !slices.ContainsFunc(c.cfg.Access.AllowedCommands, func(prefix []string) bool {
			return len(prefix) > 0 && len(prefix) <= len(argv) && slices.Equal(prefix, argv[:len(prefix)])
		}) {
			return fmt.Sprintf("%s: worker %s runs %q, which is not in the cloud's allowed commands (workers.allowedCommands); only an admin may apply it",
				w.Field, w.Role, strings.Join(argv, " "))
		}
	}
	return ""
}

// Resolve maps what a user types (dataset, datasets, ds, fl, ...) to a kind.
func Resolve(kind string) (string, bool) {
	k := strings.ToLower(kind)
	for _, full := range api.Kinds {
		if k == strings.ToLower(full) || k == strings.ToLower(full)+"s" {
			return full, true
		}
	}
	short := map[string]string{"ds": api.KindDataset, "jis": api.KindJointInferenceService, "ji": api.KindJointInferenceService,
		"il": api.KindIncrementalLearningJob, "fl": api.KindFederatedLearningJob, "ll": api.KindLifelongLearningJob}
	full, ok := short[k]
	return full, ok
}

func (c *ControlPlane) apply(who caller, req topics.APIRequest) topics.APIReply {
	var rep topics.APIReply
	now := c.cfg.Now()
	for i, doc := range req.Documents {
		origin := fmt.Sprintf("document %d", i+1)
		if i < len(req.Origins) {
			origin = req.Origins[i]
		}
		r, err := api.ParseDocument(doc)
		if err == nil && r == nil {
			continue
		}
		if err == nil {
			err = api.Validate(r, c.cfg.Admission)
		}
		if err == nil && req.Strict && len(r.Unknown) > 0 {
			err = fmt.Errorf("%w: %s %s: %s (--strict)", api.ErrInvalid, r.Kind, r.Metadata.Name, unknownWarnings(r.Unknown))
		}
		if err == nil {
			if why := c.commandAllowed(r, who.role); why != "" {
				err = errors.New(why)
				c.log.Warn("apply refused: a command the user may not run", "user", who.user, "role", who.role, "key", r.Key(), "why", why)
			}
		}
		if err != nil {
			key := origin
			if r != nil {
				key = r.Key()
			}
			rep.Results = append(rep.Results, topics.APIResult{Key: key, Action: "rejected", Message: origin + ": " + err.Error()})
			continue
		}
		key := r.Key()
		e, exists := c.res[key]
		action := "created"
		var warnings []string
		if len(r.Unknown) > 0 {
			warnings = []string{unknownWarnings(r.Unknown)}
		}
		if exists {
			if string(e.rec.Source) == string(r.Source) {
				rep.Results = append(rep.Results, topics.APIResult{Key: key, Action: "unchanged", Warnings: warnings})
				continue
			}
			action = "configured"
			e.rec.Generation++
			e.rec.Updated, e.rec.Source, e.res = now.UnixNano(), r.Source, r
			// The workers run the new generation from now: what they
			// said of the old one (Succeeded, a crash loop) is not of it.
			e.status.Workers, e.status.CompletionTime, e.status.Progress = nil, nil, nil
		} else {
			created := c.creationTime(key, now)
			e = &entry{res: r, rec: record{Generation: 1, Created: created, Updated: now.UnixNano(), Source: r.Source}}
			e.status.SetCondition(api.ConditionAccepted, api.StatusTrue, "Admitted", "", now)
			e.status.StartTime = &now
			c.res[key] = e
		}
		e.rec.AppliedBy, e.rec.Role = who.user, who.role
		e.status.Generation = e.rec.Generation
		c.importModel(e)
		c.settle(e, now)
		if err := c.save(e); err != nil {
			rep.Results = append(rep.Results, topics.APIResult{Key: key, Action: "rejected", Message: "not stored: " + err.Error()})
			if !exists {
				delete(c.res, key)
			}
			continue
		}
		c.publishSpec(e)
		c.publishStatus(e)
		c.event(e, "Normal", strings.ToUpper(action[:1])+action[1:], fmt.Sprintf("generation %d", e.rec.Generation))
		c.dispatch(e)
		rep.Results = append(rep.Results, topics.APIResult{Key: key, Action: action, Warnings: warnings})
	}
	// What this apply added may be what others waited for, in any order.
	c.reevaluate(now)
	c.offerModels()
	for i, r := range rep.Results {
		if e, ok := c.res[r.Key]; ok && r.Action != "rejected" {
			rep.Results[i].Pending = strings.Join(e.status.Pending, "; ")
		}
	}
	return rep
}

// unknownWarnings says which fields Sedna's CRDs do not define, as
// kubectl says it.
func unknownWarnings(fields []string) string {
	q := make([]string, len(fields))
	for i, f := range fields {
		q[i] = strconv.Quote(f)
	}
	if len(q) == 1 {
		return "unknown field " + q[0]
	}
	return "unknown fields " + strings.Join(q, ", ")
}

// creationTime is the creation time of a new incarnation of key: now,
// or later than the incarnation deleted last if the clock says otherwise.
func (c *ControlPlane) creationTime(key string, now time.Time) int64 {
	created := now.UnixNano()
	if last, ok := c.deleted[key]; ok {
		created = max(created, last+1)
	}
	return created
}

func (c *ControlPlane) lookup(req topics.APIRequest) (*entry, string) {
	kind, ok := Resolve(req.Kind)
	if !ok {
		return nil, api.UnknownKind(req.Kind)
	}
	ns := req.Namespace
	if ns == "" {
		ns = "default"
	}
	key := kind + "/" + ns + "/" + req.Name
	e, ok := c.res[key]
	if !ok {
		return nil, fmt.Sprintf("%s %q not found in namespace %s", kind, req.Name, ns)
	}
	return e, ""
}

func (c *ControlPlane) delete(req topics.APIRequest) topics.APIReply {
	e, msg := c.lookup(req)
	if e == nil {
		return topics.APIReply{Error: msg}
	}
	key := e.res.Key()
	ref := refOf(e.res)
	if err := c.fx.forget(key, e.rec.Created); err != nil {
		return topics.APIReply{Error: "not deleted: " + err.Error()}
	}
	delete(c.res, key)
	c.deleted[key] = e.rec.Created
	for _, n := range e.sentTo {
		rev := e.rec.revision()
		rev.Generation++
		if err := c.fx.sendSpec(n, ref, topics.Spec{Generation: rev.Generation, Created: rev.Created, Deleted: true}); err != nil {
			c.log.Error("tombstone not queued", "node", n, "key", key, "error", err)
		}
	}
	c.fx.stop(ref)
	_ = c.fx.clear(topics.JobSpec(ref))
	_ = c.fx.clear(topics.JobStatus(ref))
	c.event(e, "Normal", "Deleted", "")
	c.reevaluate(c.cfg.Now())
	return topics.APIReply{Results: []topics.APIResult{{Key: key, Action: "deleted"}}}
}

func (c *ControlPlane) get(req topics.APIRequest) topics.APIReply {
	var rep topics.APIReply
	if req.Name != "" {
		e, msg := c.lookup(req)
		if e == nil {
			return topics.APIReply{Error: msg}
		}
		rep.Objects = append(rep.Objects, c.object(e))
		return rep
	}
	kind := ""
	if req.Kind != "" && req.Kind != "all" {
		var ok bool
		if kind, ok = Resolve(req.Kind); !ok {
			return topics.APIReply{Error: api.UnknownKind(req.Kind)}
		}
	}
	for _, e := range c.sorted() {
		if (kind == "" || e.res.Kind == kind) && (req.Namespace == "" || e.res.Metadata.Namespace == req.Namespace) {
			rep.Objects = append(rep.Objects, c.object(e))
		}
	}
	return rep
}

func (c *ControlPlane) object(e *entry) topics.APIObject {
	st, _ := json.Marshal(e.status)
	return topics.APIObject{Key: e.res.Key(), Generation: e.rec.Generation, Created: e.rec.Created, Updated: e.rec.Updated,
		Source: e.rec.Source, Status: st, Ignored: e.res.Ignored}
}

// ---- references, dispatch, status ----

// observe gathers what a resource's status derives from beside its
// workers' reports: what it waits for (references not applied yet, nodes
// that never joined, a model version), the workers it places, and which
// of their nodes are offline.
func (c *ControlPlane) observe(e *entry) api.Observed {
	o := api.Observed{Kind: e.res.Kind, Desired: e.res.Workers()}
	if c.cfg.View != nil {
		o.Deciders = c.cfg.View(e.res.Kind).Deciders
	}
	ns := e.res.Metadata.Namespace
	for _, ref := range e.res.References() {
		m, ok := c.res[ref.Kind+"/"+ns+"/"+ref.Name]
		switch {
		case !ok:
			o.Waits = append(o.Waits, fmt.Sprintf("%s %q (%s)", ref.Kind, ref.Name, ref.Field))
		case ref.Input:
			if w := c.modelWaits(m); w != "" {
				o.Waits = append(o.Waits, fmt.Sprintf("Model %q (%s) to have %s", ref.Name, ref.Field, w))
			}
		}
	}
	for _, n := range c.nodesOf(e) {
		switch {
		case n == c.cfg.Name:
		case c.nodes[n] == "":
			o.Waits = append(o.Waits, fmt.Sprintf("node %q to join", n))
		case c.nodes[n] != topics.NodeOnline:
			o.Offline = append(o.Offline, n)
		}
	}
	if w := c.modelWaits(e); w != "" {
		o.Waits = append(o.Waits, w)
	}
	o.Waits = append(o.Waits, c.secretWaits(e)...)
	switch e.res.Kind {
	case api.KindDataset:
		o.Reported, o.Problem = e.status.NumberOfSamples != nil, e.status.DatasetProblem
		if o.Reported {
			o.Describe = fmt.Sprintf("%d samples on node %s", *e.status.NumberOfSamples, e.res.Spec.(*api.DatasetSpec).NodeName)
		}
	case api.KindModel:
		if m := e.status.Model; m != nil {
			o.Describe = fmt.Sprintf("version %d (%d bytes, %s)", m.Version, m.Size, m.Digest)
		}
	}
	return o
}

// settle derives the resource's phase and conditions (api.Status.Settle).
func (c *ControlPlane) settle(e *entry, now time.Time) {
	e.status.Settle(c.observe(e), now)
}

// fingerprint is what a status change worth publishing changes.
func fingerprint(st *api.Status) string {
	var b strings.Builder
	b.WriteString(st.Phase)
	for _, c := range st.Conditions {
		fmt.Fprintf(&b, "|%s=%s:%s:%s", c.Type, c.Status, c.Reason, c.Message)
	}
	return b.String()
}

// reevaluate revisits every resource after something appeared or went.
func (c *ControlPlane) reevaluate(now time.Time) {
	for _, e := range c.sorted() {
		before := fingerprint(&e.status)
		c.settle(e, now)
		if fingerprint(&e.status) != before {
			if err := c.save(e); err != nil {
				c.log.Error("status not stored", "key", e.res.Key(), "error", err)
			}
			c.publishStatus(e)
			c.dispatch(e)
		}
	}
}

// waitsForResources reports whether a reference to another resource is
// missing (a missing node does not hold dispatch: its outbox keeps the
// spec until it joins).
func (c *ControlPlane) waitsForResources(e *entry) bool {
	if len(c.secretWaits(e)) > 0 {
		return true
	}
	ns := e.res.Metadata.Namespace
	for _, ref := range e.res.References() {
		if _, ok := c.res[ref.Kind+"/"+ns+"/"+ref.Name]; !ok {
			return true
		}
	}
	return false
}

// nodesOf lists the nodes a resource places work on: those of its workers
// and, for a learning job, the node of its Dataset, where its controller
// runs (its triggers hold there while the link is down).
func (c *ControlPlane) nodesOf(e *entry) []string {
	nodes := e.res.Nodes()
	dataset, ok := learningDataset(e.res)
	if !ok {
		return nodes
	}
	if d, ok := c.datasetNode(e.res.Metadata.Namespace, dataset); ok && !slices.Contains(nodes, d) {
		nodes = append(nodes, d)
	}
	return nodes
}

// learningDataset is the Dataset of a learning job (incremental or
// lifelong), whose node runs its controller; ok is false for other kinds.
func learningDataset(r *api.Resource) (name string, ok bool) {
	switch s := r.Spec.(type) {
	case *api.IncrementalLearningJobSpec:
		return s.Dataset.Name, true
	case *api.LifelongLearningJobSpec:
		return s.Dataset.Name, true
	}
	return "", false
}

// datasetNode is the node of a Dataset, if it is applied.
func (c *ControlPlane) datasetNode(namespace, name string) (string, bool) {
	m, ok := c.res[api.KindDataset+"/"+namespace+"/"+name]
	if !ok {
		return "", false
	}
	ds, ok := m.res.Spec.(*api.DatasetSpec)
	if !ok || ds.NodeName == "" {
		return "", false
	}
	return ds.NodeName, true
}

// dispatch sends the spec to the nodes that run part of it and runs the
// cloud's workers.
func (c *ControlPlane) dispatch(e *entry) {
	if c.waitsForResources(e) {
		return
	}
	// Stored before roles existed, or with an allowlist that changed
	// since: a command runs only if whoever applied it may run it now.
	if why := c.commandAllowed(e.res, e.rec.Role); why != "" {
		if cond, ok := e.status.Condition(api.ConditionFailed); !ok || cond.Message != why {
			now := c.cfg.Now()
			e.status.Phase = api.ConditionFailed
			e.status.SetCondition(api.ConditionFailed, api.StatusTrue, "CommandNotAllowed", why, now)
			c.log.Warn("not dispatched: a command its user may not run", "key", e.res.Key(), "by", e.rec.AppliedBy, "why", why)
			if err := c.save(e); err != nil {
				c.log.Error("status not stored", "key", e.res.Key(), "error", err)
			}
			c.publishStatus(e)
		}
		return
	}
	ref := refOf(e.res)
	var nodes []string
	for _, n := range c.nodesOf(e) {
		if n != c.cfg.Name {
			nodes = append(nodes, n)
		}
	}
	names := c.credentials(e)
	if len(names) > 0 {
		c.jobSecrets.Store(e.res.Key(), names)
	} else {
		c.jobSecrets.Delete(e.res.Key())
	}
	if e.dispatched < e.rec.Generation {
		for _, n := range nodes {
			sp := topics.Spec{Generation: e.rec.Generation, Created: e.rec.Created, Data: e.rec.Source}
			if len(names) > 0 {
				sealed, err := c.cfg.Secrets.SealFor(n, e.res.Metadata.Namespace, names)
				if err != nil {
					c.log.Error("spec not queued: its secrets not sealed for the node", "node", n, "key", e.res.Key(), "error", err)
					return
				}
				sp.Secrets = sealed
			}
			if err := c.fx.sendSpec(n, ref, sp); err != nil {
				c.log.Error("spec not queued", "node", n, "key", e.res.Key(), "error", err)
				return
			}
		}
		for _, n := range e.sentTo { // nodes the job left
			if !slices.Contains(nodes, n) {
				if err := c.fx.sendSpec(n, ref, topics.Spec{Generation: e.rec.Generation, Created: e.rec.Created, Deleted: true}); err != nil {
					c.log.Error("tombstone not queued", "node", n, "key", e.res.Key(), "error", err)
				}
			}
		}
		e.dispatched, e.sentTo = e.rec.Generation, nodes
		if err := c.save(e); err != nil {
			c.log.Error("dispatch not stored", "key", e.res.Key(), "error", err)
		}
	}
	for _, w := range e.res.Workers() {
		if w.Node == c.cfg.Name {
			c.fx.ensure(workers.Spec{Job: ref, Generation: e.rec.Generation, Created: e.rec.Created, Worker: w,
				BrokerURL: c.cfg.BrokerURL, Document: e.rec.Source})
		}
	}
}

func (c *ControlPlane) publish(topic, kind string, body any, retain bool) {
	if err := c.fx.publish(topic, kind, body, retain); err != nil {
		c.log.Error("publish failed", "topic", topic, "error", err)
	}
}

func (c *ControlPlane) publishSpec(e *entry) {
	ref := refOf(e.res)
	c.publish(topics.JobSpec(ref), topics.KindSpec, topics.Spec{Key: ref.String(), Generation: e.rec.Generation, Created: e.rec.Created, Data: e.rec.Source}, true)
}

func (c *ControlPlane) publishStatus(e *entry) {
	c.publish(topics.JobStatus(refOf(e.res)), topics.KindStatus, e.status, true)
}

func (c *ControlPlane) event(e *entry, typ, reason, msg string) {
	c.publish(topics.JobEvents(refOf(e.res)), topics.KindJobEvent, topics.JobEvent{Key: e.res.Key(), Time: c.cfg.Now().UnixNano(),
		Type: typ, Reason: reason, Message: msg}, false)
}

// ---- reports from nodes and the cloud's own workers ----

func (c *ControlPlane) onNodeStatus(topic string, payload []byte) {
	p, err := topics.Parse(topic)
	if err != nil || len(payload) == 0 {
		return
	}
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil {
		return
	}
	var ns topics.NodeStatus
	if err := env.DecodeBody(&ns); err != nil {
		c.log.Warn("node status not read", "node", p.Node, "error", err)
		return
	}
	c.do(func() { c.nodeStatus(p.Node, ns) })
}

// nodeStatus takes a node's status: the first one it ever sends makes it
// joined, which the jobs that wait for it see.
func (c *ControlPlane) nodeStatus(node string, ns topics.NodeStatus) {
	if old, ok := c.sessions[node]; ok && !ns.Supersedes(old) {
		return // a will of an older session
	}
	now := c.cfg.Now()
	if old, ok := c.sessions[node]; !ok || old.State != ns.State || c.silent[node] != "" {
		c.since[node] = now
	}
	delete(c.silent, node)
	c.sessions[node] = ns
	c.seen[node] = now
	first := c.nodes[node] == ""
	c.nodes[node] = ns.State
	if first {
		if err := c.fx.joined(node, ns.State); err != nil {
			c.log.Error("node not stored", "node", node, "error", err)
		}
		c.reevaluate(c.cfg.Now())
		c.offerModels()
	}
}

func (c *ControlPlane) onNodeJob(topic string, payload []byte) {
	p, err := topics.Parse(topic)
	if err != nil {
		return
	}
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil {
		c.refuse(topic, "node "+p.Node, payload, err)
		return
	}
	decode := func(v any) bool {
		if err := env.DecodeBody(v); err != nil {
			c.refuse(topic, "node "+p.Node, payload, err)
			return false
		}
		return true
	}
	c.do(func() { c.seen[p.Node] = c.cfg.Now() })
	switch env.Kind {
	case topics.KindWorkerStatus:
		var ws api.WorkerStatus
		if decode(&ws) {
			ws.Node = p.Node
			c.do(func() { c.workerStatus(p.Job, ws) })
		}
	case topics.KindWorkerMetrics:
		var wm topics.WorkerMetrics
		if decode(&wm) {
			c.do(func() { c.workerMetrics(p.Job, p.Node, wm) })
		}
	case topics.KindDatasetStatus:
		var ds topics.DatasetStatus
		if decode(&ds) {
			c.do(func() { c.datasetStatus(p.Job, p.Node, ds) })
		}
	case topics.KindStageCondition:
		var sc topics.StageCondition
		if decode(&sc) {
			c.do(func() { c.stageCondition(p.Job, p.Node, sc) })
		}
	case topics.KindModelFetch:
		var f topics.ModelFetch
		if decode(&f) && f.Key == p.Job.String() {
			c.do(func() { c.fetch(p.Node, p.Job, f) })
		}
	case topics.KindModelHeld:
		var h topics.ModelHeld
		if decode(&h) && h.Key == p.Job.String() {
			c.do(func() { c.held(p.Node, p.Job, h) })
		}
	}
}

// refuse records a message the control plane could not read: an error is
// never taken for "nothing there". It goes to the dead-letter store (which
// reports it as an error event), or to the log without one.
func (c *ControlPlane) refuse(topic, from string, payload []byte, err error) {
	c.log.Warn("message refused", "topic", topic, "from", from, "error", err)
	if c.cfg.Dead != nil {
		c.cfg.Dead.Add(queue.DeadLetter{Component: "cloud/control", Reason: topics.ReasonOf(err), Detail: from + ": " + err.Error(),
			Topic: topic, Payload: payload})
	}
}

// ReportWorker takes a report of one of the cloud's own workers.
func (c *ControlPlane) ReportWorker(spec workers.Spec, ws api.WorkerStatus) {
	ws.Node = c.cfg.Name
	c.do(func() { c.workerStatus(spec.Job, ws) })
}

// ReportWorkerMetrics takes the numbers of one of the cloud's own workers.
func (c *ControlPlane) ReportWorkerMetrics(spec workers.Spec, m topics.WorkerMetrics) {
	c.do(func() { c.workerMetrics(spec.Job, c.cfg.Name, m) })
}

// ReportWorkerEvent records an event of one of the cloud's own workers
// (a federated round, a stage) as an event of its job.
func (c *ControlPlane) ReportWorkerEvent(spec workers.Spec, typ, reason, message string) {
	c.do(func() {
		if e, ok := c.res[spec.Job.String()]; ok {
			c.event(e, typ, reason, message)
		}
	})
}

// workerMetrics keeps a worker's numbers and merges every worker's into
// the job's status metrics; no event, since they change all the time.
func (c *ControlPlane) workerMetrics(ref topics.JobRef, node string, m topics.WorkerMetrics) {
	e, ok := c.res[ref.String()]
	if !ok || !c.placed(e, m.Role, node) {
		return
	}
	// A number that is not finite has no JSON form: it would make the
	// whole status unreadable.
	m.Metrics = maps.Clone(m.Metrics)
	maps.DeleteFunc(m.Metrics, func(_ string, v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
	i := slices.IndexFunc(e.status.Workers, func(w api.WorkerStatus) bool { return w.Role == m.Role })
	if i < 0 {
		e.status.Workers = append(e.status.Workers, api.WorkerStatus{Role: m.Role, Node: node})
		sort.Slice(e.status.Workers, func(a, b int) bool { return e.status.Workers[a].Role < e.status.Workers[b].Role })
		i = slices.IndexFunc(e.status.Workers, func(w api.WorkerStatus) bool { return w.Role == m.Role })
	}
	e.status.Workers[i].Metrics = m.Metrics
	mergeMetrics(e)
	// A worker that counts rounds (or stages) gives the job its progress.
	if done, ok := m.Metrics["round"]; ok {
		if total, ok := m.Metrics["rounds"]; ok && total > 0 {
			e.status.Progress = &api.Progress{Done: int(done), Total: int(total), Unit: "rounds"}
		}
	}
	if err := c.save(e); err != nil {
		c.log.Error("status not stored", "key", e.res.Key(), "error", err)
	}
	c.publishStatus(e)
}

// mergeMetrics sets the job's metrics from its workers': theirs
// together, but a name several workers report (each training worker's own
// numbers) stays with each worker.
func mergeMetrics(e *entry) {
	merged, reporters := map[string]float64{}, map[string]int{}
	for _, w := range e.status.Workers {
		for k := range w.Metrics {
			reporters[k]++
		}
		maps.Copy(merged, w.Metrics)
	}
	maps.DeleteFunc(merged, func(k string, _ float64) bool { return reporters[k] > 1 })
	if len(merged) == 0 && e.status.Metrics == nil {
		return
	}
	e.status.Metrics = merged
}

// placed reports whether the job places role on node: a node reports only
// on its own workers (what a node may publish is checked by the broker's
// ACL; what it says there is checked here).
func (c *ControlPlane) placed(e *entry, role, node string) bool {
	for _, w := range e.res.Workers() {
		if w.Role == role {
			if w.Node == node {
				return true
			}
			break
		}
	}
	c.log.Warn("a report on a worker the job does not place there: ignored", "key", e.res.Key(), "role", role, "node", node)
	return false
}

func (c *ControlPlane) workerStatus(ref topics.JobRef, ws api.WorkerStatus) {
	e, ok := c.res[ref.String()]
	if !ok || !c.placed(e, ws.Role, ws.Node) {
		return
	}
	// A worker replaced since (a new generation, or the resource deleted
	// and applied again) says its last word late: it is not the new one's.
	if ws.Generation > 0 && e.rec.revision().After(topics.Revision{Created: ws.Created, Generation: ws.Generation}) {
		c.log.Debug("a report of a worker of an older revision: ignored", "key", e.res.Key(), "role", ws.Role, "node", ws.Node,
			"generation", ws.Generation)
		return
	}
	now := c.cfg.Now()
	i := slices.IndexFunc(e.status.Workers, func(w api.WorkerStatus) bool { return w.Role == ws.Role })
	if i < 0 {
		e.status.Workers = append(e.status.Workers, ws)
		sort.Slice(e.status.Workers, func(a, b int) bool { return e.status.Workers[a].Role < e.status.Workers[b].Role })
	} else {
		// A state report says nothing of the worker's numbers: they stay
		// while it is the same worker (a restart), not for a worker of
		// another revision.
		if prev := e.status.Workers[i]; ws.Metrics == nil && prev.Generation == ws.Generation && prev.Created == ws.Created {
			ws.Metrics = prev.Metrics
		}
		e.status.Workers[i] = ws
		mergeMetrics(e)
	}
	msg := fmt.Sprintf("worker %s on %s: %s", ws.Role, ws.Node, ws.Phase)
	if ws.ExitCode != nil {
		msg += fmt.Sprintf(" (exit %d)", *ws.ExitCode)
	}
	if ws.Message != "" {
		msg += ": " + ws.Message
	}
	typ := "Normal"
	if ws.Phase == workers.PhaseRestarting || ws.Phase == workers.PhaseCrashLoop || ws.Phase == workers.PhaseFailed {
		typ = "Warning"
	}
	c.event(e, typ, "Worker"+ws.Phase, msg)
	c.settle(e, now)
	if err := c.save(e); err != nil {
		c.log.Error("status not stored", "key", e.res.Key(), "error", err)
	}
	c.publishStatus(e)
}

// stageCondition takes a learning job's move from its controller: a stage
// condition in the status (the newest api.StageConditionsKept), where the
// cycles are, an event, and the job Completed once a stop condition held.
func (c *ControlPlane) stageCondition(ref topics.JobRef, node string, sc topics.StageCondition) {
	e, ok := c.res[ref.String()]
	if !ok {
		return
	}
	dataset, ok := learningDataset(e.res)
	if !ok {
		c.log.Warn("a stage condition for a job without stages: ignored", "key", e.res.Key(), "node", node)
		return
	}
	if d, ok := c.datasetNode(e.res.Metadata.Namespace, dataset); !ok || d != node {
		c.log.Warn("a stage condition from a node that does not hold the job's Dataset: ignored", "key", e.res.Key(), "node", node)
		return
	}
	// A controller of the job deleted and applied again since says its
	// last word late: it is not the new one's.
	if sc.Revision.Created != 0 && sc.Revision.Created < e.rec.Created {
		return
	}
	at := time.Unix(0, sc.Time)
	cond := api.Condition{Type: sc.Type, Status: sc.Status, Stage: sc.Stage, Reason: sc.Reason, Message: sc.Message, Data: sc.Data,
		LastTransitionTime: at, LastHeartbeatTime: at}
	for _, x := range e.status.Conditions {
		if x.Stage == cond.Stage && x.Type == cond.Type && x.LastTransitionTime.Equal(at) {
			return // sent again (a redelivery after a reconnect)
		}
	}
	e.status.AddStageCondition(cond)
	if sc.Stage == "Deploy" && sc.Type == "Completed" && sc.Data != "" {
		// A deploy's output may add to the status: a lifelong job's
		// knowledge base.
		var out struct {
			Model  uint64 `json:"model"`
			Status struct {
				KnowledgeBase *api.KnowledgeBase `json:"knowledgeBase"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(sc.Data), &out); err != nil {
			c.log.Warn("a deploy's output that is not JSON: its status part ignored", "key", e.res.Key(), "error", err)
		} else if kb := out.Status.KnowledgeBase; kb != nil {
			kb.Version = out.Model
			e.status.KnowledgeBase = kb
		}
	}
	e.status.Stage = &api.StageStatus{Cycle: sc.Cycle, Stage: sc.Stage, Phase: sc.Type, Serving: sc.Serving, Deployed: sc.Deployed,
		Done: sc.Done, Reason: sc.DoneReason}
	if il, ok := e.res.Spec.(*api.IncrementalLearningJobSpec); ok && il.StopCondition != nil && il.StopCondition.MaxCycles > 0 {
		done := sc.Cycle - 1
		if sc.Done {
			done = sc.Cycle
		}
		e.status.Progress = &api.Progress{Done: int(done), Total: int(il.StopCondition.MaxCycles), Unit: "cycles"}
	}
	typ := "Normal"
	if sc.Type == "Failed" {
		typ = "Warning"
	}
	msg := fmt.Sprintf("cycle %d: %s %s", sc.Cycle, sc.Stage, sc.Type)
	if t := strings.TrimSpace(sc.Reason + " " + sc.Message); t != "" {
		msg += ": " + t
	}
	if sc.Data != "" {
		msg += " " + sc.Data
	}
	c.event(e, typ, "Stage"+sc.Type, msg)
	c.settle(e, c.cfg.Now())
	if err := c.save(e); err != nil {
		c.log.Error("status not stored", "key", e.res.Key(), "error", err)
	}
	c.publishStatus(e)
}

func (c *ControlPlane) datasetStatus(ref topics.JobRef, node string, ds topics.DatasetStatus) {
	e, ok := c.res[ref.String()]
	if !ok || e.res.Kind != api.KindDataset {
		return
	}
	if spec, _ := e.res.Spec.(*api.DatasetSpec); spec == nil || spec.NodeName != node {
		return // only the dataset's own node speaks for it
	}
	n := ds.NumberOfSamples
	e.status.NumberOfSamples = &n
	e.status.DatasetProblem = ds.Problem
	c.settle(e, c.cfg.Now())
	if err := c.save(e); err != nil {
		c.log.Error("status not stored", "key", e.res.Key(), "error", err)
	}
	c.publishStatus(e)
}

// nodeList is every node the control plane knows of: those that joined
// and those its resources name, with their state, what the cloud holds
// for them and the workers placed on them.
func (c *ControlPlane) nodeList() []topics.NodeInfo {
	byName := map[string]*topics.NodeInfo{}
	info := func(n string) *topics.NodeInfo {
		if i, ok := byName[n]; ok {
			return i
		}
		i := &topics.NodeInfo{Name: n, State: "unknown"}
		if st := c.nodes[n]; st != "" {
			i.State = st
		}
		if ns, ok := c.sessions[n]; ok {
			i.State, i.Version, i.OS, i.Arch = ns.State, ns.Version, ns.OS, ns.Arch
			if ns.State == topics.NodeOffline {
				i.Reason = ns.Reason
			}
		}
		if why := c.silent[n]; why != "" {
			i.State, i.Reason = topics.NodeOffline, why
		}
		if t, ok := c.since[n]; ok {
			i.Since = t.UnixNano()
		}
		if t, ok := c.seen[n]; ok {
			i.LastSeen = t.UnixNano()
		}
		byName[n] = i
		return i
	}
	for n := range c.nodes {
		info(n)
	}
	for _, e := range c.sorted() {
		for _, n := range c.nodesOf(e) {
			if n == c.cfg.Name {
				continue
			}
			i := info(n)
			for _, w := range e.res.Workers() {
				if w.Node != n {
					continue
				}
				phase := "NotReported"
				if j := slices.IndexFunc(e.status.Workers, func(ws api.WorkerStatus) bool { return ws.Role == w.Role && ws.Node == n }); j >= 0 {
					phase = e.status.Workers[j].Phase
					if e.status.Workers[j].CrashLooping() {
						phase = api.WorkerCrashLoop
					}
				}
				i.Workers = append(i.Workers, e.res.Key()+"/"+w.Role+" "+phase)
			}
		}
	}
	var backlog []queue.StreamStats
	switch {
	case c.cfg.Backlog != nil:
		backlog = c.cfg.Backlog()
	case c.cfg.Downlink != nil && c.cfg.Downlink.Queue() != nil:
		backlog = c.cfg.Downlink.Queue().Stats()
	}
	for _, st := range backlog {
		if i, ok := byName[st.Stream]; ok {
			i.Backlog, i.BacklogBytes = st.Messages, st.Bytes
			if !st.Oldest.IsZero() {
				i.Oldest = st.Oldest.UnixNano()
			}
		}
	}
	out := make([]topics.NodeInfo, 0, len(byName))
	for _, i := range byName {
		out = append(out, *i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// ErrNotFound is returned by the client for a resource that does not exist.
var ErrNotFound = errors.New("not found")
