package api_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
)

// miners stands in for the plugin host: the built-in miners and their keys.
var adm = api.Admission{MinerParams: func(name string) ([]string, bool) {
	m := map[string][]string{
		"IBT":          {"threshold_img", "threshold_box"},
		"CrossEntropy": {"threshold_cross_entropy"},
		"EdgeOnly":     {},
	}
	k, ok := m[name]
	return k, ok
}}

func TestSednaExamplesApplyUnchanged(t *testing.T) {
	rs, err := api.ParseFiles("../examples/sedna")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range rs {
		if err := api.Validate(r, adm); err != nil {
			t.Errorf("%s: %v", r.Origin, err)
		}
		kinds[r.Kind]++
	}
	for _, k := range api.Kinds {
		if kinds[k] == 0 {
			t.Errorf("no example of %s", k)
		}
	}
	t.Logf("%d resources: %v", len(rs), kinds)
}

func find(t *testing.T, rs []*api.Resource, kind, name string) *api.Resource {
	t.Helper()
	for _, r := range rs {
		if r.Kind == kind && r.Metadata.Name == name {
			return r
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

func TestFieldsAreReadAndTheRestIsKeptAsIgnored(t *testing.T) {
	rs, err := api.ParseFiles("../examples/sedna")
	if err != nil {
		t.Fatal(err)
	}
	ji := find(t, rs, api.KindJointInferenceService, "helmet-detection-inference-example")
	spec := ji.Spec.(*api.JointInferenceServiceSpec)
	if spec.EdgeWorker.HardExampleMining.Name != "IBT" || spec.EdgeWorker.HardExampleMining.Parameters[1] != (api.KV{Key: "threshold_box", Value: "0.9"}) {
		t.Fatalf("mining: %+v", spec.EdgeWorker.HardExampleMining)
	}
	for _, want := range []string{
		"spec.edgeWorker.template.spec.containers[0].resources",
		"spec.edgeWorker.template.spec.containers[0].imagePullPolicy",
		"spec.edgeWorker.template.spec.containers[0].volumeMounts",
		"spec.edgeWorker.template.spec.volumes",
	} {
		if !slices.Contains(ji.Ignored, want) {
			t.Errorf("%s not listed as ignored: %v", want, ji.Ignored)
		}
	}
	if slices.Contains(ji.Ignored, "spec.edgeWorker.template.spec.containers[0].env") {
		t.Error("env is used, not ignored")
	}
	ws := ji.Workers()
	if len(ws) != 2 || ws[0].Node != "edge1" || ws[1].Node != "cloud" || ws[0].Params["input_shape"] != "416,736" || ws[0].External() {
		t.Fatalf("workers: %+v", ws)
	}

	il := find(t, rs, api.KindIncrementalLearningJob, "helmet-detection-demo").Spec.(*api.IncrementalLearningJobSpec)
	tr := il.TrainSpec.Trigger
	if tr.Timer.Start != "02:00" || tr.Timer.End != "20:00" || tr.Condition.Operator != ">" || tr.Condition.Threshold != 500 || il.Dataset.TrainProb != 0.8 || !il.DeploySpec.Model.HotUpdateEnabled {
		t.Fatalf("incremental: %+v", il)
	}
	fl := find(t, rs, api.KindFederatedLearningJob, "surface-defect-detection")
	if got := fl.Nodes(); !slices.Equal(got, []string{"cloud", "edge1", "edge2"}) {
		t.Fatalf("nodes %v", got)
	}
	refs := fl.References()
	if len(refs) != 3 || refs[1] != (api.Reference{Kind: api.KindDataset, Name: "edge1-surface-defect-detection-dataset", Field: "spec.trainingWorkers[0].dataset.name"}) {
		t.Fatalf("references %+v", refs)
	}
	if ds := find(t, rs, api.KindDataset, "lifelong-dataset"); ds.Metadata.Namespace != "default" {
		t.Fatalf("namespace %q", ds.Metadata.Namespace)
	}
}

const base = `apiVersion: sedna.io/v1alpha1
kind: JointInferenceService
metadata:
  name: ji
spec:
  edgeWorker:
    model: {name: little}
    hardExampleMining:
      name: IBT
      parameters: [{key: threshold_img, value: "0.9"}]
    template: {spec: {nodeName: edge1}}
  cloudWorker:
    model: {name: big}
    template: {spec: {nodeName: cloud}}
`

const ilBase = `apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: il}
spec:
  initialModel: {name: m0}
  dataset: {name: d, trainProb: 0.8}
  trainSpec:
    template: {spec: {nodeName: edge1}}
    trigger:
      checkPeriodSeconds: 60
      timer: {start: "02:00", end: "20:00"}
      condition: {operator: ">", threshold: 500, metric: num_of_samples}
  evalSpec: {template: {spec: {nodeName: edge1}}}
  deploySpec:
    model: {name: m1, hotUpdateEnabled: true, pollPeriodSeconds: 60}
    template: {spec: {nodeName: edge1}}
`

func TestInvalidResourcesNameTheField(t *testing.T) {
	if _, err := api.Parse([]byte(base), "t"); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ doc, field string }{
		{strings.Replace(base, "sedna.io/v1alpha1", "sedna.io/v2", 1), "apiVersion"},
		{strings.Replace(base, "kind: JointInferenceService", "kind: JointInference", 1), "kind"},
		{strings.Replace(base, "name: IBT", "name: NoSuchMiner", 1), "spec.edgeWorker.hardExampleMining.name"},
		{strings.Replace(base, "key: threshold_img", "key: threshold_image", 1), "spec.edgeWorker.hardExampleMining.parameters[0].key"},
		{strings.Replace(base, "name: ji", "name: \"bad name!\"", 1), "metadata.name"},
		{strings.Replace(base, "nodeName: edge1", "nodeName: $EDGE_NODE", 1), "spec.edgeWorker.template.spec.nodeName"},
		{strings.Replace(base, "model: {name: big}", "model: {}", 1), "spec.cloudWorker.model.name"},
		{strings.Replace(ilBase, `operator: ">"`, `operator: "=>"`, 1), "spec.trainSpec.trigger.condition.operator"},
		{strings.Replace(ilBase, `start: "02:00"`, `start: "25:00"`, 1), "spec.trainSpec.trigger.timer.start"},
		{strings.Replace(ilBase, `end: "20:00"`, `end: "8pm"`, 1), "spec.trainSpec.trigger.timer.end"},
		{strings.Replace(ilBase, "trainProb: 0.8", "trainProb: 1.5", 1), "spec.dataset.trainProb"},
		{strings.Replace(ilBase, "trainProb: 0.8", "trainProb: lots", 1), "spec.dataset.trainProb"},
		{strings.Replace(ilBase, "checkPeriodSeconds: 60", "checkPeriodSeconds: -1", 1), "spec.trainSpec.trigger.checkPeriodSeconds"},
		{ilBase + "  stopCondition: {maxCycles: -2}\n", "spec.stopCondition.maxCycles"},
		{ilBase + "  stopCondition: {}\n", "spec.stopCondition"},
		{ilBase + "  stopCondition: {target: {operator: \">=\", threshold: 0.9, metric: \"accuracy[\"}}\n", "spec.stopCondition.target.metric"},
		{ilBase + "  stopCondition: {target: {operator: \"~\", threshold: 0.9, metric: accuracy}}\n", "spec.stopCondition.target.operator"},
		{"apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: d}\nspec: {url: /a, format: parquet, nodeName: e}\n", "spec.format"},
		{"apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: d}\nspec: {format: txt, nodeName: e}\n", "spec.url"},
		{modelDoc("format: ONNX"), "spec.format"},
		{modelDoc("format: sedna\n  preprocess: {scale: 0.5}"), "spec.format"},
		{modelDoc("format: onnx\n  inputs: [{name: a}, {name: b}]"), "spec.inputs"},
		{modelDoc("format: onnx\n  inputs: [{shape: [14]}]"), "spec.inputs[0].shape"},
		{modelDoc("format: onnx\n  inputs: [{shape: [-1, 0, 14]}]"), "spec.inputs[0].shape"},
		{modelDoc("format: onnx\n  preprocess: {layout: CHW}"), "spec.preprocess.layout"},
		{modelDoc("format: onnx\n  preprocess: {std: [0.5, 0]}"), "spec.preprocess.std"},
		{modelDoc("format: onnx\n  postprocess: sigmoid"), "spec.postprocess"},
		{"apiVersion: sedna.io/v1alpha1\nkind: FederatedLearningJob\nmetadata: {name: f}\nspec:\n  aggregationWorker: {template: {spec: {nodeName: cloud}}}\n", "spec.trainingWorkers"},
	}
	for _, c := range cases {
		rs, err := api.Parse([]byte(c.doc), "case.yaml")
		if err == nil {
			err = api.Validate(rs[0], adm)
		}
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("want an error naming %s, got %v", c.field, err)
			continue
		}
		t.Logf("%s", err)
	}
}

func modelDoc(spec string) string {
	return "apiVersion: sedna.io/v1alpha1\nkind: Model\nmetadata: {name: m}\nspec:\n  url: /m.onnx\n  " + spec + "\n"
}

// TestModelIO checks an ONNX Model's declarations as a user writes them:
// read into ModelIO, valid, no field unknown; and Sedna's own formats
// ("pb") still accepted for external workers.
func TestModelIO(t *testing.T) {
	rs, err := api.Parse([]byte(modelDoc("format: onnx\n  inputs: [{name: image, shape: [-1, 1, 14, 14]}]\n  outputs: [{name: logits}]\n  preprocess: {scale: 0.00392, mean: [0.286], std: [0.353], layout: NCHW}\n  postprocess: softmax")), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Validate(rs[0], adm); err != nil {
		t.Fatal(err)
	}
	s := rs[0].Spec.(*api.ModelSpec)
	if s.Inputs[0].Name != "image" || len(s.Inputs[0].Shape) != 4 || s.Outputs[0].Name != "logits" || s.Preprocess.Std[0] != 0.353 ||
		s.Preprocess.Layout != "NCHW" || s.Postprocess != "softmax" || len(rs[0].Unknown) != 0 {
		t.Fatalf("read %+v, unknown %v", s.ModelIO, rs[0].Unknown)
	}
	rs, err = api.Parse([]byte(modelDoc("format: pb")), "m.yaml")
	if err != nil || api.Validate(rs[0], adm) != nil {
		t.Fatalf("Sedna's format pb: %v", err)
	}
}

func TestMultiDocumentAndMalformedInput(t *testing.T) {
	rs, err := api.Parse([]byte("---\n# just a comment\n---\n"+base+"---\n"+ilBase), "multi.yaml")
	if err != nil || len(rs) != 2 || rs[1].Origin != "multi.yaml#4" {
		t.Fatalf("%v %d", err, len(rs))
	}
	for _, bad := range []string{"a: [1, 2\n", "- just\n- a list\n", "apiVersion: sedna.io/v1alpha1\nkind: Model\nmetadata: {name: m}\nspec: [1]\n"} {
		if _, err := api.Parse([]byte(bad), "bad.yaml"); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(ilBase))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := api.Parse(b, "fuzz")
		if err != nil {
			return
		}
		for _, r := range rs {
			_ = api.Validate(r, adm)
			_ = r.Workers()
			_ = r.References()
		}
	})
}

// A document is never cut short, whatever the length of its lines: the
// splitter once stopped at a line over 16 MiB and dropped the rest of the
// file without an error (issue 14, finding 9).
func TestLongLinesAreNotTruncated(t *testing.T) {
	big := strings.Repeat("x", 17<<20)
	text := "apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: a}\nspec: {url: /d.txt, format: txt, nodeName: e}\n---\n" +
		"apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: b, annotations: {big: \"" + big + "\"}}\nspec: {url: /d.txt, format: txt, nodeName: e}\n" +
		"--- # a comment\r\napiVersion: sedna.io/v1alpha1\r\nkind: Dataset\r\nmetadata: {name: c}\r\nspec: {url: /d.txt, format: txt, nodeName: e}\r\n"
	rs, err := api.Parse([]byte(text), "long.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[1].Metadata.Name != "b" || rs[2].Metadata.Name != "c" || rs[1].Metadata.Annotations["big"] != big {
		t.Fatalf("%d resources", len(rs))
	}
}

// TestTriggersAsSednaWritesThem: every operator Sedna accepts, indexed
// metrics and timers that wrap around midnight are valid; an
// IncrementalLearningJob with `operator: gt` was once refused whole.
func TestTriggersAsSednaWritesThem(t *testing.T) {
	for _, op := range []string{"gt", ">", "ge", ">=", "eq", "=", "==", "ne", "!=", "le", "<=", "lt", "<"} {
		doc := strings.Replace(ilBase, `operator: ">"`, `operator: "`+op+`"`, 1)
		rs, err := api.Parse([]byte(doc), "il.yaml")
		if err == nil {
			err = api.Validate(rs[0], adm)
		}
		if err != nil {
			t.Errorf("operator %s: %v", op, err)
		}
	}
	for _, edit := range [][2]string{
		{`start: "02:00"`, `start: "22:30"`}, // 22:30 to 20:00 wraps around midnight
		{`metric: num_of_samples`, `metric: "precision_delta[1]"`},
	} {
		if !strings.Contains(ilBase, edit[0]) {
			t.Fatalf("ilBase has no %s", edit[0])
		}
		rs, err := api.Parse([]byte(strings.Replace(ilBase, edit[0], edit[1], 1)), "il.yaml")
		if err == nil {
			err = api.Validate(rs[0], adm)
		}
		if err != nil {
			t.Errorf("%s: %v", edit[1], err)
		}
	}
	rs, err := api.Parse([]byte(strings.Replace(ilBase, `metric: num_of_samples`, `metric: "precision_delta[-1]"`, 1)), "il.yaml")
	if err == nil {
		err = api.Validate(rs[0], adm)
	}
	if err == nil || !strings.Contains(err.Error(), "spec.trainSpec.trigger.condition.metric:") {
		t.Fatalf("a negative index: %v", err)
	}
}

// TestUnknownFields: every field Sedna's CRDs define is known (the
// examples, and a document with every field of every kind, have none
// unknown); a typo or a field of another API is unknown, named by its
// path, and still parses.
func TestUnknownFields(t *testing.T) {
	rs, err := api.ParseFiles("../examples/sedna")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if len(r.Unknown) > 0 {
			t.Errorf("%s: unknown %v", r.Key(), r.Unknown)
		}
	}
	rs, err = api.Parse([]byte(everyField), "every.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if len(r.Unknown) > 0 {
			t.Errorf("%s: unknown %v", r.Key(), r.Unknown)
		}
	}
	typo := strings.NewReplacer("trainProb: 0.8", "trainProbability: 0.8", "checkPeriodSeconds: 60", "checkPeriod: 60",
		"template: {spec: {nodeName: edge1}}\n    trigger", "template: {spec: {nodeName: edge1, container: []}}\n    trigger",
		"metadata: {name: il}", "metadata: {name: il, nmae: x}").Replace(ilBase)
	rs, err = api.Parse([]byte(typo), "typo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"metadata.nmae", "spec.dataset.trainProbability", "spec.trainSpec.template.spec.container", "spec.trainSpec.trigger.checkPeriod"}
	if !slices.Equal(rs[0].Unknown, want) {
		t.Fatalf("unknown %v, want %v", rs[0].Unknown, want)
	}
	for _, f := range want {
		if !slices.Contains(rs[0].Ignored, f) {
			t.Errorf("%s unknown but not ignored", f)
		}
	}
}

// TestSednaKindsNotRunYet: each kind Sedna defines that Sedna-Go does not
// run is refused with one line saying so and naming the kinds it runs,
// not as an unknown kind.
func TestSednaKindsNotRunYet(t *testing.T) {
	for _, k := range []string{"FeatureExtractionService", "ReidJob", "VideoAnalyticsJob", "ObjectSearchService", "ObjectTrackingService"} {
		_, err := api.Parse([]byte("apiVersion: sedna.io/v1alpha1\nkind: "+k+"\nmetadata: {name: x}\nspec: {}\n"), "k.yaml")
		if !errors.Is(err, api.ErrUnsupportedKind) || !errors.Is(err, api.ErrInvalid) || strings.Contains(err.Error(), "unknown kind") ||
			!strings.Contains(err.Error(), k+" is a Sedna kind that Sedna-Go does not run yet (it runs Dataset, Model, JointInferenceService") ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", k, err)
		}
	}
}

// everyField is one document per kind with every field Sedna's CRDs define.
const everyField = `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: d, namespace: default, labels: {a: b}, annotations: {a: b}, uid: x, resourceVersion: "1", generation: 1, creationTimestamp: null}
spec: {url: /a, format: txt, nodeName: e, credentialName: c}
status: {numberOfSamples: 3, updateTime: "2024-01-01T00:00:00Z"}
---
apiVersion: sedna.io/v1alpha1
kind: Model
metadata: {name: m}
spec: {url: /m, format: pb, credentialName: c, devices: [a], classes: [x], description: d, purpose: p, extra: [{name: A, value: b}]}
---
apiVersion: sedna.io/v1alpha1
kind: JointInferenceService
metadata: {name: ji}
spec:
  edgeWorker:
    model: {name: m}
    hardExampleMining: {name: IBT, parameters: [{key: threshold_img, value: "0.9"}]}
    hpa: {minReplicas: 1, maxReplicas: 2, metrics: [{type: Resource}], behavior: {scaleUp: {}}}
    template:
      metadata: {labels: {app: x}}
      spec:
        nodeName: e
        hostNetwork: true
        dnsPolicy: ClusterFirstWithHostNet
        tolerations: [{key: k}]
        volumes: [{name: v, hostPath: {path: /p}}]
        initContainers: [{name: i, image: x}]
        containers:
          - name: c
            image: x
            imagePullPolicy: IfNotPresent
            command: [a]
            args: [b]
            env: [{name: A, value: b}, {name: B, valueFrom: {secretKeyRef: {name: s, key: k}}}]
            envFrom: [{secretRef: {name: s}}]
            resources: {limits: {memory: 2Gi}, requests: {cpu: 100m}}
            volumeMounts: [{name: v, mountPath: /p}]
            ports: [{containerPort: 80}]
            securityContext: {privileged: false}
            workingDir: /w
  cloudWorker:
    model: {name: m}
    template: {spec: {nodeName: c, containers: [{image: x}]}}
---
apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: il}
spec:
  dataset: {name: d, trainProb: 0.8}
  initialModel: {name: m}
  credentialName: c
  outputDir: /o
  trainSpec:
    template: {spec: {nodeName: e, containers: [{image: x}]}}
    trigger: {checkPeriodSeconds: 60, timer: {start: "02:00", end: "04:00"}, condition: {operator: gt, threshold: 500, metric: num_of_samples}}
  evalSpec:
    template: {spec: {nodeName: e, containers: [{image: x}]}}
    initialEvalModel: {name: m}
  deploySpec:
    model: {name: m, hotUpdateEnabled: true, pollPeriodSeconds: 60}
    trigger: {condition: {operator: gt, threshold: 0.1, metric: "precision_delta[0]"}}
    hardExampleMining: {name: IBT, parameters: [{key: threshold_img, value: "0.9"}]}
    template: {spec: {nodeName: e, containers: [{image: x}]}}
---
apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: fl}
spec:
  aggregationWorker: {model: {name: m}, template: {spec: {nodeName: c, containers: [{image: x}]}}}
  trainingWorkers: [{dataset: {name: d}, template: {spec: {nodeName: e, containers: [{image: x}]}}}]
  pretrainedModel: {name: m}
  transmitter: {ws: {}, s3: {aggDataPath: s3://a, credentialName: c}}
---
apiVersion: sedna.io/v1alpha1
kind: LifelongLearningJob
metadata: {name: ll}
spec:
  dataset: {name: d, trainProb: 0.8}
  credentialName: c
  outputDir: /o
  trainSpec:
    template: {spec: {nodeName: e, containers: [{image: x}]}}
    trigger: {checkPeriodSeconds: 60, timer: {start: "02:00", end: "24:00"}, condition: {operator: ">", threshold: 500, metric: num_of_samples}}
  evalSpec: {template: {spec: {nodeName: e, containers: [{image: x}]}}}
  deploySpec: {template: {spec: {nodeName: e, containers: [{image: x}]}}}
`
