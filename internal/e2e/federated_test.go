package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/federated/digits"
	"github.com/sedna-go/sedna/federated"
	"github.com/sedna-go/sedna/ml"
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
	f := &flFleet{dir: t.TempDir(), edges: map[string]*edge.Agent{}, nodes: nodes}
	f.cloud = startCloud(t, filepath.Join(f.dir, "cloud"), "")
	t.Cleanup(f.cloud.Close)
	for _, n := range nodes {
		var opts edge.Options
		if builtins != nil {
			opts.Builtins = builtins(n)
		}
		f.edges[n] = startEdgeWith(t, n, filepath.Join(f.dir, n), f.cloud.BrokerURL(), opts)
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
	rs, err := api.Parse([]byte(digits.YAML(o)), "federated.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := f.api.Apply(f.ctx, rs); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
	return o
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

// waitPhase watches a job's status until its phase is phase.
func (f *flFleet) waitPhase(t testing.TB, job, phase string, within time.Duration) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, within)
	defer cancel()
	found := make(chan api.Status, 1)
	var mu sync.Mutex
	var last api.Status
	go func() {
		_ = f.api.Watch(ctx, flJob(job), func(st api.Status) {
			mu.Lock()
			last = st
			mu.Unlock()
			if st.Phase == phase {
				select {
				case found <- st:
				default:
				}
			}
		}, nil)
	}()
	select {
	case st := <-found:
		return st
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s never reached %s; last: phase %s, progress %+v, metrics %v", job, phase, last.Phase, last.Progress, last.Metrics)
		return last
	}
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
