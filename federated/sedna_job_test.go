package federated_test

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// Sedna's own FederatedLearningJob (examples/sedna, unchanged: exit_round
// on the aggregation worker, batch_size, learning_rate and epochs on the
// training workers, nothing of ours) runs to completion on a cloud manager
// and two edge nodes, the real brokers, bridges and stores: with no
// validation set, no pretrained model and no SEDNA_FL_INPUTS or
// SEDNA_FL_CLASSES, the model is sized by the training workers' Datasets
// (a csv with a header on one node, a txt on the other), whose shapes
// they report, never a sample: the features they agree on, and the
// largest label of either plus one (one node has only two of the three
// classes).
func TestSednaJobSizedByItsDatasets(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := access.NewCredentials(
		access.User{Username: "edge1", PasswordHash: string(hash), Role: access.UserNode},
		access.User{Username: "edge2", PasswordHash: string(hash), Role: access.UserNode},
		access.User{Username: "ops", PasswordHash: string(hash), Role: access.UserOperator})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.Start(cloud.Config{DataDir: filepath.Join(dir, "cloud"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"},
		cloud.Options{Paradigms: all.All(), Logger: logger, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)

	// The job's status and events, straight from the cloud's broker.
	job := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "surface-defect-detection"}
	phases := make(chan string, 256)
	events := make(chan topics.JobEvent, 256)
	const statusSub, eventSub = 0x5ed0a1, 0x5ed0a2
	if err := m.Broker().Subscribe(topics.JobStatus(job), statusSub, func(_ string, p []byte, _ bool) {
		var st api.Status
		if env, err := topics.UnmarshalEnvelope(p, topics.Limits{}); err == nil && env.DecodeBody(&st) == nil {
			select {
			case phases <- st.Phase:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Broker().Unsubscribe(topics.JobStatus(job), statusSub) })
	if err := m.Broker().Subscribe(topics.JobEvents(job), eventSub, func(_ string, p []byte, _ bool) {
		var ev topics.JobEvent
		if env, err := topics.UnmarshalEnvelope(p, topics.Limits{}); err == nil && env.DecodeBody(&ev) == nil {
			select {
			case events <- ev:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Broker().Unsubscribe(topics.JobEvents(job), eventSub) })

	for _, node := range []string{"edge1", "edge2"} {
		a, err := edge.Start(edge.Config{Node: node, DataDir: filepath.Join(dir, node), Broker: edge.BrokerConfig{Listen: "127.0.0.1:0"},
			Cloud: edge.CloudLink{URL: m.BrokerURL(), Username: node, Password: "pw"}, Metrics: "off"},
			edge.Options{Paradigms: all.All(), Logger: logger, KeepMemoryLimit: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
	}

	// Four features, three classes around their centres; edge1 holds
	// classes 0 and 1 only.
	rng := rand.New(rand.NewPCG(1, 2))
	centres := [][]float64{{1, 0, 0, 1}, {0, 1, 1, 0}, {1, 1, 0, 0}}
	write := func(path, header string, labels []int) {
		var b strings.Builder
		b.WriteString(header)
		for i := range 150 {
			y := labels[i%len(labels)]
			fmt.Fprintf(&b, "%d", y)
			for _, c := range centres[y] {
				fmt.Fprintf(&b, ",%.3f", c+rng.NormFloat64()*0.2)
			}
			b.WriteString("\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	csv, txt := filepath.Join(dir, "edge1.csv"), filepath.Join(dir, "edge2.txt")
	write(csv, "label,f0,f1,f2,f3\n", []int{0, 1})
	write(txt, "", []int{0, 1, 2})

	datasets, err := api.Parse([]byte(fmt.Sprintf(`apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: edge1-surface-defect-detection-dataset}
spec: {url: %q, format: csv, nodeName: edge1}
---
apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: edge2-surface-defect-detection-dataset}
spec: {url: %q, format: txt, nodeName: edge2}
`, csv, txt)), "datasets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sedna := func(file, name string) *api.Resource {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("..", "examples", "sedna", file))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := api.Parse(raw, file)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Metadata.Name == name {
				return r
			}
		}
		t.Fatalf("%s has no %s", file, name)
		return nil
	}
	fl := sedna("federated-learning.yaml", job.Name)
	for _, w := range fl.Workers() {
		for k := range w.Params {
			if strings.HasPrefix(k, "SEDNA_") {
				t.Fatalf("the example's %s has %s: not Sedna's own job", w.Role, k)
			}
		}
	}
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "ops", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	rep, err := c.Apply(ctx, append(datasets, sedna("models.yaml", "surface-defect-detection-model"), fl))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Action == "rejected" {
			t.Fatalf("%s rejected: %s", r.Key, r.Message)
		}
	}

	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	var seen []string
	for done := false; !done; {
		select {
		case p := <-phases:
			done = p == api.ConditionCompleted
		case ev := <-events:
			seen = append(seen, ev.Reason+": "+ev.Message)
			if ev.Reason == "WorkerRestarting" || ev.Reason == "DatasetUnusable" {
				t.Fatalf("%s: %s\nevents:\n%s", ev.Reason, ev.Message, strings.Join(seen, "\n"))
			}
		case <-deadline.C:
			t.Fatalf("the job did not complete; events:\n%s", strings.Join(seen, "\n"))
		}
	}
	t.Logf("events:\n%s", strings.Join(seen, "\n"))
	_, data, err := m.Control().LatestModel("default", "surface-defect-detection-model", 0)
	if err != nil {
		t.Fatal(err)
	}
	model, err := ml.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if model.Inputs() != 4 || model.Classes() != 3 {
		t.Fatalf("the final model takes %d features into %d classes, want 4 into 3", model.Inputs(), model.Classes())
	}
}

// testWriter sends a logger's lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
