package jointinference

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/workers"
)

// Sedna's environment of a big model server (its BigModelService), which
// an external cloud worker gets: where to serve (bind) and, for its own
// information, where the edge reaches it.
const (
	EnvBigModelBindIP   = "BIG_MODEL_BIND_IP"
	EnvBigModelBindPort = "BIG_MODEL_BIND_PORT"
	EnvBigModelIP       = "BIG_MODEL_IP"
	EnvBigModelPort     = "BIG_MODEL_PORT"
)

// The paths of an external cloud worker's server: a batch of samples in
// msgpack (what the driver sends), and its readiness.
const (
	PathPredictBatch = "/sedna/predict_batch"
	PathHealth       = "/sedna/health"
)

// externalBatch is a batch the driver posts to an external cloud worker:
// each sample's values as float32 little-endian, in its shape.
type externalBatch struct {
	Samples []externalSample `msgpack:"samples"`
}

type externalSample struct {
	ID    string `msgpack:"id"`
	Shape []int  `msgpack:"shape"`
	Data  []byte `msgpack:"data"` // float32 little-endian
}

// externalAnswer is the server's answer: a result per sample, in order,
// or an error for the whole batch.
type externalAnswer struct {
	Results []struct {
		Probs []float64 `msgpack:"probs"`
		Error string    `msgpack:"error"`
	} `msgpack:"results"`
	Error string `msgpack:"error"`
}

// external is an external cloud worker's server, reached over loopback.
type external struct {
	url    string
	client *http.Client
}

// serve posts a batch of fitted samples and returns their answers, or
// per-sample errors.
func (e *external) serve(ctx context.Context, ids []string, rows [][]float32, shapes [][]int) ([]answer, []string, error) {
	var b externalBatch
	for i, r := range rows {
		data := make([]byte, 4*len(r))
		for j, v := range r {
			binary.LittleEndian.PutUint32(data[4*j:], math.Float32bits(v))
		}
		b.Samples = append(b.Samples, externalSample{ID: ids[i], Shape: shapes[i], Data: data})
	}
	body, err := msgpack.Marshal(&b)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+PathPredictBatch, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/msgpack")
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("the cloud worker's program: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("the cloud worker's program: %w", err)
	}
	var a externalAnswer
	if err := msgpack.Unmarshal(raw, &a); err != nil {
		return nil, nil, fmt.Errorf("the cloud worker's program answered HTTP %d, not msgpack: %.200q", resp.StatusCode, raw)
	}
	if a.Error != "" {
		return nil, nil, fmt.Errorf("the cloud worker's program: %s", a.Error)
	}
	if len(a.Results) != len(rows) {
		return nil, nil, fmt.Errorf("the cloud worker's program answered %d results for %d samples", len(a.Results), len(rows))
	}
	out := make([]answer, len(rows))
	errs := make([]string, len(rows))
	for i, r := range a.Results {
		if r.Error != "" {
			errs[i] = r.Error
			continue
		}
		if len(r.Probs) == 0 {
			errs[i] = "the cloud worker's program gave no probabilities"
			continue
		}
		p := make([]float32, len(r.Probs))
		for j, v := range r.Probs {
			p[j] = float32(v)
		}
		out[i].probs = p
	}
	return out, errs, nil
}

// ExternalWorker is the driver of a cloud worker with a command (a
// program of the user's, Sedna's BigModelService say): it writes the cloud
// model's newest version to a file (MODEL_URL), runs the command with
// Sedna's environment of a big model server (BIG_MODEL_BIND_IP and
// BIG_MODEL_BIND_PORT: a free port on loopback), waits until it answers
// PathHealth, and hands it its service's offloads, a batch per POST on
// PathPredictBatch. A new version of the model restarts the program with
// it; a program that exits is an error of the worker (its supervisor
// restarts it, and says so).
func (c *Cloud) ExternalWorker() workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		if spec.Command == nil {
			return errors.New("jointinference: an external cloud worker without a command")
		}
		js, err := parseSpec(spec)
		if err != nil {
			return err
		}
		replicas, err := replicasOf(spec.Params)
		if err != nil {
			return err
		}
		name := js.CloudWorker.Model.Name
		dir, err := os.MkdirTemp("", "sedna-ji-cloud-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		w, detach := c.attach(spec.Job)
		defer detach()
		return followModel(ctx, spec, c.env.Models, name, "the first version of model "+name, dir,
			func(file, format string, version uint64, newer func() bool) (bool, error) {
				err := c.runExternal(ctx, spec, log, w, replicas, dir, file, format, version, newer)
				return err == nil && ctx.Err() == nil, err // a newer version: run again with it
			})
	}
}

// runExternal runs the program with model file until it exits (an
// error), ctx ends (nil) or newer says a newer model is registered (nil).
func (c *Cloud) runExternal(ctx context.Context, spec workers.Spec, log *slog.Logger, w *cloudWorker, replicas int, dir, file, format string, version uint64, newer func() bool) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	ref := spec.Job
	env := []string{EnvBigModelBindIP + "=127.0.0.1", EnvBigModelBindPort + "=" + strconv.Itoa(port),
		EnvBigModelIP + "=127.0.0.1", EnvBigModelPort + "=" + strconv.Itoa(port),
		"MODEL_URL=" + file, "MODEL_FORMAT=" + format, "NAMESPACE=" + ref.Namespace, "SERVICE_NAME=" + ref.Name,
		"JOB_NAME=" + ref.Name, "WORKER_NAME=cloudworker-" + ref.Name}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := spec.Command.Run(pctx, dir, env)
		done <- err
	}()
	defer func() {
		stop()
		<-done
	}()
	ext := &external{url: "http://127.0.0.1:" + strconv.Itoa(port), client: &http.Client{Timeout: 30 * time.Second}}
	spec.Say(fmt.Sprintf("starting the cloud model's program (model version %d, port %d)", version, port))
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for ready := false; !ready; {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			done <- err // for the deferred wait
			return fmt.Errorf("the cloud model's program exited before it served: %w", errOr(err))
		case <-deadline.C:
			return fmt.Errorf("the cloud model's program did not answer %s on port %d in 2 minutes", PathHealth, port)
		case <-poll.C:
			ready = ext.healthy(ctx)
		}
	}
	log.Info("joint inference: external cloud worker serving", "port", port, "model version", version)
	spec.Say("")
	var wg sync.WaitGroup
	sctx, stopServing := context.WithCancel(ctx)
	for range replicas {
		wg.Go(func() {
			for {
				select {
				case <-sctx.Done():
					return
				case m := <-w.queue:
					c.serveWith(sctx, w, m, ext)
				}
			}
		})
	}
	defer func() { stopServing(); wg.Wait() }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last int64 = -1
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			done <- err
			return fmt.Errorf("the cloud model's program exited: %w", errOr(err))
		case <-tick.C:
			if newer() {
				log.Info("joint inference: a newer cloud model: the program starts again with it")
				return nil
			}
			if n := w.samples.Load() + w.errors.Load() + w.rejected.Load(); n != last && spec.ReportMetrics != nil {
				last = n
				spec.ReportMetrics(w.metrics())
			}
		}
	}
}

func errOr(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func (e *external) healthy(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+PathHealth, nil)
	if err != nil {
		return false
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePort is a port on loopback nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// followModel runs a program of the user's with the newest version of
// model name on this side: it writes the version to a file in dir and
// calls run with it (the file, its format, its version, and newer, which
// says whether a newer version came) until run says not to run again;
// before the first version it says it waits for what.
func followModel(ctx context.Context, spec workers.Spec, models paradigm.Models, name, what, dir string,
	run func(file, format string, version uint64, newer func() bool) (again bool, err error)) error {
	ns := spec.Job.Namespace
	var have uint64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		v, data, err := models.Latest(ns, name, have)
		if err == nil && v != have && data != nil {
			info, _ := paradigm.DescribeModel(models, ns, name, v)
			format := paradigm.FormatOf(data, info)
			file := filepath.Join(dir, fmt.Sprintf("%s-v%d.model", name, v))
			if err := os.WriteFile(file, data, 0o640); err != nil {
				return err
			}
			have = v
			again, err := run(file, format, v, func() bool {
				nv, _, err := models.Latest(ns, name, have)
				return err == nil && nv != have
			})
			_ = os.Remove(file)
			if err != nil || !again {
				return err
			}
			continue
		}
		if have == 0 {
			spec.Say("waiting for " + what)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
