package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/internal/shareddir"
	"github.com/sedna-go/sedna/topics"
)

func apiClient(t testing.TB, url string) *cloud.Client {
	t.Helper()
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: url, Username: "app", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func objects(t testing.TB, c *cloud.Client, kind string) map[string]topics.APIObject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := c.Do(ctx, topics.APIRequest{Op: "get", Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]topics.APIObject{}
	for _, o := range rep.Objects {
		out[o.Key] = o
	}
	return out
}

// Sedna-format YAML for every kind is accepted unchanged; invalid documents
// are refused naming the field; a restarted cloud manager has everything.
func TestControlPlaneAdmitsPersistsAndSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	m := startCloud(t, filepath.Join(dir, "cloud"), "")
	listen := m.Broker().Addr("tcp")
	for _, n := range []string{"edge1", "edge2"} {
		a := startEdge(t, n, filepath.Join(dir, n), m.BrokerURL())
		defer a.Close()
		waitLink(t, a)
	}
	// The bridge is up before the cloud has heard the node come online.
	waitJoined(t, m.BrokerURL(), "edge1", "edge2")
	c := apiClient(t, m.BrokerURL())
	rs, err := api.ParseFiles("../../examples/sedna")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := c.Apply(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(rs) {
		t.Fatalf("%d results for %d documents", len(rep.Results), len(rs))
	}
	for _, r := range rep.Results {
		// The Models' files are Sedna's example paths, not on this
		// machine: they wait for a push, and so do the jobs that serve
		// or start from them; everything else is ready.
		isModel := strings.HasPrefix(r.Key, "Model/")
		readsModel := strings.HasPrefix(r.Key, "JointInferenceService/") || strings.HasPrefix(r.Key, "IncrementalLearningJob/")
		switch {
		case r.Action != "created",
			isModel && !strings.Contains(r.Pending, "is not in the cloud's model directories"),
			readsModel && !strings.Contains(r.Pending, "to have a model file: "),
			!isModel && !readsModel && r.Pending != "":
			t.Errorf("%s: %s %s %s", r.Key, r.Action, r.Message, r.Pending)
		}
	}
	// Applying the same files again changes nothing.
	rep, err = c.Apply(ctx, rs)
	if err != nil || rep.Results[0].Action != "unchanged" {
		t.Fatalf("re-apply: %v %+v", err, rep.Results)
	}
	// A job naming a miner that does not exist is refused, naming the field.
	ji, _ := api.Parse([]byte(`apiVersion: sedna.io/v1alpha1
kind: JointInferenceService
metadata: {name: ji-bad}
spec:
  edgeWorker:
    model: {name: helmet-detection-inference-little-model}
    hardExampleMining: {name: IBTT}
    template: {spec: {nodeName: edge1}}
  cloudWorker:
    model: {name: helmet-detection-inference-big-model}
    template: {spec: {nodeName: cloud}}
`), "bad.yaml")
	rep, err = c.Apply(ctx, ji)
	if err != nil || rep.Results[0].Action != "rejected" || !strings.Contains(rep.Results[0].Message, "spec.edgeWorker.hardExampleMining.name") {
		t.Fatalf("bad miner: %v %+v", err, rep.Results)
	}
	// A job waiting for a model applied later, and a node not joined yet.
	later, _ := api.Parse([]byte(`apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: fl-later}
spec:
  aggregationWorker: {model: {name: model-later}, template: {spec: {nodeName: cloud}}}
  trainingWorkers:
    - dataset: {name: edge1-surface-defect-detection-dataset}
      template: {spec: {nodeName: edge3}}
`), "later.yaml")
	rep, err = c.Apply(ctx, later)
	if err != nil || rep.Results[0].Action != "created" || !strings.Contains(rep.Results[0].Pending, `Model "model-later"`) || !strings.Contains(rep.Results[0].Pending, `node "edge3" to join`) {
		t.Fatalf("pending: %v %+v", err, rep.Results)
	}

	before := objects(t, c, "all")
	if len(before) != len(rs)+1 {
		t.Fatalf("%d objects, want %d", len(before), len(rs)+1)
	}
	c.Close()
	m.Close()

	m = startCloud(t, filepath.Join(dir, "cloud"), listen)
	defer m.Close()
	c = apiClient(t, m.BrokerURL())
	after := objects(t, c, "all")
	if len(after) != len(before) {
		t.Fatalf("after the restart %d objects, before %d", len(after), len(before))
	}
	for k, o := range before {
		a := after[k]
		var sb, sa api.Status
		json.Unmarshal(o.Status, &sb)
		json.Unmarshal(a.Status, &sa)
		if a.Generation != o.Generation || string(a.Source) != string(o.Source) || sa.Phase != sb.Phase || len(sa.Conditions) != len(sb.Conditions) {
			t.Errorf("%s changed across the restart:\n%s\n%s", k, o.Status, a.Status)
		}
	}
	var st api.Status
	json.Unmarshal(after["FederatedLearningJob/default/fl-later"].Status, &st)
	if st.Phase != api.ConditionPending || len(st.Pending) != 2 {
		t.Fatalf("pending job after restart: %+v", st)
	}
	// The model it waited for arrives: one thing less to wait for.
	model, _ := api.Parse([]byte("apiVersion: sedna.io/v1alpha1\nkind: Model\nmetadata: {name: model-later}\nspec: {url: /m, format: pb}\n"), "m.yaml")
	if _, err := c.Apply(ctx, model); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(objects(t, c, "fl")["FederatedLearningJob/default/fl-later"].Status, &st)
	if len(st.Pending) != 1 || !strings.Contains(st.Pending[0], "edge3") {
		t.Fatalf("after the model: %+v", st.Pending)
	}
	// Delete.
	rep, err = c.Do(ctx, topics.APIRequest{Op: "delete", Kind: "fl", Name: "fl-later"})
	if err != nil || rep.Results[0].Action != "deleted" {
		t.Fatalf("delete: %v %+v", err, rep)
	}
	if _, err := c.Do(ctx, topics.APIRequest{Op: "describe", Kind: "fl", Name: "fl-later"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("describe after delete: %v", err)
	}
}

// A job whose worker is an external process starts it on the right node from
// the template's command and env, restarts it after a crash, and shows its
// exit in the job's status.
func TestExternalWorkerRunsOnItsNode(t *testing.T) {
	dir := t.TempDir()
	// The worker runs as another user than root: its program and the
	// files it writes are in a directory it may use.
	shared := shareddir.New(t)
	crashy := filepath.Join(shared, "crashy")
	if out, err := exec.Command("go", "build", "-o", crashy, "../../workers/testdata/crashy").CombinedOutput(); err != nil {
		t.Fatal(string(out))
	}
	out := filepath.Join(shared, "out")
	os.MkdirAll(out, 0o777)
	os.Chmod(out, 0o777)
	if err := syscall.Mkfifo(filepath.Join(out, "ready"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(out, "ready"), 0o666)
	m := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer m.Close()
	for _, n := range []string{"edge1", "edge2"} {
		a := startEdge(t, n, filepath.Join(dir, n), m.BrokerURL())
		defer a.Close()
		waitLink(t, a)
	}
	c := adminClient(t, m.BrokerURL()) // a command: an admin's to apply
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var mu sync.Mutex
	var events []string
	statuses := make(chan api.Status, 64)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ref := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "ext"}
	go c.Watch(watchCtx, ref, func(s api.Status) { statuses <- s }, func(ev topics.JobEvent) {
		mu.Lock()
		events = append(events, ev.Reason+": "+ev.Message)
		mu.Unlock()
	})

	docs, _ := api.Parse([]byte(`apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: d2}
spec: {url: /data/d2.txt, format: txt, nodeName: edge2}
---
apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: ext}
spec:
  aggregationWorker: {template: {spec: {nodeName: cloud}}}
  trainingWorkers:
    - dataset: {name: d2}
      template:
        spec:
          nodeName: edge2
          containers:
            - name: train
              image: ignored:latest
              command: ["`+crashy+`"]
              args: ["--epochs", "2"]
              env:
                - {name: batch_size, value: "64"}
                - {name: OUT_DIR, value: "`+out+`"}
`), "ext.yaml")
	if rep, err := c.Apply(ctx, docs); err != nil || rep.Results[1].Action != "created" {
		t.Fatalf("%v %+v", err, rep)
	}
	// The second run says it is ready once it handles SIGTERM.
	if b, err := os.ReadFile(filepath.Join(out, "ready")); err != nil || string(b) != "ready\n" {
		t.Fatalf("ready: %q %v", b, err)
	}
	env, _ := os.ReadFile(filepath.Join(out, "env-0"))
	if want := "node=edge2 role=train-0 job=FederatedLearningJob/default/ext batch_size=64 args=[--epochs 2]"; strings.TrimSpace(string(env)) != want {
		t.Fatalf("the worker saw %q, want %q", env, want)
	}
	// The status shows the restart and the exit code of the crash.
	deadline := time.After(30 * time.Second)
	for {
		var st api.Status
		select {
		case st = <-statuses:
		case <-deadline:
			mu.Lock()
			t.Fatalf("no status with the restart; events: %v", events)
		}
		var w *api.WorkerStatus
		for i := range st.Workers {
			if st.Workers[i].Role == "train-0" {
				w = &st.Workers[i]
			}
		}
		if w != nil && w.Node == "edge2" && w.Phase == "Running" && w.Restarts == 1 {
			break
		}
	}
	mu.Lock()
	joined := strings.Join(events, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "WorkerRestarting: worker train-0 on edge2: Restarting (exit 3)") || !strings.Contains(joined, "crashing on purpose") {
		t.Fatalf("events:\n%s", joined)
	}
	// The cloud's built-in aggregation worker runs too, and says plainly
	// what its template lacks: on its first failure (Restarting), or on
	// its second (CrashLoopBackOff) when the watch, started beside the
	// apply, subscribed after the first.
	lacks := ": federated: spec.aggregationWorker.template: the model's size is unknown: give SEDNA_FL_INPUTS and SEDNA_FL_CLASSES"
	if !strings.Contains(joined, "WorkerRestarting: worker aggregation on cloud: Restarting"+lacks) &&
		!strings.Contains(joined, "WorkerCrashLoopBackOff: worker aggregation on cloud: CrashLoopBackOff"+lacks) {
		t.Fatalf("the cloud's aggregation worker should say what its template lacks:\n%s", joined)
	}
	t.Logf("events:\n%s", joined)
	// Deleting the job stops the worker on its node.
	if _, err := c.Do(ctx, topics.APIRequest{Op: "delete", Kind: "fl", Name: "ext"}); err != nil {
		t.Fatal(err)
	}
}

// Lines appended to a dataset file on its node, and samples published on the
// dataset's topic there, show up in the Dataset's numberOfSamples.
func TestDatasetSamplesAreCounted(t *testing.T) {
	dir, m, a, c := cloudAndNode(t)
	file := filepath.Join(dir, "train.txt")
	os.WriteFile(file, []byte("img/1.jpg 0\nimg/2.jpg 1\nimg/3.jpg 0\n"), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Everything the node sends up, to check that raw samples stay home.
	var upMu sync.Mutex
	var up []string
	spy := client(t, m.BrokerURL(), "spy", "app", true)
	if tok := spy.Subscribe(topics.NodeFilter("edge1"), 1, func(_ paho.Client, msg paho.Message) {
		upMu.Lock()
		up = append(up, msg.Topic()+" "+string(msg.Payload()))
		upMu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	samples := make(chan int64, 64)
	go c.Watch(ctx, topics.JobRef{Kind: api.KindDataset, Namespace: "default", Name: "train"}, func(s api.Status) {
		if s.NumberOfSamples != nil {
			samples <- *s.NumberOfSamples
		}
	}, nil)
	docs, _ := api.Parse([]byte("apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: train}\nspec: {url: \"file://"+file+"\", format: txt, nodeName: edge1}\n"), "ds.yaml")
	if _, err := c.Apply(ctx, docs); err != nil {
		t.Fatal(err)
	}
	waitSamples := func(want int64) {
		t.Helper()
		for {
			select {
			case n := <-samples:
				if n == want {
					return
				}
				if n > want {
					t.Fatalf("numberOfSamples %d, want %d", n, want)
				}
			case <-ctx.Done():
				t.Fatalf("numberOfSamples never reached %d", want)
			}
		}
	}
	waitSamples(3)
	f, _ := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("img/4.jpg 1\nimg/5.jpg 1\nimg/6.jpg") // the last line is not complete yet
	f.Close()
	waitSamples(5)
	// A local app publishes a sample on the dataset's topic.
	local := client(t, "tcp://"+a.BrokerAddr(), "camera", "", true)
	if tok := local.Publish(topics.NodeDataset("edge1", "default", "train"), 1, false, []byte("img/7.jpg 0")); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitSamples(6)
	f, _ = os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(" 0\n") // completes img/6.jpg
	f.Close()
	waitSamples(7)
	// The node's own workers read them, in order.
	var held []string
	if err := a.Samples("default", "train", func(i uint64, s []byte) error {
		if i != uint64(len(held)+1) {
			return fmt.Errorf("sample %d after %d", i, len(held))
		}
		held = append(held, string(s))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := "img/1.jpg 0|img/2.jpg 1|img/3.jpg 0|img/4.jpg 1|img/5.jpg 1|img/7.jpg 0|img/6.jpg 0"; strings.Join(held, "|") != want {
		t.Fatalf("samples held: %q, want %q", strings.Join(held, "|"), want)
	}
	upMu.Lock()
	defer upMu.Unlock()
	if len(up) == 0 {
		t.Fatal("the spy saw nothing: it cannot tell")
	}
	for _, m := range up {
		if strings.Contains(m, "img/") {
			t.Fatalf("a raw sample left the node: %s", m)
		}
	}
}

// A Dataset file of several megabytes (far more than one write of an edge
// store takes) is read whole, in writes the store takes; a line of 800 KB
// is a sample like any other, and a line larger than a message may be (1
// MiB) is skipped, not retried for ever (it was: no sample of such a file
// was ever kept).
func TestLargeDatasetFileIsIngested(t *testing.T) {
	dir, _, a, c := cloudAndNode(t)
	file := filepath.Join(dir, "big.csv")
	var b strings.Builder
	b.WriteString("label,pixels\n")
	const rows = 20000
	row := strings.Repeat("0.5,", 99) + "0.5"
	for i := range rows {
		fmt.Fprintf(&b, "%d,%s\n", i%10, row)
		if i == rows/2 {
			fmt.Fprintf(&b, "9,%s\n", strings.Repeat("1,", 400_000)+"1") // 800 KB in one line: kept
			fmt.Fprintf(&b, "9,%s\n", strings.Repeat("1,", 700_000)+"1") // 1.4 MB: skipped
		}
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	samples := make(chan int64, 256)
	go c.Watch(ctx, topics.JobRef{Kind: api.KindDataset, Namespace: "default", Name: "big"}, func(s api.Status) {
		if s.NumberOfSamples != nil {
			samples <- *s.NumberOfSamples
		}
	}, nil)
	docs, _ := api.Parse([]byte("apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: big}\nspec: {url: \""+file+"\", format: csv, nodeName: edge1}\n"), "ds.yaml")
	if _, err := c.Apply(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for n := int64(0); n != rows+1; {
		select {
		case n = <-samples:
		case <-ctx.Done():
			t.Fatalf("numberOfSamples %d, want %d (a %d MB file)", n, rows+1, b.Len()>>20)
		}
	}
	held := 0
	if err := a.Samples("default", "big", func(_ uint64, s []byte) error {
		held++
		return nil
	}); err != nil || held != rows+1 {
		t.Fatalf("%d samples held, want %d: %v", held, rows+1, err)
	}
}
