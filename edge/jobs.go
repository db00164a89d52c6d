package edge

import (
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/internal/serial"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// jobs runs the node's share of the jobs whose specs reach it. It is the
// node's one reconciler of specs: the bridge gives it every spec the cloud
// sends (Bridge.Consume); it keeps the newest revision of each key in the
// store (a stale spec is ignored, a tombstone deletes), serves the kept
// spec retained on the node's broker for the workers that read it there,
// starts the workers placed on this node, stops those of deleted jobs, and
// reports worker states to the cloud.
type jobs struct {
	node    string
	st      store.Store
	srv     *broker.Server
	bridge  *bridge.Bridge
	sup     *workers.Supervisor
	log     *slog.Logger
	owner   *serial.Loop
	mu      sync.Mutex // guards specs: taken on the bridge's goroutine, applied on the owner's
	specs   map[string]storedSpec
	onModel func(key string, data []byte, deleted bool)
	onSpec  []func(key string, r *api.Resource, deleted bool)
}

type storedSpec struct {
	Gen     uint64 `msgpack:"gen"`
	Deleted bool   `msgpack:"del"`
	Data    []byte `msgpack:"data"`
	Created int64  `msgpack:"created,omitempty"`
	// Secrets stay sealed at rest: they are opened for a worker's start.
	Secrets map[string][]byte `msgpack:"secrets,omitempty"`
}

func (s storedSpec) revision() topics.Revision {
	return topics.Revision{Created: s.Created, Generation: s.Gen}
}

func newJobs(node string, st store.Store, srv *broker.Server, bridge *bridge.Bridge, sup *workers.Supervisor, log *slog.Logger) *jobs {
	return &jobs{node: node, st: st, srv: srv, bridge: bridge, sup: sup, log: log.With("component", "jobs"),
		owner: serial.New(256), specs: map[string]storedSpec{}}
}

// subscribe loads the kept specs and takes the new ones from the bridge.
// It runs before the bridge starts.
func (j *jobs) subscribe() error {
	if err := j.load(); err != nil {
		return err
	}
	j.bridge.Consume(topics.JobSpec(topics.JobRef{Kind: "+", Namespace: "+", Name: "+"}), j.take)
	return nil
}

// load reads the kept specs.
func (j *jobs) load() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.st.Scan(nil, nil, func(k, v []byte) error {
		var s storedSpec
		if err := msgpack.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("jobs: spec %s: %w", k, err)
		}
		j.specs[string(k)] = s
		return nil
	})
}

// take reconciles a spec the bridge delivers, on the bridge's goroutine:
// a newer revision than the node holds is kept in the store before take
// returns (the bridge is done with the message then), and applied on the
// owner goroutine; a stale one, or one that is not a spec of its topic's
// key, is dropped with a log line.
func (j *jobs) take(topic string, payload []byte) {
	p, err := topics.Parse(topic)
	var sp topics.Spec
	if err == nil {
		var env *topics.Envelope
		env, err = topics.UnmarshalEnvelope(payload, topics.Limits{MaxBody: 16 << 20})
		switch {
		case err != nil:
		case env.Kind != topics.KindSpec:
			err = fmt.Errorf("a %s, not a spec", env.Kind)
		default:
			err = env.DecodeBody(&sp)
		}
	}
	if err == nil && sp.Key != p.Job.String() {
		err = fmt.Errorf("the spec of %q on the topic of %s", sp.Key, p.Job)
	}
	if err != nil {
		j.log.Warn("spec refused", "topic", topic, "error", err)
		return
	}
	s, ok := j.keep(sp)
	if !ok {
		j.log.Debug("stale spec ignored", "key", sp.Key, "generation", sp.Generation, "created", sp.Created)
		return
	}
	j.do(func() {
		j.serve(sp.Key, s)
		j.apply(sp.Key, s)
	})
}

// keep stores sp if it is newer than what the node holds.
func (j *jobs) keep(sp topics.Spec) (storedSpec, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	old, ok := j.specs[sp.Key]
	if ok && !sp.Revision().After(old.revision()) {
		return storedSpec{}, false
	}
	s := storedSpec{Gen: sp.Generation, Deleted: sp.Deleted, Data: sp.Data, Created: sp.Created, Secrets: sp.Secrets}
	v, _ := msgpack.Marshal(&s)
	var b store.Batch
	b.Put([]byte(sp.Key), v)
	if err := j.st.Write(&b); err != nil {
		j.log.Error("spec not kept", "key", sp.Key, "error", err)
	}
	j.specs[sp.Key] = s
	return s, true
}

// Revision returns the revision of the spec key the node holds, and
// whether it is deleted; ok is false if the node never saw it.
func (j *jobs) revision(key string) (rev topics.Revision, deleted, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.specs[key]
	return s.revision(), s.Deleted, ok
}

// run starts the owner goroutine: the kept specs go back on the broker and
// their workers start, then new specs are taken as they come.
func (j *jobs) run() {
	j.owner.Start()
	j.do(func() {
		j.mu.Lock()
		kept := maps.Clone(j.specs)
		j.mu.Unlock()
		for key, s := range kept {
			// A Model's spec is the model cache's (it fetches what it
			// lacks): served as it comes, not again at a restart.
			if !s.Deleted && !strings.HasPrefix(key, api.KindModel+"/") {
				j.serve(key, s)
			}
			j.apply(key, s)
		}
	})
}

func (j *jobs) do(f func()) { j.owner.Do(f) }

func (j *jobs) close() { j.owner.Close() }

// apply makes the node's workers match the spec.
func (j *jobs) apply(key string, s storedSpec) {
	ref, err := topics.ParseJobRef(key)
	if err != nil {
		j.log.Error("spec refused", "error", err)
		return
	}
	if ref.Kind == api.KindModel {
		if j.onModel != nil {
			j.onModel(key, s.Data, s.Deleted)
		}
		return
	}
	if s.Deleted {
		j.sup.Stop(ref)
		j.notify(key, nil, true)
		return
	}
	r, err := api.ParseDocument(s.Data)
	if err != nil || r == nil {
		j.log.Error("spec does not parse", "key", key, "error", err)
		return
	}
	keep := map[string]bool{}
	for _, w := range r.Workers() {
		if w.Node != j.node {
			continue
		}
		spec := workers.Spec{Job: ref, Generation: s.Gen, Created: s.Created, Worker: w, BrokerURL: j.srv.URL(), Document: s.Data,
			Secrets: s.Secrets}
		keep[spec.ID()] = true
		j.sup.Ensure(spec)
	}
	// Roles this node no longer runs for the job stop.
	j.sup.StopExcept(ref, keep)
	j.notify(key, r, false)
}

func (j *jobs) notify(key string, r *api.Resource, deleted bool) {
	for _, f := range j.onSpec {
		f(key, r, deleted)
	}
}

// serve puts the spec the node holds on its broker for the workers that
// read it there (SEDNA_SPEC_TOPIC): retained; a tombstone is published to
// live subscribers and the retained copy goes away.
func (j *jobs) serve(key string, s storedSpec) {
	ref, err := topics.ParseJobRef(key)
	if err != nil {
		return
	}
	raw, err := topics.Encode(topics.KindSpec, "edge/jobs", topics.Spec{Key: key, Generation: s.Gen, Deleted: s.Deleted, Data: s.Data, Created: s.Created})
	if err != nil {
		return
	}
	from := access.SystemPrincipal("edge/jobs")
	if s.Deleted {
		_ = j.srv.Publish(from, topics.JobSpec(ref), raw, false, 1)
		_ = j.srv.Publish(from, topics.JobSpec(ref), nil, true, 1)
		return
	}
	_ = j.srv.Publish(from, topics.JobSpec(ref), raw, true, 1)
}

// report sends a worker's state to the cloud (and to local listeners).
// reportMetrics sends a worker's numbers up (stream events).
func (j *jobs) reportMetrics(spec workers.Spec, m topics.WorkerMetrics) {
	j.send(spec, topics.KindWorkerMetrics, "metrics/", m, false)
}

func (j *jobs) report(spec workers.Spec, st api.WorkerStatus) {
	j.send(spec, topics.KindWorkerStatus, "workers/", st, true)
}

// send queues a worker's report for the cloud (stream events) under
// NodeJob(node, job, what+role), and publishes it on the node's broker
// too when local says so.
func (j *jobs) send(spec workers.Spec, kind, what string, body any, local bool) {
	env, err := topics.NewEnvelope(kind, "edge/jobs", body)
	if err != nil {
		return
	}
	raw, err := env.Marshal()
	if err != nil {
		return
	}
	topic := topics.NodeJob(j.node, spec.Job, what+spec.Role)
	if local {
		_ = j.srv.Publish(access.SystemPrincipal("edge/jobs"), topic, raw, false, 1)
	}
	if err := j.bridge.Send(topics.StreamEvents, topic, raw, false); err != nil {
		j.log.Warn("worker report not queued", "worker", spec.ID(), "kind", kind, "error", err)
	}
}
