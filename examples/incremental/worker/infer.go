package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/topics"
)

// served is the model that answers: its id (name/version, as the hot
// update file names it) and its version.
type served struct {
	net     *ml.Network
	id      string
	version uint64
}

// infer answers the devices' samples until ctx ends; a classification
// job's (the program's detection is left to the built-in worker).
func infer(ctx context.Context, env map[string]string) error {
	if env[incremental.EnvTask] == "detection" {
		return fmt.Errorf("this example infers for classification jobs only")
	}
	net, err := load(env[incremental.EnvModel])
	if err != nil {
		return fmt.Errorf("the model: %w", err)
	}
	var model atomic.Pointer[served]
	version, _ := strconv.ParseUint(env[incremental.EnvModelVersion], 10, 64)
	model.Store(&served{net, env[incremental.EnvModelName] + "/" + env[incremental.EnvModelVersion], version})
	opts := mqtt.NewClientOptions().AddBroker(env["SEDNA_BROKER_URL"]).
		SetClientID(fmt.Sprintf("il-infer-%s-%d", env["JOB_NAME"], os.Getpid())).SetCleanSession(true).SetAutoReconnect(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect %s: %v", env["SEDNA_BROKER_URL"], tok.Error())
	}
	defer c.Disconnect(250)
	in := make(chan []byte, 256)
	tok := c.Subscribe(env[incremental.EnvInputTopic], 0, func(_ mqtt.Client, m mqtt.Message) {
		if !m.Retained() {
			in <- m.Payload()
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if env[incremental.EnvHotUpdate] == "true" {
		wg.Add(1)
		go func() { defer wg.Done(); followHotUpdates(ctx, env, &model) }()
	}
	fmt.Printf("serving model %s on %s\n", model.Load().id, env[incremental.EnvInputTopic])
	for {
		select {
		case <-ctx.Done():
			return nil
		case raw := <-in:
			answer(c, env, model.Load(), raw)
		}
	}
}

// answer answers one sample and tells the agent what it answered.
func answer(c mqtt.Client, env map[string]string, m *served, raw []byte) {
	req, replyTo, corr, asJSON, err := jointinference.DecodeRequest(raw, topics.Limits{})
	res := jointinference.Result{ID: req.ID, Source: "edge"}
	var x []float32
	if err == nil {
		x, err = req.Floats()
	}
	if err == nil && len(x) != m.net.Inputs() {
		err = fmt.Errorf("a sample of %d values does not fit a model of %d inputs", len(x), m.net.Inputs())
	}
	var probs []float32
	if err == nil {
		probs, err = m.net.PredictProba(x)
	}
	if err != nil {
		res.Error = err.Error()
	} else {
		for i, p := range probs {
			if p > probs[res.Class] {
				res.Class = i
			}
		}
		res.Score, res.Probs = probs[res.Class], probs
		dtype, data := req.Packed()
		mined, _ := json.Marshal(incremental.Inferred{ID: req.ID, Shape: req.Shape, DType: dtype, Data: data, Probs: probs, Model: m.version})
		c.Publish(env[incremental.EnvInferredTopic], 1, false, mined)
	}
	out, err := jointinference.EncodeResult(res, corr, asJSON)
	if err != nil {
		return
	}
	if replyTo == "" {
		replyTo = env[incremental.EnvResultTopic]
	}
	c.Publish(replyTo, 1, false, out)
}

// followHotUpdates reads the hot update file every poll period and loads
// the model it names when its version changed.
func followHotUpdates(ctx context.Context, env map[string]string, model *atomic.Pointer[served]) {
	period, err := strconv.Atoi(env[incremental.EnvPollPeriod])
	if err != nil || period < 1 {
		period = 60
	}
	t := time.NewTicker(time.Duration(period) * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		raw, err := os.ReadFile(env[incremental.EnvHotUpdateConfig])
		if err != nil {
			continue
		}
		var conf struct {
			ModelConfig struct {
				Path    string `json:"model_path"`
				ID      string `json:"model_update_time"`
				Version uint64 `json:"model_version"`
			} `json:"model_config"`
		}
		if json.Unmarshal(raw, &conf) != nil || conf.ModelConfig.ID == model.Load().id {
			continue
		}
		net, err := load(conf.ModelConfig.Path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "il-worker: hot update:", err)
			continue
		}
		model.Store(&served{net, conf.ModelConfig.ID, conf.ModelConfig.Version})
		fmt.Printf("hot update: serving model %s\n", conf.ModelConfig.ID)
	}
}
