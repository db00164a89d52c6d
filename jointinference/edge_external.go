package jointinference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// The environment of an external edge worker beside Sedna's (MODEL_URL,
// HEM_NAME, HEM_PARAMETERS): where it offloads, where the answers come,
// what to put in an offload's reply-to.
const (
	EnvOffloadTopic = "SEDNA_JI_OFFLOAD_TOPIC"
	EnvReplyTopic   = "SEDNA_JI_REPLY_TOPIC"
	EnvReplyTo      = "SEDNA_JI_REPLY_TO"
)

// ExternalWorker is the driver of an edge worker with a command (a
// program of the user's, Sedna's little model with JointInference say):
// it writes the edge Model's newest version the node holds to a file and
// runs the command with Sedna's environment of a little model (MODEL_URL,
// MODEL_FORMAT, HEM_NAME, HEM_PARAMETERS as Sedna encodes them) and the
// topics of the service (its input and result, and EnvOffloadTopic,
// EnvReplyTopic and EnvReplyTo for offloads to the cloud worker). A new
// version of the model restarts the program with it; a program that exits
// 0 has succeeded (a little model that went through its video, say), any
// other exit is an error of the worker.
func (e *Edge) ExternalWorker() workers.Builtin {
	env := e.env
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		if spec.Command == nil {
			return errors.New("jointinference: an external edge worker without a command")
		}
		cfg, err := edgeConfigOf(spec)
		if err != nil {
			return err
		}
		js, err := parseSpec(spec)
		if err != nil {
			return err
		}
		params, err := json.Marshal(js.EdgeWorker.HardExampleMining.Parameters)
		if err != nil {
			return err
		}
		if js.EdgeWorker.HardExampleMining.Parameters == nil {
			params = []byte("[]")
		}
		dir, err := os.MkdirTemp("", "sedna-ji-edge-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		ref := spec.Job
		base := []string{"HEM_NAME=" + cfg.miner, "HEM_PARAMETERS=" + string(params),
			ParamInputTopic + "=" + cfg.inputTopic, ParamResultTopic + "=" + cfg.results,
			ParamTimeout + "=" + cfg.timeout.String(),
			EnvOffloadTopic + "=" + topics.NodeJob(env.Node, ref, "offload"),
			EnvReplyTopic + "=" + topics.JobTopic(ref, "reply"),
			EnvReplyTo + "=" + topics.ToNodeJob(env.Node, ref, "reply")}
		return followModel(ctx, spec, env.Models, cfg.model, "edge model "+cfg.model+" to reach the node", dir,
			func(file, format string, _ uint64, newer func() bool) (bool, error) {
				run := append(slices.Clip(base), "MODEL_URL="+file, "MODEL_FORMAT="+format)
				return runUntilNewer(ctx, spec, log, dir, run, newer)
			})
	}
}

// runUntilNewer runs the command until it exits (nil for 0, else an
// error), ctx ends (nil) or newer says a newer model is on the node
// (restart true).
func runUntilNewer(ctx context.Context, spec workers.Spec, log *slog.Logger, dir string, env []string, newer func() bool) (restart bool, err error) {
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := spec.Command.Run(pctx, dir, env)
		done <- err
	}()
	spec.Say("")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stop()
			<-done
			return false, nil
		case err := <-done:
			if err == nil {
				return false, nil // exit 0: the worker succeeded
			}
			return false, fmt.Errorf("the edge model's program exited: %w", err)
		case <-tick.C:
			if newer() {
				log.Info("joint inference: a newer edge model: the program starts again with it")
				stop()
				<-done
				return true, nil
			}
		}
	}
}
