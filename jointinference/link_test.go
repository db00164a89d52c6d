package jointinference

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

const linkYAML = `apiVersion: sedna.io/v1alpha1
kind: JointInferenceService
metadata: {name: svc, namespace: default}
spec:
  edgeWorker:
    model: {name: little}
    hardExampleMining:
      name: CrossEntropy
      parameters: [{key: threshold_cross_entropy, value: "0.5"}]
    template:
      spec:
        nodeName: edge1
        containers: [{name: e, image: x, env: [{name: SEDNA_JI_TIMEOUT, value: 5s}]}]
  cloudWorker:
    model: {name: big}
    template: {spec: {nodeName: cloud, containers: [{name: c, image: x}]}}
`

// The two halves of a service over paradigmtest's link, no broker: a
// device's sample that the edge model is unsure of (two classes, an
// untrained model: every sample is hard) goes to the cloud and comes back
// answered by the cloud's model; with the node's link down it is answered
// at once by the edge's model, saying why.
func TestHardSamplesGoToTheCloudWhileTheLinkIsUp(t *testing.T) {
	rs, err := api.Parse([]byte(linkYAML), "svc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var svc *api.Resource
	for _, r := range rs {
		if r.Kind == api.KindJointInferenceService {
			svc = r
		}
	}
	ref := topics.JobRef{Kind: api.KindJointInferenceService, Namespace: "default", Name: "svc"}
	spec := func(role string) workers.Spec {
		for _, w := range svc.Workers() {
			if w.Role == role {
				return workers.Spec{Job: ref, Generation: 1, Created: 1, Worker: w, Document: svc.Source}
			}
		}
		t.Fatalf("no role %s", role)
		return workers.Spec{}
	}
	model := func() []byte {
		n, err := ml.NewSoftmax(4, 2)
		if err != nil {
			t.Fatal(err)
		}
		b, err := n.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	models := paradigm.LatestFunc(func(_, _ string, have uint64) (uint64, []byte, error) {
		if have == 1 {
			return 1, nil, nil
		}
		return 1, model, nil
	})
	host, err := plugins.New(context.Background(), plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	hostOf := func() (*plugins.Host, error) { return host, nil }
	log := slog.New(slog.DiscardHandler)
	net := paradigmtest.NewNet()
	cloudHalf, err := Paradigm{}.Cloud(paradigm.Env{Side: paradigm.Cloud, Node: "cloud", Bus: net.Cloud, Models: models, Plugins: hostOf, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cloudHalf.Close()
	edgeBus := net.Node("edge1")
	edgeHalf, err := Paradigm{}.Edge(paradigm.Env{Side: paradigm.Edge, Node: "edge1", Bus: edgeBus, Models: models, Plugins: hostOf, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer edgeHalf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, w := range []struct {
		run  workers.Builtin
		role string
	}{{cloudHalf.Workers["cloud"], "cloud"}, {edgeHalf.Workers["edge"], "edge"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.run(ctx, spec(w.role), log)
		}()
	}
	results := make(chan Result, 8)
	stop, _ := edgeBus.Subscribe("camera/results", func(m paradigm.Message) error {
		var r Result
		if json.Unmarshal(m.Payload, &r) == nil {
			select {
			case results <- r:
			default: // an answer to a sample asked again
			}
		}
		return nil
	})
	defer stop()
	ask := func(id string) Result {
		t.Helper()
		req, _ := json.Marshal(Request{ID: id, Shape: []int{2, 2}, DType: DTypeF32, Values: []float32{0.1, 0.2, 0.3, 0.4}, ReplyTo: "camera/results"})
		deadline := time.After(30 * time.Second)
		for {
			// The workers subscribe as they start: ask until one answers.
			if err := edgeBus.Publish(InputTopic("default", "svc"), req, false, 1); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-results:
				if r.ID != id {
					continue
				}
				return r
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatalf("no answer to %s", id)
			}
		}
	}
	// The cloud worker loads its model in the background: the first
	// answers may be the edge's, saying the cloud could not answer yet.
	deadline := time.Now().Add(30 * time.Second)
	var r Result
	for r = ask("up"); r.Source != "cloud" && time.Now().Before(deadline); r = ask("up") {
	}
	if r.Source != "cloud" || !r.Hard || r.Fallback != "" || r.Error != "" {
		t.Fatalf("with the link up: %+v, want the cloud's answer to a hard sample", r)
	}
	net.SetLink("edge1", false)
	if r := ask("down"); r.Source != "edge" || !r.Hard || r.Fallback != "link-down" || r.Error != "" {
		t.Fatalf("with the link down: %+v, want the edge's answer saying why", r)
	}
}
