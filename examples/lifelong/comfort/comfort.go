// Package comfort is the lifelong learning example's data and resources:
// thermal-comfort surveys from the ml/comfort generator (ISO 7730 PMV,
// occupants of a climate, season and building type), a Dataset of tasks
// A, B and C on a node, a task D that arrives later, and the
// LifelongLearningJob that learns them, in Sedna's shape.
package comfort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/lifelong"
	mlcomfort "github.com/sedna-go/sedna/ml/comfort"
)

// The example's tasks: A, B and C are in the Dataset from the start; D
// (cold summer, naturally ventilated) comes later, unseen.
const (
	TaskA = "tropical-summer-nv"
	TaskB = "temperate-summer-ac"
	TaskC = "cold-winter-nv"
	TaskD = "cold-summer-nv"
)

// Options are the example's settings.
type Options struct {
	Job       string // default "comfort-ll"
	Namespace string // default "default"
	// Node holds the Dataset and trains and evaluates (its samples stay
	// there); InferNode runs the inference worker (default Node).
	Node, InferNode string
	// Dir is where the Dataset's file is written (absolute, as the node
	// sees it).
	Dir string
	// PerTask is how many surveys of each task the Dataset starts with
	// (default 600); TrainAfter the new samples that start a training
	// (num_of_samples, default 500).
	PerTask, TrainAfter int
	// Cluster defines tasks by clustering instead of the attribute.
	Cluster bool
	// Epochs fit each task's model (default 30).
	Epochs int
}

// WithDefaults fills in what is not set.
func (o Options) WithDefaults() Options {
	if o.Job == "" {
		o.Job = "comfort-ll"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Node == "" {
		o.Node = "edge1"
	}
	if o.InferNode == "" {
		o.InferNode = o.Node
	}
	if o.PerTask <= 0 {
		o.PerTask = 600
	}
	if o.TrainAfter <= 0 {
		o.TrainAfter = 500
	}
	if o.Epochs <= 0 {
		o.Epochs = 30
	}
	return o
}

// DatasetFile is the Dataset's file: a CSV whose first line names the
// columns (preference, task, then the features; the job names the first
// two as its label and attribute), then one survey per line.
func (o Options) DatasetFile() string {
	return filepath.Join(o.Dir, o.WithDefaults().Job+"-surveys.csv")
}

// Samples draws n surveys of a task (its name as their attribute).
func Samples(task string, n int, seed uint64) ([]lifelong.Sample, error) {
	t, err := mlcomfort.ParseTask(task)
	if err != nil {
		return nil, err
	}
	raw, err := mlcomfort.Generate(t, n, seed)
	if err != nil {
		return nil, err
	}
	out := make([]lifelong.Sample, n)
	for i, s := range raw {
		out[i] = lifelong.Sample{X: s.Features(), Y: int(s.Preference), Attr: task}
	}
	return out, nil
}

// Write creates the Dataset's file with PerTask surveys of A, B and C.
func Write(o Options) error {
	o = o.WithDefaults()
	if o.Dir == "" {
		return errors.New("comfort: no directory for the Dataset's file")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("preference,task," + strings.ReplaceAll(strings.Join(mlcomfort.FeatureNames, ","), " ", "_") + "\n")
	for i, task := range []string{TaskA, TaskB, TaskC} {
		ss, err := Samples(task, o.PerTask, uint64(100+i))
		if err != nil {
			return err
		}
		for _, s := range ss {
			b.WriteString(lifelong.FormatSample(s) + "\n")
		}
	}
	return os.WriteFile(o.DatasetFile(), []byte(b.String()), 0o644)
}

// Append adds n surveys of a task to the Dataset's file, as a building's
// survey arriving does: the node reads the new lines.
func Append(o Options, task string, n int, seed uint64) error {
	ss, err := Samples(task, n, seed)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(o.DatasetFile(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(lifelong.FormatSample(s) + "\n")
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// YAML is the example's resources: the Dataset on Node and the
// LifelongLearningJob, in Sedna's shape.
func YAML(o Options) string {
	o = o.WithDefaults()
	method := "attribute"
	if o.Cluster {
		method = "cluster"
	}
	abs, _ := filepath.Abs(o.DatasetFile())
	r := strings.NewReplacer("{job}", o.Job, "{ns}", o.Namespace, "{node}", o.Node, "{infer}", o.InferNode, "{file}", abs,
		"{after}", strconv.Itoa(o.TrainAfter), "{epochs}", strconv.Itoa(o.Epochs), "{method}", method)
	return r.Replace(`apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: {job}-surveys, namespace: {ns}}
spec: {url: "{file}", format: csv, nodeName: {node}}
---
apiVersion: sedna.io/v1alpha1
kind: LifelongLearningJob
metadata: {name: {job}, namespace: {ns}}
spec:
  dataset: {name: {job}-surveys, trainProb: 0.8}
  trainSpec:
    template:
      spec:
        nodeName: {node}
        containers:
          - name: train
            env:
              - {name: task_definition, value: {method}}
              - {name: label, value: preference}
              - {name: attributes, value: task}
              - {name: epochs, value: "{epochs}"}
    trigger:
      checkPeriodSeconds: 1
      condition: {operator: ">=", threshold: {after}, metric: num_of_samples}
  evalSpec:
    template: {spec: {nodeName: {node}, containers: [{name: eval}]}}
  deploySpec:
    template: {spec: {nodeName: {infer}, containers: [{name: infer}]}}
`)
}

// Request is a survey as a building's sensor sends it to the job's
// inference worker: its features, its task attribute (unless clustering
// defines the tasks), its stream (the sensor), its ID.
func Request(s lifelong.Sample, id, stream string, withAttr bool) jointinference.Request {
	r := jointinference.Request{ID: id, Values: s.X, Shape: []int{len(s.X)}, DType: jointinference.DTypeF32, Stream: stream}
	if withAttr {
		r.Attr = s.Attr
	}
	return r
}

// Oracle labels a sample by its ID, prefix followed by its index in
// samples, as a person who knows the truth would.
func Oracle(samples []lifelong.Sample, prefix string) func(id string) (int, bool) {
	return func(id string) (int, bool) {
		rest, ok := strings.CutPrefix(id, prefix)
		if !ok {
			return 0, false
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i >= len(samples) {
			return 0, false
		}
		return samples[i].Y, true
	}
}

// Labels is Oracle as a labelling tool (incremental.Labeller): given what
// the cloud announces on the job's waiting topic, the JSON label to
// publish on its label topic.
func Labels(samples []lifelong.Sample, prefix string) func(waiting []byte) (label []byte, ok bool) {
	return incremental.Labeller(Oracle(samples, prefix))
}

// Describe is a line about the tasks, for logs.
func Describe() string {
	return fmt.Sprintf("A %s, B %s, C %s in the Dataset; D %s later", TaskA, TaskB, TaskC, TaskD)
}
