// Package drift is the incremental learning example, the stand-in for
// Sedna's helmet-detection one: a camera whose Fashion-MNIST frames drift
// (shifted, dimmer, noisier than the images the initial model learnt), an
// initial model trained on the original images, hard examples mined at the
// edge by the CrossEntropy miner, labelled (by a person with `sedna label`,
// or by an oracle that knows the stream's labels), fine-tuned in the cloud
// with earlier examples replayed, and deployed when the accuracy rises. It
// writes the Dataset's file and the Sedna YAML; `sedna demo`, the
// simulator and the tests run it.
package drift

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
)

// Options shape the example. The zero value is the job "fashion-il" on
// node edge1, training once 150 examples are labelled, deploying when the
// accuracy rises by 2 points, until deleted.
type Options struct {
	Job       string // default "fashion-il"
	Namespace string // default "default"
	Node      string // the camera's node: the Dataset and the inference worker; default "edge1"
	// Cloud is the node the training and evaluation run on; default
	// "cloud" (the cloud manager's name).
	Cloud string
	// Dir is where the Dataset's file is, on Node (the YAML names it by
	// absolute path).
	Dir string
	// TrainAfter is the num_of_samples the train trigger needs (labelled
	// examples since the last training); default 150.
	TrainAfter int
	// DeployDelta is the accuracy_delta the deploy trigger needs (the new
	// model's accuracy minus the serving one's, on the eval set); default
	// 0.02.
	DeployDelta float64
	// MaxCycles stops the job after that many cycles (0: it runs until
	// deleted).
	MaxCycles int
	// Epochs of each fine-tuning; default 30.
	Epochs int
	// Threshold is the CrossEntropy miner's threshold_cross_entropy;
	// default 0.9.
	Threshold string
	// Restart, when set, turns hot update off: the inference worker
	// restarts with each model deployed.
	Restart bool
	// Worker, when set, is the program the train, eval and deploy
	// templates run (an external worker such as
	// examples/incremental/worker, by absolute path); empty, they run
	// the built-in workers.
	Worker string
}

// WithDefaults fills what o leaves empty.
func (o Options) WithDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Job, "fashion-il")
	def(&o.Namespace, "default")
	def(&o.Node, "edge1")
	def(&o.Cloud, "cloud")
	def(&o.Threshold, "0.9")
	if o.TrainAfter == 0 {
		o.TrainAfter = 150
	}
	if o.DeployDelta == 0 {
		o.DeployDelta = 0.02
	}
	if o.Epochs == 0 {
		o.Epochs = 30
	}
	return o
}

// InitialModel and DeployModel are the Models of the job: the one that
// serves first, and the one each deploy makes a version of.
func (o Options) InitialModel() string { return o.WithDefaults().Job + "-initial" }

// DeployModel is the Model each deployed cycle makes a version of.
func (o Options) DeployModel() string { return o.WithDefaults().Job + "-model" }

// DatasetFile is the Dataset's file on the node.
func (o Options) DatasetFile() string {
	return filepath.Join(o.Dir, o.WithDefaults().Job+"-samples.txt")
}

// Camera is how the camera's frames differ from the images the initial
// model learnt: shifted by 2 and 1 pixels, 40% dimmer on a raised black,
// with noise.
var Camera = datasets.Drift{ShiftX: 2, ShiftY: 1, Gain: 0.6, Offset: 0.25, Noise: 0.08, Seed: 7}

// Data returns the original images the initial model learns (the first
// 4,000 of the training subset), the camera's stream (the other 16,000,
// drifted) and a held-out drifted set to score on (the test subset,
// drifted), with the original test images.
func Data() (base, stream, drifted, original *datasets.Dataset, err error) {
	train, test, err := datasets.FashionSubset()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	idx := func(lo, hi int) []int {
		out := make([]int, hi-lo)
		for i := range out {
			out[i] = lo + i
		}
		return out
	}
	if base, err = train.Subset(idx(0, 4000)); err != nil {
		return nil, nil, nil, nil, err
	}
	rest, err := train.Subset(idx(4000, train.Rows))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if stream, err = rest.Drifted(Camera); err != nil {
		return nil, nil, nil, nil, err
	}
	if drifted, err = test.Drifted(Camera); err != nil {
		return nil, nil, nil, nil, err
	}
	return base, stream, drifted, test, nil
}

// TrainInitial trains the initial model (an MLP with 64 hidden units) on
// the original images, with a fixed seed.
func TrainInitial(ctx context.Context, base *datasets.Dataset) (*ml.Network, error) {
	m, err := ml.NewMLP(base.Cols, []int{64}, len(base.Classes), 1)
	if err != nil {
		return nil, err
	}
	if err := m.Fit(ctx, base.X, base.Y, ml.FitOptions{Epochs: 5, Optimizer: ml.Adam, Seed: 1}); err != nil {
		return nil, fmt.Errorf("drift: initial model: %w", err)
	}
	return m, nil
}

// Write creates the Dataset's file (empty: the job's samples are the
// labelled hard examples) in o.Dir.
func Write(o Options) error {
	if o.Dir == "" {
		return fmt.Errorf("drift: no directory for the Dataset's file")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	f := o.DatasetFile()
	if _, err := os.Stat(f); err == nil {
		return nil
	}
	return os.WriteFile(f, nil, 0o644)
}

// YAML is the example's resources: the Dataset on the camera's node, the
// two Models (the initial one pushed with `sedna model push`) and the
// IncrementalLearningJob, in Sedna's shape.
func YAML(o Options) string {
	o = o.WithDefaults()
	stop := ""
	if o.MaxCycles > 0 {
		stop = fmt.Sprintf("  stopCondition: {maxCycles: %d}\n", o.MaxCycles)
	}
	abs, _ := filepath.Abs(o.DatasetFile())
	r := strings.NewReplacer("{job}", o.Job, "{ns}", o.Namespace, "{node}", o.Node, "{cloud}", o.Cloud, "{file}", abs,
		"{after}", strconv.Itoa(o.TrainAfter), "{delta}", strconv.FormatFloat(o.DeployDelta, 'g', -1, 64),
		"{epochs}", strconv.Itoa(o.Epochs), "{threshold}", o.Threshold, "{initial}", o.InitialModel(), "{model}", o.DeployModel(),
		"{stop}", stop, "{cmd}", command(o.Worker), "{hot}", strconv.FormatBool(!o.Restart))
	return r.Replace(`apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: {job}-samples, namespace: {ns}}
spec: {url: "{file}", format: txt, nodeName: {node}}
---
apiVersion: sedna.io/v1alpha1
kind: Model
metadata: {name: {initial}, namespace: {ns}}
spec: {url: {initial}.bin, format: sedna-ml}
---
apiVersion: sedna.io/v1alpha1
kind: Model
metadata: {name: {model}, namespace: {ns}}
spec: {url: {model}.bin, format: sedna-ml}
---
apiVersion: sedna.io/v1alpha1
kind: IncrementalLearningJob
metadata: {name: {job}, namespace: {ns}}
spec:
  initialModel: {name: {initial}}
  dataset: {name: {job}-samples, trainProb: 0.8}
  trainSpec:
    template:
      spec:
        nodeName: {cloud}
        containers: [{name: train, {cmd}env: [{name: epochs, value: "{epochs}"}]}]
    trigger:
      checkPeriodSeconds: 1
      condition: {operator: ">=", threshold: {after}, metric: num_of_samples}
  evalSpec:
    template: {spec: {nodeName: {cloud}, containers: [{name: eval, {cmd}}]}}
  deploySpec:
    model: {name: {model}, hotUpdateEnabled: {hot}, pollPeriodSeconds: 1}
    trigger:
      condition: {operator: ">", threshold: {delta}, metric: accuracy_delta}
    hardExampleMining:
      name: CrossEntropy
      parameters: [{key: threshold_cross_entropy, value: "{threshold}"}]
    template: {spec: {nodeName: {node}, containers: [{name: infer, {cmd}}]}}
{stop}`)
}

// command is a container's command field for the program worker ("" for
// none: the built-in).
func command(worker string) string {
	if worker == "" {
		return ""
	}
	return fmt.Sprintf("command: [%q], ", worker)
}

// Request is frame i of a set as the camera sends it (joint inference's
// request format, 14×14 bytes), its ID prefix+i.
func Request(d *datasets.Dataset, i int, prefix string) jointinference.Request {
	row := d.Row(i)
	b := make([]byte, len(row))
	for j, v := range row {
		b[j] = byte(min(max(v, 0), 1)*255 + 0.5)
	}
	return jointinference.Request{ID: prefix + strconv.Itoa(i), Shape: []int{d.Height, d.Width}, Data: b}
}

// Oracle labels a frame of d by its ID (prefix+index), as a person who
// knows the stream would; ok is false for an ID it did not send.
func Oracle(d *datasets.Dataset, prefix string) func(id string) (label int, ok bool) {
	return func(id string) (int, bool) {
		s, ok := strings.CutPrefix(id, prefix)
		if !ok {
			return 0, false
		}
		i, err := strconv.Atoi(s)
		if err != nil || i < 0 || i >= d.Rows {
			return 0, false
		}
		return d.Y[i], true
	}
}

// Labels is Oracle as a labelling tool: given what the cloud announces on
// a job's waiting topic (incremental.WaitingTopic), the JSON label to
// publish on its label topic; ok is false for what it cannot label.
func Labels(d *datasets.Dataset, prefix string) func(waiting []byte) (label []byte, ok bool) {
	return incremental.Labeller(Oracle(d, prefix))
}
