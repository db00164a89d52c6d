package simulator

import (
	"bytes"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/federated"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Jobs in deterministic mode. The cloud's job control is the control
// plane's machine itself (cloud.Machine) and a federated job's rounds are
// decided by the federated package's coordinator itself (Coordinator.Next,
// the policy the aggregation worker follows), both on the fake clock.
// What travels between them and the nodes goes over each node's simulated
// link: specs and federated globals in the cloud's outbox for the node,
// worker reports and federated updates in the node's durable uplink, so
// the timeline's link faults, kills and restarts act on them. The nodes'
// side is a model of the edge's promises: a node keeps the newest spec of
// each resource (on disk: a kill keeps it), reports its workers running
// (again after a restart) and its Datasets' sample counts (their shares of
// the scenario's data); a training worker trains on a global for a time
// drawn from the run's random source and sends its update, sends it again
// when asked for a round it trained already, and joins again after a
// restart; it succeeds when the job is announced over. No model is
// trained: a round's accuracy is not measured here (real mode does).

// desApplyAt is when the scenario's jobs are applied, once the nodes had
// time to connect.
const desApplyAt = 20 * time.Millisecond

// desTrainTime bounds a training worker's time on one round: from the
// first to the sum of both.
const desTrainMin, desTrainSpread = 100 * time.Millisecond, 200 * time.Millisecond

type desJobs struct {
	r       *desRun
	m       *cloud.Machine
	st      store.Store
	docs    []*api.Resource
	applied []JobReport
	aggs    map[string]*desAgg // by job key
	byName  map[string]*desNode
	samples map[string]int64 // a node's share of the data
	runs    uint64
}

// heldSpec is a spec a node keeps, with its resource read once (nil for
// a tombstone, or a document the node cannot read).
type heldSpec struct {
	topics.Spec
	res *api.Resource
	ref topics.JobRef
}

// desRound is a federated job's round in a run.
type desRound struct {
	run   uint64
	round int64
}

// desNodeJobs is a node's side: the specs it holds, what its training
// workers did.
type desNodeJobs struct {
	specs    map[string]heldSpec // by key, the newest revision
	trained  map[string]desRound // job/role: the last round it sent an update for
	training map[string]desRound // job/role: the round it trains on (this life)
}

func newDesJobs(r *desRun) (*desJobs, error) {
	j := &desJobs{r: r, aggs: map[string]*desAgg{}, samples: map[string]int64{}, byName: map[string]*desNode{}}
	for _, n := range r.nodes {
		j.byName[n.name] = n
	}
	var err error
	if j.docs, err = r.s.jobResources("/sim-data", nil); err != nil {
		return nil, err
	}
	// The machine's model registry is a real store.
	if j.st, err = store.OpenTemp(store.Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return nil, err
	}
	if _, _, share, err := shares(r.s); err == nil {
		for i, rows := range share {
			j.samples[r.s.NodeName(i)] = int64(len(rows))
		}
	}
	j.m = cloud.NewMachine(cloud.MachineConfig{Name: "cloud", Store: j.st, Now: j.now, View: paradigm.Set(all.All()).View,
		Logger: slog.New(slog.DiscardHandler)}, j)
	return j, nil
}

func (j *desJobs) close() { _ = j.st.Close() }

func (j *desJobs) now() time.Time { return desEpoch.Add(j.r.now) }

// apply applies the scenario's resources as `sedna apply` does.
func (j *desJobs) apply() {
	docs := make([][]byte, len(j.docs))
	for i, d := range j.docs {
		docs[i] = d.Source
	}
	for _, res := range j.m.Apply(docs...).Results {
		applied := res.Action
		if res.Action == "rejected" {
			applied += ": " + res.Message
		}
		j.applied = append(j.applied, JobReport{Key: res.Key, Applied: applied})
	}
}

// ended reports whether every job the scenario expects to end has.
func (j *desJobs) ended() bool {
	for _, je := range j.r.s.Expect.Jobs {
		if je.Phase != api.ConditionCompleted && je.Phase != api.ConditionFailed {
			continue
		}
		ref, err := topics.ParseJobRef(je.Key)
		if err != nil {
			continue
		}
		st, ok := j.m.Status(ref)
		if !ok || (st.Phase != api.ConditionCompleted && st.Phase != api.ConditionFailed) {
			return false
		}
	}
	return true
}

// report is each applied resource as the machine sees it at the end.
func (j *desJobs) report() []JobReport {
	out := slices.Clone(j.applied)
	for i := range out {
		if ref, err := topics.ParseJobRef(out[i].Key); err == nil {
			if st, ok := j.m.Status(ref); ok {
				out[i].fill(st)
			}
		}
	}
	return out
}

func (j *desJobs) node(name string) *desNode { return j.byName[name] }

// online tells the machine of a node's connection, or of its will, after
// the link's latency.
func (j *desJobs) online(n *desNode, up bool) {
	ns := topics.NodeStatus{State: topics.NodeOffline, Session: n.session}
	if up {
		ns.State = topics.NodeOnline
	}
	j.r.at(j.r.now+n.latency, func() { j.m.NodeStatus(n.name, ns) })
}

// ---- the cloud's side: cloud.World ----

// SendSpec queues a spec in the cloud's outbox for the node.
func (j *desJobs) SendSpec(node string, ref topics.JobRef, sp topics.Spec) {
	n := j.node(node)
	if n == nil {
		return // a node not in the fleet never joins
	}
	j.r.send(n, &n.outbox, &desParcel{deliver: func() { j.takeSpec(n, sp) }})
}

// Run runs a worker placed on the cloud: a federated job's aggregation is
// the coordinator; any other runs and reports so.
func (j *desJobs) Run(spec workers.Spec) {
	key := spec.Job.String()
	if a := j.aggs[key]; a != nil && a.spec.Generation == spec.Generation && a.spec.Created == spec.Created {
		return
	}
	j.Stop(spec.Job) // an older revision's, replaced
	ws := api.WorkerStatus{Role: spec.Role, Node: "cloud", Phase: api.WorkerRunning, Generation: spec.Generation, Created: spec.Created}
	if spec.Job.Kind == api.KindFederatedLearningJob && spec.Role == "aggregation" {
		plan, err := federated.PlanOf(spec)
		var coord *federated.Coordinator
		if err == nil {
			j.runs++
			coord, err = federated.NewCoordinator(plan.Rules, federated.State{Run: j.runs, Gen: spec.Generation})
		}
		if err != nil {
			ws.Phase, ws.LastError, ws.Message = api.WorkerFailed, err.Error(), err.Error()
			j.m.WorkerStatus(spec.Job, ws)
			return
		}
		a := &desAgg{j: j, spec: spec, plan: plan, coord: coord}
		j.aggs[key] = a
		j.m.WorkerStatus(spec.Job, ws)
		a.step()
		return
	}
	j.m.WorkerStatus(spec.Job, ws)
}

// Stop stops the cloud's workers of ref.
func (j *desJobs) Stop(ref topics.JobRef) {
	if a := j.aggs[ref.String()]; a != nil {
		a.stopped = true
		delete(j.aggs, ref.String())
	}
}

// ---- the nodes' side ----

// takeSpec is a spec arriving at a node: it keeps the newest revision of
// each resource and starts what the spec places on it.
func (j *desJobs) takeSpec(n *desNode, sp topics.Spec) {
	if old, ok := n.jobs.specs[sp.Key]; ok && !sp.Revision().After(old.Revision()) {
		return
	}
	h := heldSpec{Spec: sp}
	if !sp.Deleted {
		if res, err := api.ParseDocument(sp.Data); err == nil && res != nil {
			h.res, h.ref = res, topics.JobRef{Kind: res.Kind, Namespace: res.Metadata.Namespace, Name: res.Metadata.Name}
		}
	}
	n.jobs.specs[sp.Key] = h
	j.start(n, h)
}

// restarted starts again, after a restart, what the node's specs place on
// it.
func (j *desJobs) restarted(n *desNode) {
	clear(n.jobs.training)
	keys := make([]string, 0, len(n.jobs.specs))
	for k := range n.jobs.specs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		j.start(n, n.jobs.specs[k])
	}
}

// start reports a resource's workers on the node running (a Dataset: its
// sample count); a federated training worker joins its job.
func (j *desJobs) start(n *desNode, sp heldSpec) {
	res, ref := sp.res, sp.ref
	if res == nil {
		return
	}
	if ds, ok := res.Spec.(*api.DatasetSpec); ok && ds.NodeName == n.name {
		st := topics.DatasetStatus{Key: sp.Key, NumberOfSamples: j.samples[n.name], Updated: j.now().UnixNano()}
		j.up(n, func() { j.m.DatasetStatus(ref, n.name, st) })
		return
	}
	for _, w := range res.Workers() {
		if w.Node != n.name {
			continue
		}
		j.reportWorker(n, ref, sp.Spec, w.Role, api.WorkerRunning)
		if res.Kind == api.KindFederatedLearningJob && w.Role != "aggregation" {
			role := w.Role
			j.up(n, func() {
				if a := j.aggs[sp.Key]; a != nil {
					a.join(role, n.name)
				}
			})
		}
	}
}

// reportWorker sends a worker's report up the node's link.
func (j *desJobs) reportWorker(n *desNode, ref topics.JobRef, sp topics.Spec, role, phase string) {
	ws := api.WorkerStatus{Role: role, Node: n.name, Phase: phase, Updated: j.now(), Generation: sp.Generation, Created: sp.Created}
	j.up(n, func() { j.m.WorkerStatus(ref, ws) })
}

// up queues a message in the node's durable uplink.
func (j *desJobs) up(n *desNode, deliver func()) {
	j.r.send(n, &n.uplink, &desParcel{deliver: deliver})
}

// global is a federated global arriving at a node: each of the job's
// training workers there trains on it, or sends again the update it made
// for it; the job's end makes them succeed.
func (j *desJobs) global(n *desNode, key string, g desRound, done bool) {
	sp, ok := n.jobs.specs[key]
	if !ok || sp.res == nil || !n.up {
		return
	}
	res, ref := sp.res, sp.ref
	for _, w := range res.Workers() {
		if w.Node != n.name || w.Role == "aggregation" {
			continue
		}
		id := key + "/" + w.Role
		if done {
			j.reportWorker(n, ref, sp.Spec, w.Role, api.WorkerSucceeded)
			continue
		}
		if n.jobs.trained[id] == g {
			j.update(n, key, w.Role, g, 0) // asked again: sent again
			continue
		}
		if n.jobs.training[id] == g {
			continue
		}
		n.jobs.training[id] = g
		life, role := n.life, w.Role
		took := desTrainMin + time.Duration(j.r.rng.Int64N(int64(desTrainSpread)))
		j.r.at(j.r.now+took, func() {
			if n.life != life || !n.up {
				return // the agent died: its training with it
			}
			delete(n.jobs.training, id)
			n.jobs.trained[id] = g
			j.update(n, key, role, g, took)
		})
	}
}

// update sends a training worker's update up the node's link (expiring
// as the worker's do).
func (j *desJobs) update(n *desNode, key, role string, g desRound, took time.Duration) {
	u := federated.Contribution{Role: role, Samples: j.samples[n.name], Train: took.Seconds()}
	j.r.send(n, &n.uplink, &desParcel{expires: j.r.now + 10*time.Minute, deliver: func() {
		if a := j.aggs[key]; a != nil {
			a.offer(n.name, g, u)
		}
	}})
}

// ---- a federated job's aggregation ----

// desAgg is a federated job's aggregation worker: the coordinator, driven
// as the worker drives it (federated.Coordinator.Next).
type desAgg struct {
	j       *desJobs
	spec    workers.Spec
	plan    federated.Plan
	coord   *federated.Coordinator
	wake    int // the pending wake-up's number: older ones are stale
	stopped bool
}

// step does what the coordinator says until it says to wait.
func (a *desAgg) step() {
	j := a.j
	for !a.stopped {
		s := a.coord.Next(j.now())
		switch {
		case s.Done:
			a.finish()
			return
		case s.Close:
			rec := federated.Record{Accuracy: -1}
			for _, c := range a.coord.Contributions() {
				rec.Samples += c.Samples
				rec.TrainSeconds = max(rec.TrainSeconds, c.Train)
			}
			rec = a.coord.Close(j.now(), nil, nil, rec)
			j.m.WorkerMetrics(a.spec.Job, "cloud", topics.WorkerMetrics{Role: a.spec.Role,
				Metrics: federated.RoundMetrics(rec, a.coord.State(), a.plan.Rules.Rounds), Updated: j.now().UnixNano()})
			continue
		case s.Begin:
			a.broadcast(a.plan.Rules.Clients, s)
		}
		if len(s.Ask) > 0 {
			a.broadcast(s.Ask, s)
		}
		a.wake++
		wake := a.wake
		j.r.at(s.Wait.Sub(desEpoch), func() {
			if a.wake == wake {
				a.step()
			}
		})
		return
	}
}

// broadcast sends the round's global to the nodes of roles: at once to a
// connected node, through its outbox until the round's deadline (at least
// a second) otherwise.
func (a *desAgg) broadcast(roles []string, s federated.Step) {
	j := a.j
	g := desRound{run: a.coord.State().Run, round: s.Round}
	ttl := max(a.coord.Deadline().Sub(j.now()), time.Second)
	seen := map[string]bool{}
	for _, role := range roles {
		name := a.plan.Nodes[role]
		n := j.node(name)
		if n == nil || seen[name] {
			continue
		}
		seen[name] = true
		key := a.spec.Job.String()
		deliver := func() { j.global(n, key, g, false) }
		if n.connected && !n.stalled {
			epoch := n.epoch
			j.r.at(j.r.now+n.latency+100*time.Microsecond, func() {
				if n.epoch == epoch && n.up {
					deliver()
				}
			})
			continue
		}
		j.r.send(n, &n.outbox, &desParcel{deliver: deliver, expires: j.r.now + ttl})
	}
}

// join is a training worker joining: it gets the round's global unless
// the round has its update.
func (a *desAgg) join(role, node string) {
	if a.stopped || a.plan.Nodes[role] != node || a.coord.State().Done || a.coord.Has(role) {
		return
	}
	a.broadcast([]string{role}, federated.Step{Round: a.coord.State().Round})
}

// offer is an update arriving from node.
func (a *desAgg) offer(node string, g desRound, u federated.Contribution) {
	if a.stopped || a.plan.Nodes[u.Role] != node {
		return
	}
	a.coord.Offer(g.run, g.round, u)
	a.step()
}

// finish tells the training workers the job is over and succeeds.
func (a *desAgg) finish() {
	j := a.j
	st := a.coord.State()
	key := a.spec.Job.String()
	for _, name := range a.nodes() {
		n := j.node(name)
		if n == nil {
			continue
		}
		j.r.send(n, &n.outbox, &desParcel{expires: j.r.now + time.Hour, deliver: func() { j.global(n, key, desRound{run: st.Run, round: st.Round}, true) }})
	}
	j.m.WorkerStatus(a.spec.Job, api.WorkerStatus{Role: a.spec.Role, Node: "cloud", Phase: api.WorkerSucceeded,
		Generation: a.spec.Generation, Created: a.spec.Created, Updated: j.now(), Message: st.Reason})
	a.stopped = true
}

// nodes are the training workers' nodes, in the clients' order, once.
func (a *desAgg) nodes() []string {
	var out []string
	for _, role := range a.plan.Rules.Clients {
		if n := a.plan.Nodes[role]; !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// jobResources reads the scenario's job files, dataDir standing for
// DataPlaceholder; data, if set, is called once before the first file
// that names it is read as resources.
func (s *Scenario) jobResources(dataDir string, data func() error) ([]*api.Resource, error) {
	var out []*api.Resource
	for _, f := range s.JobFiles() {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte(DataPlaceholder)) {
			if data != nil {
				if err := data(); err != nil {
					return nil, err
				}
				data = nil
			}
			b = bytes.ReplaceAll(b, []byte(DataPlaceholder), []byte(dataDir))
		}
		rs, err := api.Parse(b, f) // its errors name the file and document
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}
