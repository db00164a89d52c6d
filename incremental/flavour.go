package incremental

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
)

// Flavour is a kind of learning job the engine of this package runs:
// the stage machine at the node of the job's Dataset, the stages, the
// labelling, the inference worker and its pool. Incremental learning is
// one (Incremental); lifelong learning (package lifelong) is another,
// whose models are knowledge bases.
type Flavour struct {
	// Kind is the jobs' kind; Prefix starts their devices' topics
	// ("il": il/{ns}/{job}/input); Source names the flavour in the
	// messages it sends and the logs.
	Kind, Prefix, Source string
	// Kept names, in the inference worker's metrics, the samples it kept
	// for labelling (default "hardExamples").
	Kept string
	// Job reads a job's spec.
	Job func(res *api.Resource) (JobSpec, error)
}

// JobSpec is what the engine reads of a job's spec.
type JobSpec struct {
	Dataset   string
	TrainProb float64 // 0: Sedna's default, 0.8
	// Initial is the model that serves before the first deploy ("": none,
	// the inference worker waits for the first); Deploy the model each
	// deploy registers a version of.
	Initial, Deploy                             string
	TrainTemplate, EvalTemplate, DeployTemplate api.PodTemplate
	TrainTrigger                                api.Trigger
	DeployTrigger                               *api.Trigger
	Stop                                        *api.StopCondition
	// Mining is the deploy's hard-example miner (nil: none; Learner
	// decides what the worker keeps).
	Mining      *api.HardExampleMining
	HotUpdate   bool
	PollSeconds int
	// Learner makes the job's learner on a side; nil is a network of the
	// deploy template's task (classification or detection).
	Learner func(env paradigm.Env) (Learner, error)
	// External says whether templates with a command (external workers)
	// may run the job's stages and inference.
	External bool
	// Judges says that the job's served models judge which samples to
	// keep (Served.Answer's keep: a lifelong job's unseen tasks), for the
	// samples an external inference worker answered too.
	Judges bool
}

// Learner is what a job's models are to the stages and the inference
// worker. Models travel as bytes: the registry's versions.
type Learner interface {
	// Learn trains a model on set, starting from base (nil before the
	// job has a model).
	Learn(ctx context.Context, base []byte, set TrainSet, fit Fit) ([]byte, error)
	// Score measures a model on examples; info describes it (a candidate
	// is described as the model it stands in for).
	Score(model []byte, info paradigm.ModelInfo, examples []Example) (Metrics, error)
	// Fits checks that a model trained elsewhere (on a node, by an
	// external worker) can stand in for base, which info describes.
	Fits(base, model []byte, info paradigm.ModelInfo) error
	// Serve loads a model for the inference worker, as its Model
	// describes it (format, an ONNX graph's declarations).
	Serve(model []byte, info paradigm.ModelInfo) (Served, error)
}

// ExternalData is a Learner that shapes what the job's external train
// and eval workers get (a lifelong job's: its knowledge bases, and its
// Dataset's samples beside the labelled examples, as CSV).
type ExternalData interface {
	// ModelFormat is MODEL_FORMAT for the job's models.
	ModelFormat() string
	// WriteSet writes the data set of a train (train true) or an eval
	// attempt in dir, named after stem, given the job's labelled
	// examples of it; it returns the file's path.
	WriteSet(dir, stem string, train bool, examples []Example) (string, error)
}

// Describer is a Learner that describes a deployed model for the job's
// status: labelled and waiting count the job's labelled examples and
// those that wait for a label.
type Describer interface {
	Describe(model []byte, labelled, waiting int64) (json.RawMessage, error)
}

// Served is a model the inference worker answers with; Answer may be
// called from one goroutine at a time.
type Served interface {
	// Answer answers one sample (req, its values x) into res. batch is
	// what the job's miner judges (empty when the learner judges itself);
	// keep says the sample is to be kept for labelling whatever the miner
	// says (a lifelong job's unseen task), with score.
	Answer(req jointinference.Request, x []float32, res *jointinference.Result) (batch plugins.Batch, keep bool, score float64, err error)
}

// networkLearner is incremental learning's: one network of the task.
type networkLearner struct{ task jointinference.Task }

func (l networkLearner) Learn(ctx context.Context, base []byte, set TrainSet, fit Fit) ([]byte, error) {
	if base == nil {
		return nil, fmt.Errorf("incremental: no serving model to train from")
	}
	if !ml.IsSedna(base) {
		return nil, fmt.Errorf("incremental: the serving model is not of the learning substrate's format (an ONNX model, say): the built-in training trains those only; give the train template a command, a worker of the model's framework (docs/WORKERS.md)")
	}
	b, err := ml.Unmarshal(base)
	if err != nil {
		return nil, fmt.Errorf("the serving model: %w", err)
	}
	m, err := Learn(ctx, l.task, b, set, fit)
	if err != nil {
		return nil, err
	}
	return m.MarshalBinary()
}

func (l networkLearner) Score(model []byte, info paradigm.ModelInfo, examples []Example) (Metrics, error) {
	m, err := paradigm.LoadPredictor(model, info)
	if err != nil {
		return nil, err
	}
	return Score(l.task, m, examples)
}

// Fits checks a model of the learning substrate by its shape, and a
// model of another format (ONNX) by loading it as base is described: the
// same inputs and classes.
func (networkLearner) Fits(base, model []byte, info paradigm.ModelInfo) error {
	if ml.IsSedna(base) {
		return sameShape(base, model)
	}
	b, err := paradigm.LoadPredictor(base, info)
	if err != nil {
		return fmt.Errorf("the serving model: %w", err)
	}
	m, err := paradigm.LoadPredictor(model, info)
	if err != nil {
		return err
	}
	if m.Inputs() != b.Inputs() || m.Classes() != b.Classes() {
		return fmt.Errorf("it takes %d inputs to %d classes; the serving model %d to %d", m.Inputs(), m.Classes(), b.Inputs(), b.Classes())
	}
	return nil
}

// Serve loads a model of the learning substrate or an ONNX model
// (paradigm.LoadPredictor).
func (l networkLearner) Serve(model []byte, info paradigm.ModelInfo) (Served, error) {
	m, err := paradigm.LoadPredictor(model, info)
	if err != nil {
		return nil, err
	}
	return &servedNetwork{net: m, task: l.task}, nil
}

// Incremental is incremental learning's flavour.
var Incremental = Flavour{Kind: api.KindIncrementalLearningJob, Prefix: "il", Source: "incremental", Job: incrementalSpec}

func incrementalSpec(res *api.Resource) (JobSpec, error) {
	s, ok := res.Spec.(*api.IncrementalLearningJobSpec)
	if !ok {
		return JobSpec{}, fmt.Errorf("incremental: a %s, not an IncrementalLearningJob", res.Kind)
	}
	return JobSpec{Dataset: s.Dataset.Name, TrainProb: s.Dataset.TrainProb, Initial: s.InitialModel.Name, Deploy: s.DeploySpec.Model.Name,
		TrainTemplate: s.TrainSpec.Template, EvalTemplate: s.EvalSpec.Template, DeployTemplate: s.DeploySpec.Template,
		TrainTrigger: s.TrainSpec.Trigger, DeployTrigger: s.DeploySpec.Trigger, Stop: s.StopCondition,
		Mining: s.DeploySpec.HardExampleMining, HotUpdate: s.DeploySpec.Model.HotUpdateEnabled, PollSeconds: s.DeploySpec.Model.PollPeriodSeconds,
		External: true}, nil
}
