// Command worker is an external train, eval and inference worker of an
// incremental learning job, written in Go against the contract of
// docs/WORKERS.md. The job's agent runs it once per stage attempt, with
// the attempt's models and examples as files named by Sedna's environment
// variables; as the inference worker, it answers the devices' samples on
// the node's broker with the model at MODEL_URL, tells the agent what it
// answered (the agent mines the hard examples), and follows the hot update
// file. Give a template its path as the command:
//
//	trainSpec:
//	  template:
//	    spec:
//	      nodeName: edge1
//	      containers:
//	        - name: train
//	          command: [/usr/local/bin/il-worker]
//	          env: [{name: epochs, value: "8"}]
//
// Training fine-tunes the serving model (BASE_MODEL_URL) on the new
// examples (TRAIN_DATASET_URL) with the earlier ones replayed
// (ORIGINAL_DATASET_URL) and writes the result to MODEL_URL; evaluation
// scores each model of MODEL_URLS on TEST_DATASET_URL and writes the
// numbers to RESULT_URL; inference answers on SEDNA_RESULT_TOPIC (or the
// sample's replyTo) and publishes each sample with its class probabilities
// on SEDNA_INFERRED_TOPIC. A worker in another language does the same with
// the same files (the inputs are NumPy arrays) and topics.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "il-worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	env[jointinference.ParamTask] = env[incremental.EnvTask]
	task, err := jointinference.TaskOf(env)
	if err != nil {
		return err
	}
	switch role := env["SEDNA_WORKER_ROLE"]; role {
	case "train":
		return train(ctx, env, task)
	case "eval":
		return eval(env, task)
	case "deploy":
		return infer(ctx, env)
	default:
		return fmt.Errorf("role %q: want train, eval or deploy", role)
	}
}

func load(path string) (*ml.Network, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ml.Unmarshal(raw)
}

func train(ctx context.Context, env map[string]string, task jointinference.Task) error {
	base, err := load(env[incremental.EnvBaseModel])
	if err != nil {
		return fmt.Errorf("the base model: %w", err)
	}
	var set incremental.TrainSet
	if set.New, err = incremental.ReadSet(env[incremental.EnvTrainDataset]); err != nil {
		return err
	}
	if set.Old, err = incremental.ReadSet(env[incremental.EnvOriginalDataset]); err != nil {
		return err
	}
	fit, err := incremental.FitOf(env) // epochs, batch_size, learning_rate of the template's env
	if err != nil {
		return err
	}
	fmt.Printf("attempt %s: fine-tuning on %d new examples, %d earlier ones replayed\n", env[incremental.EnvAttempt], len(set.New), len(set.Old))
	m, err := incremental.Learn(ctx, task, base, set, fit)
	if err != nil {
		return err
	}
	raw, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return os.WriteFile(env[incremental.EnvModel], raw, 0o600)
}

func eval(env map[string]string, task jointinference.Task) error {
	set, err := incremental.ReadSet(env[incremental.EnvTestDataset])
	if err != nil {
		return err
	}
	var out []incremental.ModelMetrics
	for _, url := range strings.Split(env[incremental.EnvModels], ";") {
		m, err := load(url)
		if err != nil {
			return fmt.Errorf("%s: %w", url, err)
		}
		scores, err := incremental.Score(task, m, set)
		if err != nil {
			return err
		}
		fmt.Printf("attempt %s: %s scores %v on %d examples\n", env[incremental.EnvAttempt], url, scores, len(set))
		out = append(out, incremental.NewModelMetrics(url, scores))
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(env[incremental.EnvResult], raw, 0o600)
}
