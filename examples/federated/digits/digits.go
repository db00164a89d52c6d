// Package digits is the federated learning example, the stand-in for
// Sedna's surface-defect one: the digits (or the shipped Fashion-MNIST
// subset) split non-IID over a fleet of edge nodes by a Dirichlet draw over
// labels, one CSV Dataset per node, an MLP trained by FedAvg, scored each
// round on a validation set kept in the cloud. It writes the files and the
// Sedna YAML; `sedna demo` and the tests run it.
package digits

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/partition"
)

// Options shape the example. The zero value is five nodes edge-0 to
// edge-4, digits, Dirichlet alpha 0.5, 30 rounds of FedAvg.
type Options struct {
	Job       string   // the job's name; default "digits-fl" ("fashion-fl")
	Namespace string   // default "default"
	Nodes     []string // the training nodes; default edge-0 ... edge-4
	// Dir holds the CSV files (one per node, and validation.csv); the
	// YAML names them by absolute path.
	Dir   string
	Alpha float64 // Dirichlet concentration over labels; default 0.5
	Seed  uint64  // the split's and the initial weights' seed; default 1
	// Rounds is exit_round; default 30.
	Rounds int
	// Aggregator and its parameters ("trim_ratio=0.1"); default FedAvg.
	Aggregator, AggregatorParams string
	// MinClients and RoundTimeout: defaults of the job (half the clients,
	// 2m) when empty.
	MinClients   int
	RoundTimeout string
	// Fashion uses the 14×14 Fashion-MNIST subset instead of the digits.
	Fashion bool
	// Extra env for the aggregation worker (SEDNA_FL_TARGET_ACCURACY, ...).
	Extra map[string]string
	// NoValidation leaves the validation set out (the job then needs
	// SEDNA_FL_INPUTS and SEDNA_FL_CLASSES in Extra).
	NoValidation bool
	// ModelDef is SEDNA_FL_MODEL; default Model().
	ModelDef string
	// BatchSize, Epochs and LearningRate of the training workers; default
	// the example's for its data set.
	BatchSize, Epochs int
	LearningRate      float64
}

func (o Options) withDefaults() Options {
	if o.Job == "" {
		o.Job = "digits-fl"
		if o.Fashion {
			o.Job = "fashion-fl"
		}
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if len(o.Nodes) == 0 {
		for i := range 5 {
			o.Nodes = append(o.Nodes, fmt.Sprintf("edge-%d", i))
		}
	}
	if o.Alpha == 0 {
		o.Alpha = 0.5
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Rounds == 0 {
		o.Rounds = 30
	}
	if o.Aggregator == "" {
		o.Aggregator = "FedAvg"
	}
	if o.BatchSize == 0 {
		o.BatchSize = map[bool]int{false: BatchSize, true: FashionBatchSize}[o.Fashion]
	}
	if o.Epochs == 0 {
		o.Epochs = map[bool]int{false: Epochs, true: FashionEpochs}[o.Fashion]
	}
	if o.LearningRate == 0 {
		o.LearningRate = map[bool]float64{false: LearningRate, true: FashionLearningRate}[o.Fashion]
	}
	return o
}

// Training settings of the example's workers on the digits: Sedna's
// batch_size, learning_rate and epochs, with momentum. The Fashion subset's
// are FashionBatchSize, FashionLearningRate and FashionEpochs.
const (
	BatchSize    = 16
	LearningRate = 0.1
	Momentum     = 0.9
	Epochs       = 2

	FashionBatchSize    = 32
	FashionLearningRate = 0.02
	FashionEpochs       = 1
)

// Model is the example's architecture (SEDNA_FL_MODEL).
func (o Options) Model() string {
	if o.ModelDef != "" {
		return o.ModelDef
	}
	if o.Fashion {
		return "mlp:64"
	}
	return "mlp:32"
}

// Data returns the training and test sets: the digits split 80/20 by
// class with the seed, or the Fashion subset's own split.
func Data(o Options) (train, test *datasets.Dataset, err error) {
	o = o.withDefaults()
	if o.Fashion {
		return datasets.FashionSubset()
	}
	d, err := datasets.Digits()
	if err != nil {
		return nil, nil, err
	}
	return d.Split(0.2, o.Seed)
}

// Partition splits the training set over the nodes (Dirichlet over labels).
func Partition(o Options, train *datasets.Dataset) ([]*datasets.Dataset, error) {
	o = o.withDefaults()
	parts, err := partition.Dirichlet(train.Y, len(o.Nodes), o.Alpha, o.Seed)
	if err != nil {
		return nil, err
	}
	out := make([]*datasets.Dataset, len(parts))
	for i, idx := range parts {
		if out[i], err = train.Subset(idx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CSVPath is where a node's Dataset file (or "validation") is.
func CSVPath(o Options, node string) string {
	o = o.withDefaults()
	return filepath.Join(o.Dir, o.Job+"-"+node+".csv")
}

// Write writes each node's part and the validation set as CSV files in
// o.Dir and returns the parts.
func Write(o Options) ([]*datasets.Dataset, error) {
	o = o.withDefaults()
	train, test, err := Data(o)
	if err != nil {
		return nil, err
	}
	parts, err := Partition(o, train)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	for i, n := range o.Nodes {
		if err := WriteCSV(CSVPath(o, n), parts[i]); err != nil {
			return nil, err
		}
	}
	return parts, WriteCSV(CSVPath(o, "validation"), test)
}

// WriteCSV writes d as a CSV file: a header, then label,features... per
// row (the format of the training workers' Datasets).
func WriteCSV(path string, d *datasets.Dataset) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString("label")
	for j := range d.Cols {
		fmt.Fprintf(w, ",f%d", j)
	}
	w.WriteByte('\n')
	for i := range d.Rows {
		w.WriteString(Line(d.Y[i], d.Row(i)))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Line is one sample as a Dataset line: label,features... (shortest
// decimals that read back to the same float32s).
func Line(label int, x []float32) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(label))
	for _, v := range x {
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	return b.String()
}

// YAML is the example's resources: a Dataset per node, the output Model
// and the FederatedLearningJob (its aggregation worker in the cloud).
func YAML(o Options) string {
	o = o.withDefaults()
	var b strings.Builder
	kind := "digits"
	if o.Fashion {
		kind = "Fashion-MNIST (14x14)"
	}
	fmt.Fprintf(&b, "# Federated learning on %s split non-IID (Dirichlet alpha %g) over %d nodes.\n", kind, o.Alpha, len(o.Nodes))
	fmt.Fprintf(&b, "# Written by: go run ./examples/federated/setup\n---\n")
	for _, n := range o.Nodes {
		fmt.Fprintf(&b, `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata:
  name: %s-%s
  namespace: %s
spec:
  url: %q
  format: csv
  nodeName: %s
---
`, o.Job, n, o.Namespace, CSVPath(o, n), n)
	}
	fmt.Fprintf(&b, `apiVersion: sedna.io/v1alpha1
kind: Model
metadata:
  name: %s-model
  namespace: %s
spec:
  url: "push://%s/%s-model"
  format: sedna-ml
---
apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata:
  name: %s
  namespace: %s
spec:
  aggregationWorker:
    model:
      name: %s-model
    template:
      spec:
        nodeName: cloud
        containers:
          - name: agg-worker
            image: sedna-go/builtin
            env:
              - name: exit_round
                value: "%d"
              - name: SEDNA_FL_AGGREGATOR
                value: %s
              - name: SEDNA_FL_MODEL
                value: %q
              - name: SEDNA_FL_SEED
                value: "%d"
`, o.Job, o.Namespace, o.Namespace, o.Job, o.Job, o.Namespace, o.Job, o.Rounds, o.Aggregator, o.Model(), o.Seed)
	env := map[string]string{}
	if !o.NoValidation {
		env["SEDNA_FL_VALIDATION"] = CSVPath(o, "validation")
	}
	if o.AggregatorParams != "" {
		env["SEDNA_FL_AGGREGATOR_PARAMS"] = o.AggregatorParams
	}
	if o.MinClients > 0 {
		env["SEDNA_FL_MIN_CLIENTS"] = strconv.Itoa(o.MinClients)
	}
	if o.RoundTimeout != "" {
		env["SEDNA_FL_ROUND_TIMEOUT"] = o.RoundTimeout
	}
	for k, v := range o.Extra {
		env[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "              - name: %s\n                value: %q\n", k, env[k])
	}
	b.WriteString("  trainingWorkers:\n")
	for _, n := range o.Nodes {
		fmt.Fprintf(&b, `    - dataset:
        name: %s-%s
      template:
        spec:
          nodeName: %s
          containers:
            - name: train-worker
              image: sedna-go/builtin
              env:
                - name: batch_size
                  value: "%d"
                - name: learning_rate
                  value: "%g"
                - name: epochs
                  value: "%d"
                - name: SEDNA_FL_MOMENTUM
                  value: "%g"
`, o.Job, n, n, o.BatchSize, o.LearningRate, o.Epochs, Momentum)
	}
	return b.String()
}

// Centralized trains the example's model on all the training data in one
// place, with the workers' settings, for as many passes over the data as
// the federated job makes (rounds × epochs), and returns its accuracy on
// the test set: what federated learning is measured against.
func Centralized(ctx context.Context, o Options) (float64, error) {
	o = o.withDefaults()
	train, test, err := Data(o)
	if err != nil {
		return 0, err
	}
	m, err := NewModel(o, train.Cols, len(train.Classes))
	if err != nil {
		return 0, err
	}
	err = m.Fit(ctx, train.X, train.Y, ml.FitOptions{Epochs: o.Rounds * o.Epochs, BatchSize: o.BatchSize, LearningRate: float32(o.LearningRate),
		Momentum: Momentum, Seed: o.Seed})
	if err != nil {
		return 0, err
	}
	ev, err := ml.Evaluate(m, test.X, test.Y)
	return ev.Accuracy, err
}

// NewModel is the example's initial model (as the aggregation worker makes
// it from SEDNA_FL_MODEL and SEDNA_FL_SEED).
func NewModel(o Options, inputs, classes int) (*ml.Network, error) {
	o = o.withDefaults()
	hidden := 32
	if o.Fashion {
		hidden = 64
	}
	return ml.NewMLP(inputs, []int{hidden}, classes, o.Seed)
}
