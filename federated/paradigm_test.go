package federated

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

const twoNodesYAML = `apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: fl2, namespace: default}
spec:
  aggregationWorker:
    model: {name: out}
    template: {spec: {nodeName: cloud, containers: [{name: agg, image: x}]}}
  trainingWorkers:
    - dataset: {name: da}
      template: {spec: {nodeName: a, containers: [{name: t, image: x}]}}
    - dataset: {name: db}
      template: {spec: {nodeName: b, containers: [{name: t, image: x}]}}
`

// separable makes n lines "label,x1,x2" of two classes apart.
func separable(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]string, n)
	for i := range out {
		c := i % 2
		out[i] = fmt.Sprintf("%d,%.3f,%.3f", c, float64(2*c-1)+r.NormFloat64()*0.3, r.NormFloat64())
	}
	return out
}

// registered records the models the aggregation registers.
type registered struct {
	mu   sync.Mutex
	name []string
}

func (r *registered) Latest(ns, name string, _ uint64) (uint64, []byte, error) {
	return 0, nil, fmt.Errorf("model %s/%s has no version", ns, name)
}

func (r *registered) Register(_ context.Context, ns, name, _, _ string, _ map[string]string, data []byte) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.name = append(r.name, fmt.Sprintf("%s/%s (%d bytes)", ns, name, len(data)))
	return uint64(len(r.name)), nil
}

// A federated job runs its rounds over the link with no broker: the
// cloud half's aggregation worker and two nodes' training workers, each
// with its own paradigm.Env on paradigmtest's Net. Node b's link is down
// when the job starts: its join waits in its durable queue, the round
// goes on without it past its deadline, and b takes part once its link is
// back. The job ends with its output model registered and a record of
// every round on the cloud's bus.
func TestRoundsOverTheLink(t *testing.T) {
	rs, err := api.Parse([]byte(twoNodesYAML), "fl2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl2"}
	params := map[string]string{ParamExitRound: "4", ParamInputs: "2", ParamClasses: "2", ParamMinClients: "1",
		ParamRoundTimeout: "1s", ParamModel: "softmax"}
	spec := func(role string) workers.Spec {
		for _, w := range rs[0].Workers() {
			if w.Role == role {
				w.Params = params
				return workers.Spec{Job: job, Generation: 1, Created: 1, Worker: w, Document: rs[0].Source}
			}
		}
		t.Fatalf("no role %s", role)
		return workers.Spec{}
	}
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	host, err := plugins.New(context.Background(), plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	log := slog.New(slog.DiscardHandler)
	net := paradigmtest.NewNet()
	reg := &registered{}
	cloudHalf, err := Paradigm{}.Cloud(paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Models: reg, Store: st,
		Plugins: func() (*plugins.Host, error) { return host, nil }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cloudHalf.Close()
	var rounds []Record
	var mu sync.Mutex
	stop, _ := net.Cloud.Subscribe(RoundTopic(job), func(m paradigm.Message) error {
		env, err := topics.UnmarshalEnvelope(m.Payload, topics.DefaultLimits)
		var r Record
		if err == nil && env.DecodeBody(&r) == nil {
			mu.Lock()
			rounds = append(rounds, r)
			mu.Unlock()
		}
		return nil
	})
	defer stop()

	data := map[string][]string{"da": separable(200, 1), "db": separable(200, 2)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	trainers, tcancel := context.WithCancel(ctx)
	defer tcancel()
	net.SetLink("b", false)
	for role, node := range map[string]string{"train-0": "a", "train-1": "b"} {
		half, err := Paradigm{}.Edge(paradigm.Env{Side: paradigm.Edge, Node: node, Bus: net.Node(node), Log: log,
			Data: paradigm.SamplesFunc(func(ns, name string, after uint64, fn func(uint64, []byte) error) error {
				for i := after; i < uint64(len(data[name])); i++ {
					if err := fn(i+1, []byte(data[name][i])); err != nil {
						return err
					}
				}
				return nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = half.Workers["train"](trainers, spec(role), log)
		}()
	}
	done := make(chan error, 1)
	go func() { done <- cloudHalf.Workers["aggregation"](ctx, spec("aggregation"), log) }()
	// b comes back once a round has closed without it.
	var err2 error
	for {
		mu.Lock()
		n := len(rounds)
		mu.Unlock()
		if n > 0 {
			net.SetLink("b", true)
			break
		}
		select {
		case err2 = <-done:
			t.Fatalf("the aggregation ended before a round closed: %v", err2)
		case <-time.After(10 * time.Millisecond): // polling the rounds the bus has seen
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("aggregation: %v", err)
	}
	tcancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(rounds) != 4 {
		t.Fatalf("%d round records, want 4", len(rounds))
	}
	if r := rounds[0]; r.Participants != 1 {
		t.Fatalf("round 1: %+v, want train-0 alone (b's link was down)", r)
	}
	if r := rounds[len(rounds)-1]; r.Participants != 2 {
		t.Fatalf("the last round: %+v, want both clients", r)
	}
	if len(reg.name) != 1 || !strings.HasPrefix(reg.name[0], "default/out ") {
		t.Fatalf("registered %v", reg.name)
	}
}
