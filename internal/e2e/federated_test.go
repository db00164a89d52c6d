package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/federated/digits"
	"github.com/sedna-go/sedna/federated"
	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// flFleet is a cloud manager and in-process edge nodes edge-0...
type flFleet struct {
	dir   string
	cloud *cloud.Manager
	edges map[string]*edge.Agent
	nodes []string
	api   *cloud.Client
	ctx   context.Context
	// listen is the cloud's fixed address, when the fleet was started with
	// one; links are the proxies of the proxied nodes.
	listen string
	links  map[string]*netfault.Proxy
}

// restartCloud stops the cloud manager and starts it again on its store
// and address, with a new API client.
func (f *flFleet) restartCloud(t testing.TB) {
	t.Helper()
	f.cloud.Close()
	f.cloud = startCloud(t, filepath.Join(f.dir, "cloud"), f.listen)
	f.api = apiClient(t, f.cloud.BrokerURL())
}

func flNodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("edge-%d", i)
	}
	return out
}

// startFL starts the cloud and the nodes; builtins, when it gives
// something for a node, adds in-process workers there.
func startFL(t testing.TB, nodes []string, builtins func(node string) func(*edge.Agent) map[string]workers.Builtin) *flFleet {
	t.Helper()
	return startFLWith(t, nodes, flOptions{builtins: builtins})
}

// flOptions shape a test fleet.
type flOptions struct {
	// listen fixes the cloud broker's address (a restarted cloud keeps
	// it); default any free port.
	listen string
	// proxied nodes reach the cloud through a fault-injecting proxy
	// (flFleet.links).
	proxied  []string
	builtins func(node string) func(*edge.Agent) map[string]workers.Builtin
}

func startFLWith(t testing.TB, nodes []string, o flOptions) *flFleet {
	t.Helper()
	f := &flFleet{dir: t.TempDir(), edges: map[string]*edge.Agent{}, nodes: nodes, listen: o.listen, links: map[string]*netfault.Proxy{}}
	f.cloud = startCloud(t, filepath.Join(f.dir, "cloud"), o.listen)
	t.Cleanup(func() { f.cloud.Close() })
	for _, n := range nodes {
		var opts edge.Options
		if o.builtins != nil {
			opts.Builtins = o.builtins(n)
		}
		url := f.cloud.BrokerURL()
		if slices.Contains(o.proxied, n) {
			f.links[n] = proxyTo(t, url)
			url = "tcp://" + f.links[n].Addr()
		}
		f.edges[n] = startEdgeWith(t, n, filepath.Join(f.dir, n), url, opts)
	}
	t.Cleanup(func() {
		for _, a := range f.edges {
			a.Close()
		}
	})
	waitJoined(t, f.cloud.BrokerURL(), nodes...)
	f.api = apiClient(t, f.cloud.BrokerURL())
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	f.ctx = ctx
	return f
}

// example writes the example's files for o and applies its YAML.
func (f *flFleet) example(t testing.TB, o digits.Options) digits.Options {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(f.dir, "data")
	}
	if len(o.Nodes) == 0 {
		o.Nodes = f.nodes
	}
	if _, err := digits.Write(o); err != nil {
		t.Fatal(err)
	}
	f.apply(t, o)
	return o
}

// apply applies the example's YAML for o.
func (f *flFleet) apply(t testing.TB, o digits.Options) {
	t.Helper()
	rs, err := api.Parse([]byte(digits.YAML(o)), "federated.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.api.Apply(f.ctx, rs)
	if err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
	for _, r := range rep.Results {
		if r.Action == "rejected" {
			t.Fatalf("apply: %s rejected: %s", r.Key, r.Message)
		}
	}
}

func flJob(name string) topics.JobRef {
	return topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: name}
}

// records collects a job's round records as the cloud publishes them.
type records struct {
	mu  sync.Mutex
	all []federated.Record
}

func (f *flFleet) records(t testing.TB, job string) *records {
	r := &records{}
	id := int(time.Now().UnixNano() & 0x3fffffff)
	if err := f.cloud.Broker().Subscribe(federated.RoundTopic(flJob(job)), id, func(_ string, p []byte, _ bool) {
		env, err := topics.UnmarshalEnvelope(p, topics.Limits{})
		var rec federated.Record
		if err == nil && env.DecodeBody(&rec) == nil {
			r.mu.Lock()
			r.all = append(r.all, rec)
			r.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *records) list() []federated.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]federated.Record(nil), r.all...)
}

// waitPhase watches a job's status until its phase is phase. A watch
// that fails (a subscription the broker did not acknowledge in time, under
// load) is made again, a few times.
func (f *flFleet) waitPhase(t testing.TB, job, phase string, within time.Duration) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, within)
	defer cancel()
	var last api.Status
	var errs []error
	for range 5 {
		wctx, reached := context.WithCancel(ctx)
		// The callback runs on this goroutine, inside Watch.
		err := f.api.Watch(wctx, flJob(job), func(st api.Status) {
			last = st
			if st.Phase == phase {
				reached()
			}
		}, nil)
		reached()
		if last.Phase == phase {
			return last
		}
		if err == nil {
			break // the time is up
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		t.Logf("the watch of %s ended: %v; watching again", job, err)
	}
	st := objects(t, f.api, api.KindFederatedLearningJob)[flJob(job).String()]
	t.Fatalf("%s never reached %s; last watched: phase %s, progress %+v, metrics %v (watch errors: %v); the cloud says: %s",
		job, phase, last.Phase, last.Progress, last.Metrics, errs, st.Status)
	return last
}

// finalModel reads the model the job registered and scores it.
func (f *flFleet) finalModel(t testing.TB, o digits.Options) (uint64, float64) {
	t.Helper()
	v, data, err := f.cloud.Control().LatestModel("default", o.Job+"-model", 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ml.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	_, test, err := digits.Data(o)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ml.Evaluate(m, test.X, test.Y)
	if err != nil {
		t.Fatal(err)
	}
	return v, ev.Accuracy
}

// Must-show 1: Dirichlet alpha 0.5 over 10 nodes on the digits, three
// seeds at once: the final accuracy is within one point of training on
// all the data in one place, on average.
func TestFederatedMatchesCentralized(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	nodes := flNodes(10)
	f := startFL(t, nodes, nil)
	rounds := 60
	seeds := []uint64{1, 2, 3}
	opts := make([]digits.Options, len(seeds))
	recs := make([]*records, len(seeds))
	for i, s := range seeds {
		opts[i] = digits.Options{Job: fmt.Sprintf("digits-seed%d", s), Seed: s, Alpha: 0.5, Rounds: rounds}
		recs[i] = f.records(t, opts[i].Job)
		opts[i] = f.example(t, opts[i])
	}
	var fed, central float64
	for i, o := range opts {
		st := f.waitPhase(t, o.Job, api.ConditionCompleted, 6*time.Minute)
		if st.Progress == nil || st.Progress.Done != rounds || st.Progress.Total != rounds {
			t.Errorf("%s: progress %+v, want %d/%d rounds", o.Job, st.Progress, rounds, rounds)
		}
		if _, ok := st.Metrics["clientSamples"]; ok {
			t.Errorf("%s: each training worker's own number clientSamples is in the job's metrics %v", o.Job, st.Metrics)
		}
		v, acc := f.finalModel(t, o)
		if got := st.Metrics["accuracy"]; fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", acc) {
			t.Errorf("%s: the status says accuracy %.6f, the registered model (version %d) scores %.6f", o.Job, got, v, acc)
		}
		c, err := digits.Centralized(f.ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		list := recs[i].list()
		if len(list) != rounds {
			t.Errorf("%s: %d round records, want %d", o.Job, len(list), rounds)
		}
		for _, r := range list {
			if r.Participants != 10 {
				t.Errorf("%s round %d: %d participants, want all 10 (missing %v)", o.Job, r.Round, r.Participants, r.Missing)
			}
		}
		t.Logf("seed %d: federated %.4f (model version %d), centralized %.4f, difference %+.2f points", o.Seed, acc, v, c, 100*(acc-c))
		fed += acc / float64(len(opts))
		central += c / float64(len(opts))
	}
	t.Logf("mean over %d seeds: federated %.4f, centralized %.4f, difference %+.2f points (goal: within 1)", len(seeds), fed, central, 100*(fed-central))
	if central-fed > 0.01 {
		t.Errorf("federated %.4f is %.2f points under centralized %.4f (goal: within 1)", fed, 100*(central-fed), central)
	}
}

// waitRound waits until the job has published the record of round n.
func (r *records) waitRound(t testing.TB, n int64, within time.Duration) federated.Record {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(within)
	for {
		for _, rec := range r.list() {
			if rec.Round == n {
				return rec
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("round %d never closed; records: %+v", n, r.list())
		}
	}
}

// Must-show 2: two of ten nodes (sedna edge processes) are SIGKILLed
// mid-job; the job goes on at its minimum of eight clients and completes;
// one killed node, restarted, rejoins at the current round.
func TestFederatedSurvivesKilledNodes(t *testing.T) {
	nodes := flNodes(10)
	f := startFL(t, nodes[:8], nil)
	f.nodes = nodes
	procs := map[string]*proc{}
	for _, n := range nodes[8:] {
		procs[n] = startProc(t, edgeArgs(n, filepath.Join(f.dir, n), f.cloud.BrokerURL())...)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
	})
	waitJoined(t, f.cloud.BrokerURL(), nodes[8:]...)
	const rounds = 12
	recs := f.records(t, "digits-kill")
	o := f.example(t, digits.Options{Job: "digits-kill", Rounds: rounds, MinClients: 8, RoundTimeout: "2s"})
	recs.waitRound(t, 3, 2*time.Minute)
	procs["edge-8"].kill()
	procs["edge-9"].kill()
	killedAfter := int64(len(recs.list()))
	t.Logf("edge-8 and edge-9 SIGKILLed after round %d", killedAfter)
	recs.waitRound(t, killedAfter+3, 2*time.Minute)
	procs["edge-8"] = startProc(t, edgeArgs("edge-8", filepath.Join(f.dir, "edge-8"), f.cloud.BrokerURL())...)
	restartedAfter := int64(len(recs.list()))
	t.Logf("edge-8 restarted after round %d", restartedAfter)
	st := f.waitPhase(t, o.Job, api.ConditionCompleted, 3*time.Minute)

	rejoined := int64(0)
	for _, r := range recs.list() {
		t.Logf("round %2d: %d of %d clients, accuracy %.4f, %.2f s, missing %v, late %d", r.Round, r.Participants, r.Clients, r.Accuracy, r.Seconds, r.Missing, r.Late)
		switch {
		case r.Participants < 8:
			t.Errorf("round %d closed with %d clients, under the minimum of 8", r.Round, r.Participants)
		case r.Round > 1 && r.Round <= killedAfter-1 && r.Participants != 10: // round 1 waits for the nodes to read their data
			t.Errorf("round %d, before the kill: %d clients, want 10", r.Round, r.Participants)
		case r.Round > killedAfter+1 && r.Round <= restartedAfter && r.Participants != 8:
			t.Errorf("round %d, with two nodes dead: %d clients, want 8", r.Round, r.Participants)
		}
		if r.Round > restartedAfter && !contains(r.Missing, "train-8") && rejoined == 0 {
			rejoined = r.Round
		}
	}
	if rejoined == 0 {
		t.Fatalf("the restarted edge-8 never took part in a round after %d", restartedAfter)
	}
	for _, r := range recs.list() {
		if r.Round >= rejoined && (contains(r.Missing, "train-8") || !contains(r.Missing, "train-9")) {
			t.Errorf("round %d: missing %v, want only train-9 once edge-8 rejoined (round %d)", r.Round, r.Missing, rejoined)
		}
	}
	t.Logf("edge-8 rejoined at round %d; the job completed: %d/%d rounds, accuracy %.4f", rejoined, st.Progress.Done, st.Progress.Total, st.Metrics["accuracy"])
	if st.Progress == nil || st.Progress.Done != rounds {
		t.Errorf("progress %+v, want %d rounds", st.Progress, rounds)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// poisoner is a training worker whose updates for the jobs named
// "poisoned-..." are sign-flipped and scaled ten times: a malicious or
// broken client, built from the real worker and the documented wire format
// of fl.update (body key "d": the weights as little-endian float32).
func poisoner(a *edge.Agent) map[string]workers.Builtin {
	env := a.Env(federated.Paradigm{})
	env.Node = "edge-9"
	env.Bus = poisoningBus{env.Bus}
	return map[string]workers.Builtin{workers.BuiltinKey(api.KindFederatedLearningJob, "train"): federated.Trainer(env)}
}

// poisoningBus poisons the updates of the jobs named "poisoned-..." it
// sends to the cloud.
type poisoningBus struct{ paradigm.Bus }

func (b poisoningBus) Send(m paradigm.Outbound) error {
	if strings.Contains(m.Topic, "/poisoned-") {
		m.Payload = poison(m.Payload)
	}
	return b.Bus.Send(m)
}

func poison(payload []byte) []byte {
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil || env.Kind != federated.KindUpdate {
		return payload
	}
	var body map[string]any
	if err := msgpack.Unmarshal(env.Body, &body); err != nil {
		return payload
	}
	w, _ := body["d"].([]byte)
	for i := 0; i+4 <= len(w); i += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(w[i:]))
		binary.LittleEndian.PutUint32(w[i:], math.Float32bits(-10*v))
	}
	body["d"] = w
	out, err := topics.NewEnvelope(env.Kind, env.Source, body)
	if err != nil {
		return payload
	}
	raw, err := out.Marshal()
	if err != nil {
		return payload
	}
	return raw
}

// Must-show 3: one client of ten sends poisoned updates. FedAvg collapses;
// Median and TrimmedMean hold. A clean FedAvg run beside them is the
// reference.
func TestFederatedPoisonedClient(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	nodes := flNodes(10)
	f := startFL(t, nodes, func(node string) func(*edge.Agent) map[string]workers.Builtin {
		if node == "edge-9" {
			return poisoner
		}
		return nil
	})
	const rounds = 20
	runs := []struct{ job, aggregator, params string }{
		{"clean-fedavg", "FedAvg", ""},
		{"poisoned-fedavg", "FedAvg", ""},
		{"poisoned-median", "Median", ""},
		{"poisoned-trimmedmean", "TrimmedMean", "trim_ratio=0.1"},
	}
	for _, r := range runs {
		f.example(t, digits.Options{Job: r.job, Rounds: rounds, Aggregator: r.aggregator, AggregatorParams: r.params})
	}
	acc := map[string]float64{}
	for _, r := range runs {
		st := f.waitPhase(t, r.job, api.ConditionCompleted, 4*time.Minute)
		acc[r.job] = st.Metrics["accuracy"]
		t.Logf("%-21s %-11s final accuracy %.4f after %d rounds", r.job, r.aggregator, acc[r.job], rounds)
	}
	clean := acc["clean-fedavg"]
	if clean < 0.9 {
		t.Fatalf("the clean run reached only %.4f", clean)
	}
	if acc["poisoned-fedavg"] > 0.5 {
		t.Errorf("FedAvg with a poisoned client reached %.4f: the poisoning did nothing", acc["poisoned-fedavg"])
	}
	for _, job := range []string{"poisoned-median", "poisoned-trimmedmean"} {
		if acc[job] < clean-0.05 {
			t.Errorf("%s: %.4f, more than 5 points under the clean run's %.4f", job, acc[job], clean)
		}
	}
}

// spy keeps every payload published on the cloud broker.
type spy struct {
	mu       sync.Mutex
	payloads [][]byte
	bytes    int64
}

func spyOn(t testing.TB, m *cloud.Manager) *spy {
	s := &spy{}
	if err := m.Broker().Subscribe("#", 0x2bad, func(_ string, p []byte, _ bool) {
		s.mu.Lock()
		s.payloads = append(s.payloads, append([]byte(nil), p...))
		s.bytes += int64(len(p))
		s.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// encodings are a run of features in each encoding it could travel in.
func encodings(x []float32) map[string][]byte {
	var text []string
	out := map[string][]byte{}
	for _, v := range x {
		text = append(text, strconv.FormatFloat(float64(v), 'g', -1, 32))
		out["float32 LE"] = binary.LittleEndian.AppendUint32(out["float32 LE"], math.Float32bits(v))
		out["float32 BE"] = binary.BigEndian.AppendUint32(out["float32 BE"], math.Float32bits(v))
		out["float64 LE"] = binary.LittleEndian.AppendUint64(out["float64 LE"], math.Float64bits(float64(v)))
		out["float64 BE"] = binary.BigEndian.AppendUint64(out["float64 BE"], math.Float64bits(float64(v)))
		e32, _ := msgpack.Marshal(v)
		e64, _ := msgpack.Marshal(float64(v))
		out["msgpack float32"] = append(out["msgpack float32"], e32...)
		out["msgpack float64"] = append(out["msgpack float64"], e64...)
		out["bytes x255"] = append(out["bytes x255"], byte(math.Round(float64(v)*255)))
		out["bytes x16"] = append(out["bytes x16"], byte(math.Round(float64(v)*16)))
	}
	out["csv text"] = []byte(strings.Join(text, ","))
	return out
}

// canaryPatterns are what windows of 16 features of a canary sample would
// show in each encoding (a window, since a leak need not start at the
// first feature or carry them all).
func canaryPatterns(x []float32) map[string][]byte {
	const window = 16
	out := map[string][]byte{}
	for _, start := range []int{0, 24, 48} {
		for name, p := range encodings(x[start : start+window]) {
			out[fmt.Sprintf("%s [%d:%d]", name, start, start+window)] = p
		}
	}
	return out
}

// find returns the encodings of the canaries found in any payload.
func (s *spy) find(canaries []map[string][]byte) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for i, c := range canaries {
		for name, p := range c {
			for _, pl := range s.payloads {
				if bytes.Contains(pl, p) {
					found = append(found, fmt.Sprintf("canary %d as %s", i, name))
					break
				}
			}
		}
	}
	sort.Strings(found)
	return found
}

// Must-show 4: canary samples planted in every node's Dataset are searched
// for, in every encoding they could take, in every payload that crosses
// the cloud broker during a job: none is found. The positive control: the
// same search finds a canary a node deliberately uploads.
func TestFederatedRawSamplesNeverLeave(t *testing.T) {
	nodes := flNodes(5)
	f := startFL(t, nodes, nil)
	s := spyOn(t, f.cloud)
	o := digits.Options{Job: "digits-canary", Rounds: 5, Dir: filepath.Join(f.dir, "data"), Nodes: nodes}
	parts, err := digits.Write(o)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 7))
	var canaries []map[string][]byte
	var rows [][]float32
	for _, n := range nodes {
		fh, err := os.OpenFile(digits.CSVPath(o, n), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // three canaries per node, among its real samples
			x := make([]float32, 64)
			for j := range x {
				x[j] = rng.Float32()
			}
			label := rng.IntN(10)
			fmt.Fprintln(fh, digits.Line(label, x))
			canaries = append(canaries, canaryPatterns(x))
			rows = append(rows, x)
		}
		fh.Close()
	}
	f.apply(t, o)
	st := f.waitPhase(t, o.Job, api.ConditionCompleted, 2*time.Minute)
	for _, w := range st.Workers {
		if i := slices.Index(nodes, w.Node); i >= 0 && w.Metrics["clientSamples"] != float64(parts[i].Rows+3) {
			t.Fatalf("%s trained on %v samples, want its %d and the 3 canaries", w.Node, w.Metrics["clientSamples"], parts[i].Rows)
		}
	}
	s.mu.Lock()
	seen, total := len(s.payloads), s.bytes
	s.mu.Unlock()
	if total < int64(st.Metrics["bytesUp"]) || seen == 0 {
		t.Fatalf("the spy saw %d payloads, %d bytes: it was not listening", seen, total)
	}
	if found := s.find(canaries); len(found) > 0 {
		t.Fatalf("raw samples left their nodes: %v", found)
	}
	t.Logf("%d canaries × %d encodings searched in %d payloads (%d bytes) through the job: none found", len(canaries), len(canaries[0]), seen, total)

	// Positive control: edge-0 uploads its first canary in every encoding,
	// on a topic its bridge carries up; the search must find each.
	pub := client(t, "tcp://"+f.edges["edge-0"].BrokerAddr(), "leaker", "", true)
	var want []string
	for name, p := range encodings(rows[0]) {
		if tok := pub.Publish("sensors/leak/"+strings.ReplaceAll(name, " ", "-"), 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		want = append(want, name+" [24:40]")
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		found := s.find(canaries[:1])
		missing := 0
		for _, w := range want {
			if !contains(found, "canary 0 as "+w) {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("positive control: the deliberate upload is found in all %d encodings (%d patterns match)", len(want), len(found))
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the deliberate upload was not found (found %v): the search cannot see a leak", found)
		}
	}
}

// A straggler behind a slow link (1.5 s each way, rounds of 1 s): rounds
// close without it at their deadline, and its updates, all for rounds
// already closed, are ignored and counted.
func TestFederatedStragglerIsLateAndCounted(t *testing.T) {
	f := startFLWith(t, flNodes(5), flOptions{proxied: []string{"edge-4"}})
	f.links["edge-4"].SetLatency(1500 * time.Millisecond)
	recs := f.records(t, "digits-straggler")
	o := f.example(t, digits.Options{Job: "digits-straggler", Rounds: 6, MinClients: 4, RoundTimeout: "1s"})
	st := f.waitPhase(t, o.Job, api.ConditionCompleted, 2*time.Minute)
	var late int64
	for _, r := range recs.list() {
		late += r.Late
		t.Logf("round %d: %d of %d clients in %.2f s, missing %v, %d late", r.Round, r.Participants, r.Clients, r.Seconds, r.Missing, r.Late)
		if r.Participants != 4 || !slices.Equal(r.Missing, []string{"train-4"}) {
			t.Errorf("round %d: %d clients, missing %v; want the four on time", r.Round, r.Participants, r.Missing)
		}
	}
	if late < 2 || st.Metrics["lateUpdates"] != float64(late) {
		t.Errorf("%d late updates in the rounds' records, %v in the status: want the straggler's, at least 2", late, st.Metrics["lateUpdates"])
	}
}

// The cloud manager stops mid-job and starts again on its store: the job
// resumes at the round it had stored, completes, and registers its model
// once.
func TestFederatedResumesAfterCloudRestart(t *testing.T) {
	f := startFLWith(t, flNodes(3), flOptions{listen: freeAddr(t)})
	const rounds = 40
	before := f.records(t, "digits-resume")
	o := f.example(t, digits.Options{Job: "digits-resume", Rounds: rounds})
	before.waitRound(t, 5, time.Minute)
	f.cloud.Close()
	stoppedAt := int64(len(before.list()))
	t.Logf("cloud manager stopped after round %d", stoppedAt)
	f.restartCloud(t)
	after := f.records(t, "digits-resume")
	st := f.waitPhase(t, o.Job, api.ConditionCompleted, 2*time.Minute)
	list := after.list()
	if len(list) == 0 || list[0].Round > stoppedAt+1 || list[len(list)-1].Round != rounds {
		t.Fatalf("after the restart, rounds %v; want from at most %d to %d", roundsOf(list), stoppedAt+1, rounds)
	}
	if list[0].Round <= stoppedAt-1 {
		t.Errorf("the job started over at round %d instead of resuming after %d", list[0].Round, stoppedAt)
	}
	v, acc := f.finalModel(t, o)
	if v != 1 || fmt.Sprintf("%.6f", acc) != fmt.Sprintf("%.6f", st.Metrics["accuracy"]) {
		t.Errorf("model version %d scoring %.4f; status accuracy %.4f", v, acc, st.Metrics["accuracy"])
	}
	t.Logf("resumed at round %d, completed %d rounds, accuracy %.4f", list[0].Round, rounds, acc)
}

func roundsOf(list []federated.Record) []int64 {
	out := make([]int64, len(list))
	for i, r := range list {
		out[i] = r.Round
	}
	return out
}

// The cloud manager restarts in the middle of a round, after two of its
// three updates arrived (held in memory only) and while the third node's
// link is down: the restarted aggregation worker asks for the round again,
// the two nodes send their updates again, and the job completes; it would
// otherwise wait for ever at its minimum of three.
func TestFederatedRoundSurvivesCloudRestartMidRound(t *testing.T) {
	f := startFLWith(t, flNodes(3), flOptions{listen: freeAddr(t), proxied: []string{"edge-2"}})
	link, ctx := f.links["edge-2"], f.ctx
	updates := make(chan string, 16)
	filter := topics.Root + "/node/+/job/FederatedLearningJob/default/digits-midround/update"
	if err := f.cloud.Broker().Subscribe(filter, 0x5151, func(topic string, _ []byte, _ bool) {
		if p, err := topics.Parse(topic); err == nil {
			select {
			case updates <- p.Node:
			default: // the test has what it waits for
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	link.SetDown(true)
	o := f.example(t, digits.Options{Job: "digits-midround", Rounds: 3, MinClients: 3, RoundTimeout: "1m"})
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case n := <-updates:
			got[n] = true
		case <-ctx.Done():
			t.Fatalf("updates seen from %v", got)
		}
	}
	t.Logf("updates of %v arrived; the cloud manager stops mid-round", got)
	f.restartCloud(t)
	link.SetDown(false)
	st := f.waitPhase(t, o.Job, api.ConditionCompleted, 40*time.Second)
	if st.Progress == nil || st.Progress.Done != 3 || st.Metrics["participants"] != 3 {
		t.Fatalf("progress %+v, metrics %v", st.Progress, st.Metrics)
	}
}

// The Fashion-MNIST subset (14×14), split non-IID over five nodes: the
// example's other data set trains too. Under -race it runs 5 rounds, not
// 10: with 4 it ended at 0.7485 once, in a clean-clone make test whose
// first round three nodes missed (their samples not in yet).
func TestFederatedFashion(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	nodes := flNodes(5)
	f := startFL(t, nodes, nil)
	rounds := 10
	if raceEnabled {
		rounds = 5
	}
	o := f.example(t, digits.Options{Job: "fashion-fl", Fashion: true, Rounds: rounds})
	st := f.waitPhase(t, o.Job, api.ConditionCompleted, 4*time.Minute)
	c, err := digits.Centralized(f.ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Fashion subset, %d rounds over 5 nodes: federated %.4f, centralized %.4f", rounds, st.Metrics["accuracy"], c)
	if st.Metrics["accuracy"] < 0.75 || c-st.Metrics["accuracy"] > 0.08 || st.Metrics["samples"] != 20000 {
		t.Errorf("accuracy %.4f on %v samples", st.Metrics["accuracy"], st.Metrics["samples"])
	}
}

// A model of 157,510 parameters (630 KB: two pieces each way at the
// default 512 KiB, and more pieces of the global at a smaller chunk size)
// and a target accuracy: the job stops as soon as it reaches it, well
// before its exit_round, and the registered model says so.
func TestFederatedLargeModelStopsAtTarget(t *testing.T) {
	nodes := flNodes(3)
	f := startFL(t, nodes, nil)
	recs := f.records(t, "digits-large")
	o := f.example(t, digits.Options{Job: "digits-large", Rounds: 50, ModelDef: "mlp:2100",
		Extra: map[string]string{"SEDNA_FL_TARGET_ACCURACY": "0.96", "SEDNA_FL_CHUNK_BYTES": "200000"}})
	st := f.waitPhase(t, o.Job, api.ConditionCompleted, 4*time.Minute)
	list := recs.list()
	last := list[len(list)-1]
	if last.Round >= 50 || last.Round < 2 || last.Accuracy < 0.96 || st.Progress.Done != int(last.Round) {
		t.Fatalf("stopped at round %d with accuracy %.4f (progress %+v)", last.Round, last.Accuracy, st.Progress)
	}
	for _, r := range list[:len(list)-1] {
		if r.Accuracy >= 0.96 {
			t.Errorf("round %d reached %.4f and the job went on", r.Round, r.Accuracy)
		}
	}
	const params = 64*2100 + 2100 + 2100*10 + 10
	if up := float64(last.BytesUp) / float64(3*4*params); up < 1 || up > 1.01 {
		t.Errorf("bytes up %d for 3 updates of %d float32: ratio %.4f", last.BytesUp, params, up)
	}
	v, acc := f.finalModel(t, o)
	model := objects(t, f.api, api.KindModel)["Model/default/digits-large-model"]
	var ms api.Status
	if err := json.Unmarshal(model.Status, &ms); err != nil || ms.Model == nil || ms.Model.Metrics["accuracy"] != fmt.Sprintf("%.4f", acc) {
		t.Fatalf("model version %d status %+v (%v), scoring %.4f", v, ms.Model, err, acc)
	}
	t.Logf("stopped at round %d of 50 with %.4f; model version %d, metrics %v; %d B up in the last round", last.Round, last.Accuracy, v, ms.Model.Metrics, last.BytesUp)
}
