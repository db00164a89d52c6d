package lifelong

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/paradigm"
)

// Paradigm is lifelong learning as the runtime runs it, on incremental
// learning's engine (incremental.Flavour): the stage machine at the node
// of the job's Dataset, Train and Eval where their templates place them
// (the Dataset's node: its samples stay there), each deploy registering
// the knowledge base as a version of the Model JOB-kb, and the inference
// worker at the edge answering each sample with its task's model and
// keeping the samples of unseen tasks for labelling.
type Paradigm struct{}

var _ paradigm.Paradigm = Paradigm{}

// Kind is api.KindLifelongLearningJob.
func (Paradigm) Kind() string { return api.KindLifelongLearningJob }

// Name is "ll".
func (Paradigm) Name() string { return "ll" }

// View: the inference worker decides whether the job runs.
func (Paradigm) View() paradigm.View { return paradigm.View{Deciders: []string{"deploy"}} }

// Edge runs the node's controllers and workers. A template with a
// command is an external worker under incremental learning's drivers: a
// train or eval command runs once per attempt of its stage with the
// Dataset's samples and the labelled examples as CSV and the knowledge
// base in its encoding (MODEL_FORMAT sedna-kb); an inference command
// answers devices with the knowledge base and publishes what it answered
// for the node to keep the samples of unseen tasks (docs/WORKERS.md).
func (Paradigm) Edge(env paradigm.Env) (paradigm.Half, error) {
	return Flavour.EdgeHalf(env)
}

// Cloud runs the labelling and the stages, and answers `sedna kb`.
func (Paradigm) Cloud(env paradigm.Env) (paradigm.Half, error) {
	h, err := Flavour.CloudHalf(env)
	if err != nil {
		return h, err
	}
	for name, op := range ops(env) {
		h.Ops[name] = op
	}
	return h, nil
}

// Flavour is lifelong learning's flavour of the incremental engine.
var Flavour = incremental.Flavour{Kind: api.KindLifelongLearningJob, Prefix: "ll", Source: "lifelong", Kept: "unseenSamples", Job: jobSpec}

// InputTopic and ResultTopic are a job's topics on its inference node:
// devices publish samples (a jointinference.Request with Attr, the
// sample's task attribute, and Stream, its sensor) and read the answers
// (with Task and Unseen).
func InputTopic(namespace, name string) string  { return "ll/" + namespace + "/" + name + "/input" }
func ResultTopic(namespace, name string) string { return "ll/" + namespace + "/" + name + "/result" }

// ConfigOf reads a knowledge base's settings from the train template's
// env (Sedna's names): task_definition (attribute, Sedna's
// TaskDefinitionByDataAttr, the default; or cluster,
// TaskDefinitionByCluster), hidden ("32" or "64,32"), epochs,
// batch_size, learning_rate, max_tasks, min_task_samples,
// unseen_window, unseen_quantile, seed. Dim and Classes come from the
// data.
func ConfigOf(params map[string]string) (Config, error) {
	cfg := Config{Method: ByAttribute, Seed: 1}
	switch strings.ToLower(params["task_definition"]) {
	case "", "attribute", "taskdefinitionbydataattr":
	case "cluster", "clustering", "taskdefinitionbycluster":
		cfg.Method = ByCluster
	default:
		return cfg, fmt.Errorf("task_definition=%q: want attribute or cluster", params["task_definition"])
	}
	if v := params["hidden"]; v != "" {
		cfg.Hidden = []int{}
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 4096 {
				return cfg, fmt.Errorf("hidden=%q: want layer sizes from 1 to 4096, comma-separated", v)
			}
			cfg.Hidden = append(cfg.Hidden, n)
		}
	}
	for _, p := range []struct {
		key    string
		lo, hi int
		dst    *int
	}{{"max_tasks", 1, 64, &cfg.MaxTasks},
		{"min_task_samples", 1, 1 << 20, &cfg.MinTaskSamples}, {"unseen_window", 1, 1000, &cfg.Window}} {
		if v := params[p.key]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < p.lo || n > p.hi {
				return cfg, fmt.Errorf("%s=%q: want %d to %d", p.key, v, p.lo, p.hi)
			}
			*p.dst = n
		}
	}
	for _, p := range []struct {
		key    string
		lo, hi float64
		dst    *float64
	}{{"unseen_quantile", 0, 0.5, &cfg.UnseenQuantile}} {
		if v := params[p.key]; v != "" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || !(x > p.lo && x < p.hi) {
				return cfg, fmt.Errorf("%s=%q: want a number in (%g, %g)", p.key, v, p.lo, p.hi)
			}
			*p.dst = x
		}
	}
	// epochs, batch_size and learning_rate read as incremental learning
	// reads them; the knowledge base's own defaults stand where unset.
	fit, err := incremental.FitOf(params)
	if err != nil {
		return cfg, err
	}
	if params["epochs"] != "" {
		cfg.Epochs = fit.Epochs
	}
	if params["batch_size"] != "" {
		cfg.BatchSize = fit.BatchSize
	}
	if params["learning_rate"] != "" {
		cfg.LearningRate = fit.LearningRate
	}
	if v := params["seed"]; v != "" {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cfg, fmt.Errorf("seed=%q: want a whole number", v)
		}
		cfg.Seed = x
	}
	return cfg, nil
}

func envOf(t api.PodTemplate) map[string]string {
	out := map[string]string{}
	if cs := t.Spec.Containers; len(cs) > 0 {
		for _, e := range cs[0].Env {
			out[e.Name] = e.Value
		}
	}
	return out
}

func jobSpec(res *api.Resource) (incremental.JobSpec, error) {
	s, ok := res.Spec.(*api.LifelongLearningJobSpec)
	if !ok {
		return incremental.JobSpec{}, fmt.Errorf("lifelong: a %s, not a LifelongLearningJob", res.Kind)
	}
	cfg, err := ConfigOf(envOf(s.TrainSpec.Template))
	if err != nil {
		return incremental.JobSpec{}, fmt.Errorf("lifelong: spec.trainSpec.template: %w", err)
	}
	cols := ColumnsOf(envOf(s.TrainSpec.Template))
	trainProb := s.Dataset.TrainProb
	if trainProb == 0 {
		trainProb = 0.8
	}
	ns, dataset := res.Metadata.Namespace, s.Dataset.Name
	return incremental.JobSpec{Dataset: dataset, TrainProb: s.Dataset.TrainProb, Deploy: api.KnowledgeBaseModel(res.Metadata.Name),
		TrainTemplate: s.TrainSpec.Template, EvalTemplate: s.EvalSpec.Template, DeployTemplate: s.DeploySpec.Template,
		TrainTrigger: s.TrainSpec.Trigger, HotUpdate: true, External: true, Judges: true,
		Learner: func(env paradigm.Env) (incremental.Learner, error) {
			return &learner{env: env, namespace: ns, dataset: dataset, trainProb: trainProb, cfg: cfg, cols: cols}, nil
		}}, nil
}
