package cloud

import (
	"log/slog"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Machine is job control with no broker, no outbox and no goroutine of its
// own: the ControlPlane's machine itself, driven one call at a time by its
// caller on the caller's clock. What it decides for the world (a spec for
// a node, a cloud worker to run or stop) goes to a World; records and
// statuses stay in its memory; events are kept for Events. The
// deterministic simulator runs job control this way on its fake clock.
// A Machine is not safe for concurrent use.
type Machine struct {
	c     *ControlPlane
	world *worldEffects
}

// World carries out what a Machine decides outside its own state.
type World interface {
	// SendSpec delivers the desired state of ref to node, as the node's
	// durable outbox does (kept until it arrives).
	SendSpec(node string, ref topics.JobRef, sp topics.Spec)
	// Run runs a worker placed on the cloud, or restarts it for a new
	// generation; a worker that runs already at spec's generation is left
	// alone.
	Run(spec workers.Spec)
	// Stop stops the cloud's workers of ref.
	Stop(ref topics.JobRef)
}

// MachineConfig wires a Machine.
type MachineConfig struct {
	// Name is the cloud's node name: workers placed on it go to World.Run.
	Name string
	// Store keeps the model registry (Model versions).
	Store store.Store
	// Now is the machine's clock.
	Now func() time.Time
	// View gives how the jobs of a kind read in their status (their
	// paradigm's); nil: every worker decides.
	View   func(kind string) paradigm.View
	Logger *slog.Logger
}

// NewMachine makes job control with no resource yet.
func NewMachine(cfg MachineConfig, w World) *Machine {
	fx := &worldEffects{w: w}
	c := newControl(ControlConfig{Name: cfg.Name, Store: cfg.Store, Now: cfg.Now, View: cfg.View, Logger: cfg.Logger}, fx)
	return &Machine{c: c, world: fx}
}

// Apply admits documents as `sedna apply` does for an admin.
func (m *Machine) Apply(docs ...[]byte) topics.APIReply {
	return m.c.apply(caller{user: "machine", role: access.UserAdmin}, topics.APIRequest{Op: "apply", Documents: docs})
}

// Delete deletes a resource as `sedna delete` does.
func (m *Machine) Delete(ref topics.JobRef) topics.APIReply {
	return m.c.delete(topics.APIRequest{Op: "delete", Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name})
}

// NodeStatus takes a node's status (online, or its will).
func (m *Machine) NodeStatus(node string, ns topics.NodeStatus) { m.c.nodeStatus(node, ns) }

// WorkerStatus takes a worker's report; ws.Node says where it runs.
func (m *Machine) WorkerStatus(ref topics.JobRef, ws api.WorkerStatus) {
	m.c.seen[ws.Node] = m.c.cfg.Now()
	m.c.workerStatus(ref, ws)
}

// WorkerMetrics takes a worker's numbers.
func (m *Machine) WorkerMetrics(ref topics.JobRef, node string, wm topics.WorkerMetrics) {
	m.c.workerMetrics(ref, node, wm)
}

// DatasetStatus takes a node's report of a Dataset.
func (m *Machine) DatasetStatus(ref topics.JobRef, node string, ds topics.DatasetStatus) {
	m.c.datasetStatus(ref, node, ds)
}

// Status returns a resource's status, and whether it exists.
func (m *Machine) Status(ref topics.JobRef) (api.Status, bool) {
	e, ok := m.c.res[ref.String()]
	if !ok {
		return api.Status{}, false
	}
	return e.status, true
}

// Events returns the events the machine recorded since the last call.
func (m *Machine) Events() []topics.JobEvent {
	out := m.world.events
	m.world.events = nil
	return out
}

// worldEffects are a Machine's effects: a World's, and memory.
type worldEffects struct {
	w      World
	events []topics.JobEvent
}

func (fx *worldEffects) save(string, record, api.Status) error { return nil }
func (fx *worldEffects) forget(string, int64) error            { return nil }
func (fx *worldEffects) joined(string, string) error           { return nil }
func (fx *worldEffects) clear(string) error                    { return nil }
func (fx *worldEffects) ensure(spec workers.Spec)              { fx.w.Run(spec) }
func (fx *worldEffects) stop(ref topics.JobRef)                { fx.w.Stop(ref) }

func (fx *worldEffects) publish(_, _ string, body any, _ bool) error {
	if ev, ok := body.(topics.JobEvent); ok {
		fx.events = append(fx.events, ev)
	}
	return nil
}

func (fx *worldEffects) sendSpec(node string, ref topics.JobRef, sp topics.Spec) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	sp.Key = ref.String()
	fx.w.SendSpec(node, ref, sp)
	return nil
}
