package federated

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/workers"
)

// Parameters of the aggregation worker, from its template's env: Sedna's
// exit_round, and ours beside it.
const (
	ParamExitRound         = "exit_round"                 // rounds to run; default 10
	ParamAggregator        = "SEDNA_FL_AGGREGATOR"        // aggregator plugin; default FedAvg
	ParamAggregatorParams  = "SEDNA_FL_AGGREGATOR_PARAMS" // its parameters, "key=value,key=value"
	ParamMinClients        = "SEDNA_FL_MIN_CLIENTS"       // updates a round needs at its deadline; default half the training workers, rounded up
	ParamRoundTimeout      = "SEDNA_FL_ROUND_TIMEOUT"     // a round's deadline; default 2m
	ParamTargetAccuracy    = "SEDNA_FL_TARGET_ACCURACY"   // stop once validation accuracy reaches it (0 to 1); default none
	ParamPatience          = "SEDNA_FL_PATIENCE"          // stop after this many rounds without a better validation accuracy; default none
	ParamModel             = "SEDNA_FL_MODEL"             // architecture without a pretrainedModel: "softmax", "mlp:32", "mlp:64,32"; default mlp:32
	ParamInputs            = "SEDNA_FL_INPUTS"            // features per sample; default from the validation set, the aggregationWorker.model or the training Datasets
	ParamClasses           = "SEDNA_FL_CLASSES"           // classes; default from the validation set, the aggregationWorker.model or the training Datasets
	ParamValidation        = "SEDNA_FL_VALIDATION"        // a CSV file on the cloud (label,features...) to score each round on
	ParamSeed              = "SEDNA_FL_SEED"              // seed of the initial weights; default 1
	ParamChunkBytes        = "SEDNA_FL_CHUNK_BYTES"       // largest piece of a global model in one message; default 256 KiB
	defaultRounds          = 10
	defaultRoundTimeout    = 2 * time.Minute
	defaultChunkBytes      = 256 << 10
	maxChunkBytes          = 384 << 10 // a piece must fit in one write of an edge node's store (its queue, its inbox): a few hundred KiB
	minChunkBytes          = 4 << 10
	defaultModelDefinition = "mlp:32"
)

// Parameters of a training worker, from its template's env: Sedna's
// batch_size, learning_rate and epochs, and ours beside them.
const (
	ParamBatchSize    = "batch_size"         // default 32
	ParamLearningRate = "learning_rate"      // default 0.05 for SGD, 0.001 for Adam
	ParamEpochs       = "epochs"             // local epochs per round; default 1
	ParamOptimizer    = "SEDNA_FL_OPTIMIZER" // sgd or adam; default sgd
	ParamMomentum     = "SEDNA_FL_MOMENTUM"  // SGD's momentum in [0, 1); default 0
)

// aggConfig is the aggregation worker's configuration.
type aggConfig struct {
	rounds      int64
	aggregator  string
	aggParams   map[string]string
	minClients  int
	timeout     time.Duration
	target      float64
	patience    int
	model       string
	inputs      int
	classes     int
	validation  string
	seed        uint64
	chunkBytes  int
	clients     []client
	outputModel string
	pretrained  string
}

// client is one training worker: its role, its node and its Dataset.
type client struct {
	Role, Node, Dataset string
	// External: the template gives a command, so the worker is the user's
	// program, not the built-in one (which reports its Dataset's shape).
	External bool
}

func parseJob(spec workers.Spec) (*api.FederatedLearningJobSpec, error) {
	res, err := api.ParseDocument(spec.Document)
	if err != nil {
		return nil, err
	}
	js, ok := res.Spec.(*api.FederatedLearningJobSpec)
	if !ok {
		return nil, fmt.Errorf("federated: a %s, not a FederatedLearningJob", res.Kind)
	}
	return js, nil
}

func clientsOf(js *api.FederatedLearningJobSpec) []client {
	out := make([]client, len(js.TrainingWorkers))
	for i, w := range js.TrainingWorkers {
		cs := w.Template.Spec.Containers
		out[i] = client{Role: fmt.Sprintf("train-%d", i), Node: w.Template.Spec.NodeName, Dataset: w.Dataset.Name,
			External: len(cs) > 0 && len(cs[0].Command) > 0}
	}
	return out
}

// paramError names the env variable and the field of the template.
func paramError(spec workers.Spec, name, value, want string) error {
	return fmt.Errorf("federated: %s.spec.containers[0].env %s=%q: want %s", spec.Field, name, value, want)
}

func intParam(spec workers.Spec, name string, def, lo, hi int) (int, error) {
	v, ok := spec.Params[name]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return 0, paramError(spec, name, v, fmt.Sprintf("a whole number from %d to %d", lo, hi))
	}
	return n, nil
}

func floatParam(spec workers.Spec, name string, def, lo, hi float64) (float64, error) {
	v, ok := spec.Params[name]
	if !ok || v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		return 0, paramError(spec, name, v, fmt.Sprintf("a number from %g to %g", lo, hi))
	}
	return f, nil
}

func parseAggConfig(spec workers.Spec) (*aggConfig, error) {
	js, err := parseJob(spec)
	if err != nil {
		return nil, err
	}
	c := &aggConfig{aggregator: "FedAvg", aggParams: map[string]string{}, clients: clientsOf(js),
		outputModel: js.AggregationWorker.Model.Name, pretrained: js.PretrainedModel.Name}
	if len(c.clients) == 0 {
		return nil, fmt.Errorf("federated: spec.trainingWorkers: the job has no training worker")
	}
	rounds, err := intParam(spec, ParamExitRound, defaultRounds, 1, 1_000_000)
	if err != nil {
		return nil, err
	}
	c.rounds = int64(rounds)
	if v := strings.TrimSpace(spec.Params[ParamAggregator]); v != "" {
		c.aggregator = v
	}
	if v := strings.TrimSpace(spec.Params[ParamAggregatorParams]); v != "" {
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, paramError(spec, ParamAggregatorParams, v, "key=value pairs separated by commas")
			}
			c.aggParams[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	n := len(c.clients)
	if c.minClients, err = intParam(spec, ParamMinClients, (n+1)/2, 1, n); err != nil {
		return nil, err
	}
	c.timeout = defaultRoundTimeout
	if v := strings.TrimSpace(spec.Params[ParamRoundTimeout]); v != "" {
		if c.timeout, err = time.ParseDuration(v); err != nil || c.timeout <= 0 {
			return nil, paramError(spec, ParamRoundTimeout, v, "a positive duration such as 90s or 5m")
		}
	}
	if c.target, err = floatParam(spec, ParamTargetAccuracy, 0, 0, 1); err != nil {
		return nil, err
	}
	if c.patience, err = intParam(spec, ParamPatience, 0, 0, 1_000_000); err != nil {
		return nil, err
	}
	c.validation = strings.TrimSpace(spec.Params[ParamValidation])
	if (c.target > 0 || c.patience > 0) && c.validation == "" {
		return nil, fmt.Errorf("federated: %s.spec.containers[0].env: %s and %s need a validation set (%s)",
			spec.Field, ParamTargetAccuracy, ParamPatience, ParamValidation)
	}
	c.model = defaultModelDefinition
	if v := strings.TrimSpace(spec.Params[ParamModel]); v != "" {
		c.model = v
	}
	if _, err := hiddenLayers(c.model); err != nil {
		return nil, paramError(spec, ParamModel, c.model, `"softmax", or "mlp:" and one or two hidden sizes ("mlp:32", "mlp:64,32")`)
	}
	if c.inputs, err = intParam(spec, ParamInputs, 0, 1, 1<<24); err != nil {
		return nil, err
	}
	if c.classes, err = intParam(spec, ParamClasses, 0, 2, 1<<16); err != nil {
		return nil, err
	}
	seed, err := intParam(spec, ParamSeed, 1, 0, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	c.seed = uint64(seed)
	if c.chunkBytes, err = intParam(spec, ParamChunkBytes, defaultChunkBytes, minChunkBytes, maxChunkBytes); err != nil {
		return nil, err
	}
	c.chunkBytes &^= 3 // whole float32s
	return c, nil
}

// modelKey names the model a run trains: a job applied again with another
// one starts a new run.
func (c *aggConfig) modelKey() string {
	if c.pretrained != "" {
		return "pretrained:" + c.pretrained
	}
	return fmt.Sprintf("%s/%d/%d/%d", c.model, c.inputs, c.classes, c.seed)
}

// hiddenLayers parses a model definition: nil for softmax regression.
func hiddenLayers(def string) ([]int, error) {
	if def == "softmax" {
		return nil, nil
	}
	sizes, ok := strings.CutPrefix(def, "mlp:")
	if !ok {
		return nil, fmt.Errorf("unknown model %q", def)
	}
	var hidden []int
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1<<16 {
			return nil, fmt.Errorf("bad hidden size %q", s)
		}
		hidden = append(hidden, n)
	}
	if len(hidden) < 1 || len(hidden) > 2 {
		return nil, fmt.Errorf("%d hidden layers", len(hidden))
	}
	return hidden, nil
}

// newModel makes the initial global model of a definition.
func newModel(def string, inputs, classes int, seed uint64) (*ml.Network, error) {
	hidden, err := hiddenLayers(def)
	if err != nil {
		return nil, err
	}
	if hidden == nil {
		return ml.NewSoftmax(inputs, classes)
	}
	return ml.NewMLP(inputs, hidden, classes, seed)
}

// trainConfig is a training worker's configuration.
type trainConfig struct {
	fit     ml.FitOptions
	dataset string
}

func parseTrainConfig(spec workers.Spec) (*trainConfig, error) {
	js, err := parseJob(spec)
	if err != nil {
		return nil, err
	}
	var ds string
	for _, c := range clientsOf(js) {
		if c.Role == spec.Role {
			ds = c.Dataset
		}
	}
	if ds == "" {
		return nil, fmt.Errorf("federated: %s: the training worker names no dataset", spec.Field)
	}
	c := &trainConfig{dataset: ds}
	if c.fit.BatchSize, err = intParam(spec, ParamBatchSize, 32, 1, 1<<20); err != nil {
		return nil, err
	}
	if c.fit.Epochs, err = intParam(spec, ParamEpochs, 1, 1, 10_000); err != nil {
		return nil, err
	}
	switch v := strings.ToLower(strings.TrimSpace(spec.Params[ParamOptimizer])); v {
	case "", "sgd":
		c.fit.Optimizer = ml.SGD
	case "adam":
		c.fit.Optimizer = ml.Adam
	default:
		return nil, paramError(spec, ParamOptimizer, v, "sgd or adam")
	}
	lr, err := floatParam(spec, ParamLearningRate, 0, 0, 100)
	if err != nil {
		return nil, err
	}
	if v, ok := spec.Params[ParamLearningRate]; ok && v != "" && lr == 0 {
		return nil, paramError(spec, ParamLearningRate, v, "a positive number")
	}
	c.fit.LearningRate = float32(lr)
	m, err := floatParam(spec, ParamMomentum, 0, 0, 0.999)
	if err != nil {
		return nil, err
	}
	c.fit.Momentum = float32(m)
	return c, nil
}

// Plan is what an aggregation worker's spec says of its job's rounds:
// their rules, and the node of each training worker (by role).
type Plan struct {
	Rules Rules
	Nodes map[string]string
}

// PlanOf reads the plan of a FederatedLearningJob's aggregation worker
// from its spec, as the worker does (the same parameters and defaults,
// the same errors).
func PlanOf(spec workers.Spec) (Plan, error) {
	cfg, err := parseAggConfig(spec)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Rules: cfg.rules(), Nodes: map[string]string{}}
	for _, cl := range cfg.clients {
		p.Nodes[cl.Role] = cl.Node
	}
	return p, nil
}

// rules are the rounds' rules the configuration gives.
func (c *aggConfig) rules() Rules {
	r := Rules{MinClients: c.minClients, Rounds: c.rounds, Deadline: c.timeout, Target: c.target, Patience: c.patience}
	for _, cl := range c.clients {
		r.Clients = append(r.Clients, cl.Role)
	}
	return r
}
