package federated

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

const jobYAML = `apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: fl, namespace: default}
spec:
  aggregationWorker:
    model: {name: out}
    template: {spec: {nodeName: cloud, containers: [{name: agg, image: x}]}}
  trainingWorkers:
    - dataset: {name: d0}
      template: {spec: {nodeName: a, containers: [{name: t, image: x}]}}
    - dataset: {name: d1}
      template: {spec: {nodeName: b, containers: [{name: t, image: x}]}}
    - dataset: {name: d2}
      template: {spec: {nodeName: b, containers: [{name: t, image: x}]}}
`

func specFor(t *testing.T, role string, params map[string]string) workers.Spec {
	t.Helper()
	rs, err := api.Parse([]byte(jobYAML), "fl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rs[0].Workers() {
		if w.Role == role {
			w.Params = params
			return workers.Spec{Job: topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}, Worker: w, Document: rs[0].Source}
		}
	}
	t.Fatalf("no role %s", role)
	return workers.Spec{}
}

func TestAggregationDefaults(t *testing.T) {
	c, err := parseAggConfig(specFor(t, "aggregation", map[string]string{ParamInputs: "64", ParamClasses: "10"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 10 || c.aggregator != "FedAvg" || c.minClients != 2 || c.timeout != 2*time.Minute || c.model != "mlp:32" ||
		c.chunkBytes != 256<<10 || c.outputModel != "out" || len(c.clients) != 3 || c.clients[2].Node != "b" || c.clients[2].Dataset != "d2" {
		t.Fatalf("%+v", c)
	}
}

func TestAggregationParameters(t *testing.T) {
	c, err := parseAggConfig(specFor(t, "aggregation", map[string]string{ParamExitRound: "25", ParamAggregator: "TrimmedMean",
		ParamAggregatorParams: "trim_ratio=0.2, x = y", ParamMinClients: "3", ParamRoundTimeout: "90s", ParamTargetAccuracy: "0.95",
		ParamPatience: "4", ParamValidation: "/v.csv", ParamModel: "mlp:64,32", ParamChunkBytes: "65537"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 25 || c.aggregator != "TrimmedMean" || c.aggParams["trim_ratio"] != "0.2" || c.aggParams["x"] != "y" ||
		c.minClients != 3 || c.timeout != 90*time.Second || c.target != 0.95 || c.patience != 4 || c.model != "mlp:64,32" || c.chunkBytes != 65536 {
		t.Fatalf("%+v", c)
	}
}

// A bad parameter is refused naming the variable and the template.
func TestBadParametersAreNamed(t *testing.T) {
	for _, tc := range []struct {
		role   string
		params map[string]string
		want   string
	}{
		{"aggregation", map[string]string{ParamExitRound: "0"}, "exit_round"},
		{"aggregation", map[string]string{ParamMinClients: "4"}, ParamMinClients},
		{"aggregation", map[string]string{ParamRoundTimeout: "soon"}, ParamRoundTimeout},
		{"aggregation", map[string]string{ParamTargetAccuracy: "95"}, ParamTargetAccuracy},
		{"aggregation", map[string]string{ParamTargetAccuracy: "0.9"}, "need a validation set"},
		{"aggregation", map[string]string{ParamModel: "resnet"}, ParamModel},
		{"aggregation", map[string]string{ParamModel: "mlp:1,2,3"}, ParamModel},
		{"aggregation", map[string]string{ParamAggregatorParams: "oops"}, ParamAggregatorParams},
		{"aggregation", map[string]string{ParamChunkBytes: "100"}, ParamChunkBytes},
		{"train-0", map[string]string{ParamBatchSize: "-1"}, "batch_size"},
		{"train-0", map[string]string{ParamEpochs: "x"}, "epochs"},
		{"train-0", map[string]string{ParamLearningRate: "NaN"}, "learning_rate"},
		{"train-0", map[string]string{ParamOptimizer: "lbfgs"}, ParamOptimizer},
		{"train-0", map[string]string{ParamMomentum: "1"}, ParamMomentum},
	} {
		spec := specFor(t, tc.role, tc.params)
		var err error
		if tc.role == "aggregation" {
			_, err = parseAggConfig(spec)
		} else {
			_, err = parseTrainConfig(spec)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.params, err, tc.want)
		}
	}
}

func TestTrainingParameters(t *testing.T) {
	c, err := parseTrainConfig(specFor(t, "train-1", map[string]string{ParamBatchSize: "16", ParamLearningRate: "0.1", ParamEpochs: "2",
		ParamOptimizer: "Adam", ParamMomentum: "0.9"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.dataset != "d1" || c.fit.BatchSize != 16 || c.fit.LearningRate != 0.1 || c.fit.Epochs != 2 || c.fit.Optimizer.String() != "adam" || c.fit.Momentum != 0.9 {
		t.Fatalf("%+v", c)
	}
}

func TestChunksAndAssembly(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	parts := paradigm.Chunks(data, 64)
	if len(parts) != 16 {
		t.Fatalf("%d parts", len(parts))
	}
	var a paradigm.Assembly
	for i := len(parts) - 1; i >= 0; i-- { // in any order, with a repeat
		whole, err := a.Add(i, len(parts), parts[i])
		if err != nil || whole != (i == 0) {
			t.Fatalf("piece %d: %v %v", i, whole, err)
		}
		if i == 5 {
			if _, err := a.Add(i, len(parts), parts[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.Equal(a.Bytes(), data) {
		t.Fatal("reassembled bytes differ")
	}
	var b paradigm.Assembly
	if _, err := b.Add(0, 2, nil); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]int{{1, 3}, {2, 2}, {-1, 2}, {0, 0}} {
		if _, err := b.Add(bad[0], bad[1], nil); err == nil {
			t.Errorf("piece %d of %d accepted", bad[0], bad[1])
		}
	}
	if len(paradigm.Chunks(nil, 8)) != 1 {
		t.Error("an empty model has no piece")
	}
	w := []float32{1, -2.5, 3e-9}
	got, err := fromF32le(f32le(w))
	if err != nil || len(got) != 3 || got[1] != -2.5 || got[2] != 3e-9 {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := fromF32le([]byte{1, 2, 3}); err == nil {
		t.Error("3 bytes taken for float32s")
	}
}

func TestSamplesParse(t *testing.T) {
	s := &samples{cols: 2}
	for _, l := range []string{"1,0.5,0.25", "label,a,b", "2,1", "x,1,2", "3,NaN,1", "", "4,1,2", "12,0,0"} {
		s.add([]byte(l))
	}
	s.keep(10)
	if s.rows() != 2 || s.bad != 5 || s.y[1] != 4 || s.x[3] != 2 {
		t.Fatalf("%+v", s)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "v.csv")
	os.WriteFile(p, []byte("label,f0,f1\n0,1,2\n1,3,4\n"), 0o600)
	v, err := readCSV(os.Open, p)
	if err != nil || v.rows() != 2 || v.cols != 2 || v.classes() != 2 {
		t.Fatalf("%+v %v", v, err)
	}
	os.WriteFile(p, []byte("0,1,2\n1,3\n"), 0o600)
	if _, err := readCSV(os.Open, p); err == nil || !strings.Contains(err.Error(), "1 lines") {
		t.Fatalf("a ragged validation set: %v", err)
	}
	if _, err := readCSV(os.Open, filepath.Join(dir, "none.csv")); err == nil {
		t.Fatal("a missing validation set read")
	}
}

// An update whose numbers cannot be true is refused before its pieces are
// kept; pieces cannot make more than the model's size.
func TestUpdatesAreChecked(t *testing.T) {
	good := update{Params: 10, Samples: 5, Loss: 0.3, Train: 0.01}
	if err := checkUpdate(good, 10); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []update{
		{Params: 9, Samples: 5}, {Params: 10, Samples: 0}, {Params: 10, Samples: -3},
		{Params: 10, Samples: 5, Loss: math.NaN()}, {Params: 10, Samples: 5, Loss: math.Inf(1)}, {Params: 10, Samples: 5, Train: -1},
	} {
		if checkUpdate(bad, 10) == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	a := paradigm.Assembly{Max: 12288, MinPiece: minChunkBytes}
	if _, err := a.Add(0, 2, make([]byte, 8192)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(1, 2, make([]byte, 8192)); err == nil {
		t.Error("pieces beyond the model's size kept")
	}
	if _, err := (&paradigm.Assembly{Max: 12288, MinPiece: minChunkBytes}).Add(0, 1000, nil); err == nil {
		t.Error("1,000 pieces announced for 12 KB")
	}
	if _, err := parseTrainConfig(specFor(t, "train-0", map[string]string{ParamLearningRate: "0"})); err == nil {
		t.Error("learning_rate 0 taken")
	}
}

// A job applied again with another model starts a new run.
func TestModelKey(t *testing.T) {
	a, _ := parseAggConfig(specFor(t, "aggregation", map[string]string{ParamInputs: "64", ParamClasses: "10"}))
	b, _ := parseAggConfig(specFor(t, "aggregation", map[string]string{ParamInputs: "64", ParamClasses: "10", ParamModel: "mlp:64"}))
	c, _ := parseAggConfig(specFor(t, "aggregation", map[string]string{ParamInputs: "64", ParamClasses: "10", ParamExitRound: "50"}))
	if a.modelKey() == b.modelKey() || a.modelKey() != c.modelKey() {
		t.Errorf("%s %s %s", a.modelKey(), b.modelKey(), c.modelKey())
	}
}
