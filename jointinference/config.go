package jointinference

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Modes, as in Sedna.
const (
	// ModeInferenceThenMining: the edge model answers, the miner judges
	// its answer, hard samples go to the cloud (the default).
	ModeInferenceThenMining = "inference-then-mining"
	// ModeMiningThenInference: the miner judges the sample first (as the
	// edge model would take it); hard samples go to the cloud without an
	// edge inference (which is made only if the cloud does not answer), the
	// others get the edge's.
	ModeMiningThenInference = "mining-then-inference"
)

// Parameters of the edge worker, from its template's env (ours, beside
// Sedna's own, which the worker ignores).
const (
	ParamMode        = "SEDNA_JI_MODE"         // a mode; default inference-then-mining
	ParamTimeout     = "SEDNA_JI_TIMEOUT"      // offload deadline; default 2s
	ParamBatch       = "SEDNA_JI_BATCH"        // samples per inference batch and offload; default 16
	ParamBatchWait   = "SEDNA_JI_BATCH_WAIT"   // how long a batch waits to fill; default 2ms
	ParamInputTopic  = "SEDNA_JI_INPUT_TOPIC"  // default ji/{namespace}/{name}/input
	ParamResultTopic = "SEDNA_JI_RESULT_TOPIC" // default ji/{namespace}/{name}/result
	ParamReplicas    = "SEDNA_JI_REPLICAS"     // cloud worker: concurrent inferences; default 2
)

// InputTopic and ResultTopic are a service's default topics on its edge
// node's broker.
func InputTopic(namespace, name string) string  { return topics.JointInferenceInput(namespace, name) }
func ResultTopic(namespace, name string) string { return topics.JointInferenceResult(namespace, name) }

type edgeConfig struct {
	ref                 topics.JobRef
	task                task
	model, miner        string
	minerParams         map[string]string
	mode                string
	timeout, batchWait  time.Duration
	batch               int
	inputTopic, results string
}

func parseSpec(spec workers.Spec) (*api.JointInferenceServiceSpec, error) {
	res, err := api.ParseDocument(spec.Document)
	if err != nil {
		return nil, err
	}
	js, ok := res.Spec.(*api.JointInferenceServiceSpec)
	if !ok {
		return nil, fmt.Errorf("jointinference: a %s, not a JointInferenceService", res.Kind)
	}
	return js, nil
}

func edgeConfigOf(spec workers.Spec) (*edgeConfig, error) {
	js, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}
	c := &edgeConfig{ref: spec.Job, model: js.EdgeWorker.Model.Name, miner: js.EdgeWorker.HardExampleMining.Name,
		minerParams: map[string]string{}, mode: ModeInferenceThenMining, timeout: 2 * time.Second,
		batchWait: 2 * time.Millisecond, batch: 16,
		inputTopic: InputTopic(spec.Job.Namespace, spec.Job.Name), results: ResultTopic(spec.Job.Namespace, spec.Job.Name)}
	for _, kv := range js.EdgeWorker.HardExampleMining.Parameters {
		c.minerParams[kv.Key] = kv.Value
	}
	if c.miner == "" {
		return nil, fmt.Errorf("jointinference: edgeWorker.hardExampleMining.name is empty")
	}
	p := spec.Params
	if c.task, err = taskOf(p); err != nil {
		return nil, err
	}
	if v := p[ParamMode]; v != "" {
		if v != ModeInferenceThenMining && v != ModeMiningThenInference {
			return nil, fmt.Errorf("jointinference: %s=%q: want %s or %s", ParamMode, v, ModeInferenceThenMining, ModeMiningThenInference)
		}
		c.mode = v
	}
	if err := duration(p, ParamTimeout, &c.timeout); err != nil {
		return nil, err
	}
	if err := duration(p, ParamBatchWait, &c.batchWait); err != nil {
		return nil, err
	}
	if v := p[ParamBatch]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("jointinference: %s=%q: want 1 to 1024", ParamBatch, v)
		}
		c.batch = n
	}
	for k, dst := range map[string]*string{ParamInputTopic: &c.inputTopic, ParamResultTopic: &c.results} {
		if v := p[k]; v != "" {
			if err := topics.ValidateTopic(v); err != nil {
				return nil, fmt.Errorf("jointinference: %s: %w", k, err)
			}
			*dst = v
		}
	}
	return c, nil
}

func duration(p map[string]string, key string, dst *time.Duration) error {
	v := p[key]
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("jointinference: %s=%q: want a positive duration", key, v)
	}
	*dst = d
	return nil
}
