package edge

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/internal/serial"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// jobs runs the node's share of the jobs whose specs reach it: it keeps each
// spec in the store (the broker's retained copy does not survive a
// restart), starts the workers placed on this node, stops those of deleted
// jobs, and reports worker states to the cloud.
type jobs struct {
	node    string
	st      store.Store
	srv     *broker.Server
	bridge  *broker.Bridge
	sup     *workers.Supervisor
	log     *slog.Logger
	owner   *serial.Loop
	specs   map[string]storedSpec
	onModel func(key string, data []byte, deleted bool)
	onSpec  []func(key string, r *api.Resource, deleted bool)
}

type storedSpec struct {
	Gen     uint64 `msgpack:"gen"`
	Deleted bool   `msgpack:"del"`
	Data    []byte `msgpack:"data"`
	Created int64  `msgpack:"created,omitempty"`
}

func (s storedSpec) revision() topics.Revision {
	return topics.Revision{Created: s.Created, Generation: s.Gen}
}

func newJobs(node string, st store.Store, srv *broker.Server, bridge *broker.Bridge, sup *workers.Supervisor, log *slog.Logger) *jobs {
	return &jobs{node: node, st: st, srv: srv, bridge: bridge, sup: sup, log: log.With("component", "jobs"),
		owner: serial.New(256), specs: map[string]storedSpec{}}
}

// subscribe loads the kept specs and listens for new ones. It runs before
// the broker serves (an inline subscription racing a retained publish is a
// data race in mochi's topic index).
func (j *jobs) subscribe() error {
	if err := j.st.Scan(nil, nil, func(k, v []byte) error {
		var s storedSpec
		if err := msgpack.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("jobs: spec %s: %w", k, err)
		}
		j.specs[string(k)] = s
		return nil
	}); err != nil {
		return err
	}
	return j.srv.Subscribe(topics.JobFilter(), 1<<20, func(topic string, payload []byte, _ bool) {
		p, err := topics.Parse(topic)
		if err != nil || p.Rest != "spec" || len(payload) == 0 {
			return
		}
		env, err := topics.UnmarshalEnvelope(payload, topics.Limits{MaxBody: 16 << 20})
		if err != nil || env.Kind != topics.KindSpec {
			return
		}
		var sp topics.Spec
		if env.DecodeBody(&sp) != nil || sp.Key != p.Job.String() {
			return
		}
		j.do(func() { j.receive(sp) })
	})
}

// run starts the owner goroutine: the kept specs go back on the broker and
// their workers start, then new specs are taken as they come.
func (j *jobs) run() {
	j.owner.Start()
	j.do(func() {
		for key, s := range j.specs {
			if !s.Deleted && !strings.HasPrefix(key, api.KindModel+"/") {
				j.republish(key, s)
			}
			j.apply(key, s)
		}
	})
}

func (j *jobs) do(f func()) { j.owner.Do(f) }

func (j *jobs) close() { j.owner.Close() }

func (j *jobs) receive(sp topics.Spec) {
	old, ok := j.specs[sp.Key]
	if ok && !sp.Revision().After(old.revision()) {
		return
	}
	s := storedSpec{Gen: sp.Generation, Deleted: sp.Deleted, Data: sp.Data, Created: sp.Created}
	v, _ := msgpack.Marshal(&s)
	var b store.Batch
	b.Put([]byte(sp.Key), v)
	if err := j.st.Write(&b); err != nil {
		j.log.Error("spec not kept", "key", sp.Key, "error", err)
	}
	j.specs[sp.Key] = s
	j.apply(sp.Key, s)
}

func parseKey(key string) (topics.JobRef, error) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return topics.JobRef{}, fmt.Errorf("jobs: bad key %q", key)
	}
	r := topics.JobRef{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
	return r, r.Validate()
}

// apply makes the node's workers match the spec.
func (j *jobs) apply(key string, s storedSpec) {
	ref, err := parseKey(key)
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
		spec := workers.Spec{Job: ref, Generation: s.Gen, Created: s.Created, Worker: w, BrokerURL: j.srv.URL(), Document: s.Data}
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

// republish puts a kept spec back on the node's broker, retained, for the
// workers that read it there.
func (j *jobs) republish(key string, s storedSpec) {
	ref, err := parseKey(key)
	if err != nil {
		return
	}
	env, err := topics.NewEnvelope(topics.KindSpec, "edge/jobs", topics.Spec{Key: key, Generation: s.Gen, Data: s.Data, Created: s.Created})
	if err != nil {
		return
	}
	if raw, err := env.Marshal(); err == nil {
		_ = j.srv.Publish(broker.SystemPrincipal("edge/jobs"), topics.JobSpec(ref), raw, true, 1)
	}
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
		_ = j.srv.Publish(broker.SystemPrincipal("edge/jobs"), topic, raw, false, 1)
	}
	if err := j.bridge.Send(topics.StreamEvents, topic, raw, false); err != nil {
		j.log.Warn("worker report not queued", "worker", spec.ID(), "kind", kind, "error", err)
	}
}
