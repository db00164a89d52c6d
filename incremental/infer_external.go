package incremental

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/workers"
)

// An external inference worker (a deploy template with a command) is the
// user's program answering devices with the serving model; the node's
// agent gives it the model and keeps the rest of the job's edge side: the
// program publishes each sample it answered, with the model's output, on
// InferredTopic, and the agent judges it with the job's miner, keeps the
// hard ones and sends them up, as for the built-in worker. A deployed
// version reaches the program as Sedna's do: through the hot update file
// (MODEL_HOT_UPDATE_CONFIG) with hotUpdateEnabled, by a restart with the
// new MODEL_URL without (docs/WORKERS.md).

// Environment variables of an external inference worker (beside those of
// every worker, its template's env, EnvTask and Sedna's NAMESPACE,
// JOB_NAME, WORKER_NAME).
const (
	// EnvModel (MODEL_URL) is the serving model's file when it started.
	// EnvHEMName and EnvHEMParameters are the job's miner, as Sedna
	// gives them (the parameters a JSON list of {"key", "value"}).
	EnvHEMName       = "HEM_NAME"
	EnvHEMParameters = "HEM_PARAMETERS"
	// EnvHotUpdate is "true" with hotUpdateEnabled; EnvHotUpdateConfig
	// is then the file that names the model to serve, replaced whole for
	// each model deployed: {"model_config": {"model_path": FILE,
	// "model_update_time": "NAME/VERSION", "model_name": NAME,
	// "model_version": VERSION}} (model_update_time, Sedna's field, is the
	// model's id: it differs from one model to the next). A worker checks
	// it every EnvPollPeriod seconds.
	EnvHotUpdate       = "MODEL_HOT_UPDATE"
	EnvHotUpdateConfig = "MODEL_HOT_UPDATE_CONFIG"
	EnvPollPeriod      = "MODEL_POLL_PERIOD_SECONDS"
	// EnvModelName and EnvModelVersion are the model at MODEL_URL: the
	// job's initial model or its deploy model, and its version.
	EnvModelName    = "SEDNA_MODEL_NAME"
	EnvModelVersion = "SEDNA_MODEL_VERSION"
	// EnvInputTopic, EnvResultTopic and EnvInferredTopic are the job's
	// topics on the node's broker: devices' samples, answers (unless a
	// sample names its reply topic), and the samples answered.
	EnvInputTopic    = "SEDNA_INPUT_TOPIC"
	EnvResultTopic   = "SEDNA_RESULT_TOPIC"
	EnvInferredTopic = "SEDNA_INFERRED_TOPIC"
)

// InferredTopic is where an external inference worker publishes each
// sample it answered, as an Inferred in JSON, on its node's broker (the
// topic never leaves the node).
func InferredTopic(namespace, name string) string {
	return "il/" + namespace + "/" + name + "/inferred"
}

// Inferred is a sample an external inference worker answered: the sample
// as the device sent it (joint inference's request: id, shape, dtype,
// data in base64) and the model's output, class probabilities or a
// detection's boxes ([xmin, ymin, xmax, ymax, score, class] each), with
// the model version that answered (0: the one serving now).
type Inferred struct {
	ID    string       `json:"id,omitempty"`
	Shape []int        `json:"shape,omitempty"`
	DType string       `json:"dtype,omitempty"`
	Data  []byte       `json:"data"`
	Probs []float32    `json:"probs,omitempty"`
	Boxes [][6]float32 `json:"boxes,omitempty"`
	Model uint64       `json:"model,omitempty"`
	// Attr and Stream are the sample's task attribute and its source, as
	// the device sent them (a lifelong job's samples).
	Attr   string `json:"attr,omitempty"`
	Stream string `json:"stream,omitempty"`
}

// hotUpdateFile is Sedna's hot update file.
type hotUpdateFile struct {
	ModelConfig struct {
		ModelPath  string `json:"model_path"`
		UpdateTime string `json:"model_update_time"`
		Name       string `json:"model_name"`
		Version    uint64 `json:"model_version"`
	} `json:"model_config"`
}

// ExternalInference is the driver of an external inference worker: it
// runs the deploy template's command with the serving model and mines
// what the command says it answered.
func (e *Edge) ExternalInference() workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		if spec.Command == nil {
			return errors.New("incremental: an external inference worker without a command")
		}
		w, err := e.newInference(spec, log, false)
		if err != nil {
			return err
		}
		return w.runExternal(ctx, spec.Command)
	}
}

// externalFiles are an external inference worker's model files.
type externalFiles struct {
	mu      sync.Mutex
	cmd     *workers.Command
	dir     string
	current string // the serving model's file
	older   string // the one before, kept while the program may read it
}

// write puts m in the directory; with hot update it names it in the hot
// update file too (replaced whole: the program reads one or the other).
func (f *externalFiles) write(m *servingModel, hot bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := filepath.Join(f.dir, fmt.Sprintf("%s-v%d.model", m.name, m.version))
	if err := os.WriteFile(path, m.raw, 0o640); err != nil {
		return "", err
	}
	if hot {
		var conf hotUpdateFile
		mc := &conf.ModelConfig
		mc.ModelPath, mc.UpdateTime, mc.Name, mc.Version = path, m.name+"/"+strconv.FormatUint(m.version, 10), m.name, m.version
		raw, _ := json.Marshal(conf)
		tmp := filepath.Join(f.dir, "hot_update.json.new")
		if err := os.WriteFile(tmp, raw, 0o640); err != nil {
			return "", err
		}
		if err := f.cmd.HandOver(f.dir); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, filepath.Join(f.dir, "hot_update.json")); err != nil {
			return "", err
		}
	}
	if f.older != "" && f.older != path {
		_ = os.Remove(f.older)
	}
	f.older, f.current = f.current, path
	return path, nil
}

func (w *inference) runExternal(ctx context.Context, cmd *workers.Command) error {
	if ok, err := w.awaitModel(ctx); !ok {
		return err
	}
	dir, err := os.MkdirTemp("", "sedna-il-infer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := &externalFiles{cmd: cmd, dir: dir}
	m := w.model.Load()
	if _, err := files.write(m, w.hot); err != nil {
		return err
	}
	if w.hot {
		w.onSwap = func(next *servingModel) {
			if _, err := files.write(next, true); err != nil {
				w.log.Warn(w.j.fl.Source+": the deployed model not handed to the external worker", "error", err)
			}
		}
	}
	inferred := w.j.topic("inferred")
	format := "sedna"
	if d, ok := w.learner.(ExternalData); ok {
		format = d.ModelFormat()
	}
	stop, err := w.receive(inferred)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	hem := w.j.spec.Mining
	if hem == nil {
		hem = &api.HardExampleMining{}
	}
	params, _ := json.Marshal(hem.Parameters)
	if hem.Parameters == nil {
		params = []byte("[]")
	}
	ref := w.j.ref
	base := []string{EnvTask + "=" + taskName(w.j.task), "NAMESPACE=" + ref.Namespace, "JOB_NAME=" + ref.Name,
		"WORKER_NAME=deploy-" + w.env.Node, EnvHEMName + "=" + hem.Name, EnvHEMParameters + "=" + string(params),
		EnvInputTopic + "=" + InputTopic(ref.Namespace, ref.Name), EnvResultTopic + "=" + ResultTopic(ref.Namespace, ref.Name),
		EnvInferredTopic + "=" + inferred, "MODEL_FORMAT=" + format}
	if w.hot {
		base = append(base, EnvHotUpdate+"=true", EnvHotUpdateConfig+"="+filepath.Join(dir, "hot_update.json"),
			fmt.Sprintf("%s=%d", EnvPollPeriod, max(1, int(w.poll/time.Second))))
	}
	var wg sync.WaitGroup
	bg, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); w.upload(bg) }()
	go func() { defer wg.Done(); w.watchModels(bg) }()
	// start runs the program with the serving model; its end comes on
	// the channel it returns, the function stops it.
	start := func() (<-chan error, context.CancelFunc) {
		pctx, stop := context.WithCancel(bg)
		m := w.model.Load()
		files.mu.Lock()
		env := append(slices.Clip(base), EnvModel+"="+files.current, EnvModelName+"="+m.name, fmt.Sprintf("%s=%d", EnvModelVersion, m.version))
		files.mu.Unlock()
		done := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cmd.Run(pctx, dir, env)
			done <- err
		}()
		return done, stop
	}
	switch {
	case w.j.spec.Judges:
		w.log.Info(w.j.fl.Source+": external inference worker started", "inferred", inferred, "model", m.name, "version", m.version,
			"hotUpdate", w.hot)
		w.spec.Say("")
	case w.miner == nil:
		w.log.Info(w.j.fl.Source+": external inference worker started", "inferred", inferred, "model", m.name, "version", m.version,
			"miner", "none", "hotUpdate", w.hot)
		w.spec.Say("no deploySpec.hardExampleMining: the samples the program answers are counted, none is kept as a hard example")
	default:
		w.log.Info(w.j.fl.Source+": external inference worker started", "inferred", inferred, "model", m.name, "version", m.version,
			"miner", w.miner.Info().Name, "hotUpdate", w.hot)
		w.spec.Say("")
	}
	done, stopProgram := start()
	defer func() { stopProgram() }()
	report := time.NewTicker(2 * time.Second)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			w.metrics()
			return nil
		case err := <-done:
			w.metrics()
			if err != nil {
				return fmt.Errorf("the inference command: %w", err)
			}
			return nil // it finished: the worker succeeded
		case raw := <-w.in:
			w.mineInferred(ctx, raw)
		case next := <-w.restart:
			// hotUpdateEnabled false: the program restarts with the new
			// model, as Sedna's inference worker does.
			stopProgram()
			<-done
			w.swap(next)
			if _, err := files.write(next, false); err != nil {
				return err
			}
			done, stopProgram = start()
		case <-report.C:
			w.metrics()
		}
	}
}

// mineInferred judges a sample the external worker answered with the
// job's miner, or, in a job whose served models judge (Judges), with the
// serving model as the built-in worker does, and keeps it when it is hard
// (unseen).
func (w *inference) mineInferred(ctx context.Context, raw []byte) {
	var in Inferred
	err := json.Unmarshal(raw, &in)
	req := jointinference.Request{ID: in.ID, Shape: in.Shape, DType: in.DType, Data: in.Data, Attr: in.Attr, Stream: in.Stream}
	var x []float32
	if err == nil {
		x, err = req.Floats()
	}
	var batch plugins.Batch
	switch {
	case err != nil:
	case w.j.spec.Judges:
	case w.j.task.Detection:
		pb := make([]plugins.Box, len(in.Boxes))
		for i, b := range in.Boxes {
			pb[i] = plugins.Box(b)
		}
		batch = plugins.Batch{Boxes: [][]plugins.Box{pb}}
	case len(in.Probs) == 0:
		err = errors.New("no probs: a classification's answer needs its class probabilities")
	default:
		batch = plugins.Batch{Probs: in.Probs, Classes: len(in.Probs)}
	}
	var keep bool
	var score float64
	m := w.model.Load()
	if err == nil && w.j.spec.Judges {
		var res jointinference.Result
		_, keep, score, err = m.served.Answer(req, x, &res)
	}
	if err != nil {
		w.errors.Add(1)
		w.log.Warn(w.j.fl.Source+": a sample from the external inference worker refused", "error", err)
		return
	}
	w.samples.Add(1)
	w.bytesSeen.Add(int64(len(in.Data)))
	version := in.Model
	if version == 0 {
		version = m.version
	}
	if !w.j.spec.Judges && w.miner != nil {
		if vs, err := w.miner.Mine(ctx, batch); err == nil && len(vs) == 1 && vs[0].Hard {
			keep, score = true, float64(vs[0].Score)
		}
	}
	if keep {
		w.keep(req, version, score)
	}
}
