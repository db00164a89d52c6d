package federated

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// EdgeEnv is what the training worker needs of its node: the node's
// paradigm.Env. The global models arrive on Bus; updates and joins go to
// the cloud with Bus.Send on the bulk stream; Data.Samples reads the
// node's Dataset in place (raw samples never leave the node).
type EdgeEnv = paradigm.Env

// Trainer is the built-in training worker of a FederatedLearningJob: on
// each round's global model it trains on its node's Dataset and sends the
// weights back.
func Trainer(env EdgeEnv) workers.Builtin {
	return func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		cfg, err := parseTrainConfig(spec)
		if err != nil {
			return err
		}
		t := &trainer{env: env, spec: spec, cfg: cfg, log: log, in: make(chan []byte, 64)}
		return t.run(ctx)
	}
}

type trainer struct {
	env   EdgeEnv
	spec  workers.Spec
	cfg   *trainConfig
	log   *slog.Logger
	in    chan []byte
	run_  uint64 // the run of the last round trained
	round int64  // the last round trained
	// the global model being assembled
	asmRun   uint64
	asmRound int64
	asm      *paradigm.Assembly
	trained  int64
	pending  *pendingRound // a round waiting for samples
	last     [][]byte      // the last update sent (its messages), sent again when the cloud asks
	waited   int64         // the last round that waited for samples
	doneRun  uint64        // the run of a "done" that came before any round, being checked
	// the samples parsed so far, for a model of cacheShape (inputs, classes),
	// up to sample number cacheAfter
	cache      *samples
	cacheAfter uint64
	cacheShape [2]int
	dropped    atomic.Int64
	// The shape of the Dataset (never its samples), told in each join.
	shape datasetShape
	told  datasetReport // the shape told in the last join
	// heard: a message of the job came from the cloud. Until one does,
	// the worker looks at its Dataset every second and joins again when
	// what it would tell changes, and every rejoinTicks seconds anyway:
	// an aggregation worker that sizes its model by the Datasets waits
	// for it (and may have started after the last join).
	heard     bool
	sinceJoin int
	unusable  bool // the Dataset was said to have no usable sample
}

// rejoinTicks is how many seconds a worker that has heard nothing from
// the cloud waits before it joins again.
const rejoinTicks = 10

func (t *trainer) run(ctx context.Context) error {
	topic := topics.JobTopic(t.spec.Job, "global")
	stop, err := t.env.Bus.Subscribe(topic, func(m paradigm.Message) error {
		select {
		case t.in <- m.Payload:
		default:
			// The worker is training and far behind: it asks for the
			// current round again once it is free.
			t.dropped.Add(1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("federated: subscribe %s: %w", topic, err)
	}
	defer func() { _ = stop() }()
	t.log.Info("federated: training worker ready", "dataset", t.cfg.dataset, "epochs", t.cfg.fit.Epochs,
		"batch", t.cfg.fit.BatchSize, "learningRate", t.cfg.fit.LearningRate, "optimizer", t.cfg.fit.Optimizer)
	if err := t.lookAtDataset(); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while it read
		}
		return err
	}
	up, linkCh := t.env.Bus.Link()
	if up {
		t.join()
	}
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
			// A round that found no samples yet (the Dataset is still being
			// read) is tried again.
			if p := t.pending; p != nil {
				t.pending = nil
				if err := t.train(ctx, p.g, p.blob); err != nil {
					return err
				}
			}
			if !t.heard && up {
				if err := t.lookAtDataset(); err != nil {
					if ctx.Err() != nil {
						return nil // stopped while it read
					}
					return err
				}
				if t.sinceJoin++; t.sinceJoin >= rejoinTicks || t.told.changed(t.shape.report()) {
					t.join()
				}
			}
		case <-linkCh:
			var now bool
			now, linkCh = t.env.Bus.Link()
			if now && !up {
				t.join() // back online: ask for the current round
			}
			up = now
		case raw := <-t.in:
			done, err := t.take(ctx, raw)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
			if t.dropped.Swap(0) > 0 && up {
				t.join() // pieces were dropped while it trained: ask again
			}
		}
	}
}

type pendingRound struct {
	g    global
	blob []byte
}

// join asks the cloud for the current round's global model, and tells it
// the shape of the Dataset as last looked at.
func (t *trainer) join() {
	rep := t.shape.report()
	t.told, t.sinceJoin = rep, 0
	raw, err := topics.Encode(KindJoin, "federated/edge", join{Gen: t.spec.Generation, Role: t.spec.Role, Run: t.run_, Round: t.round, Data: &rep})
	if err != nil {
		return
	}
	if err := t.env.Bus.Send(paradigm.Outbound{Topic: JoinTopic(t.env.Node, t.spec.Job), Payload: raw, Expires: time.Now().Add(time.Minute), Bulk: true}); err != nil {
		t.log.Warn("federated: join not queued", "error", err)
	}
}

// lookAtDataset reads the Dataset's new samples for its shape, and says
// once, clearly, when it has lines and none of them is a sample the
// worker can train on. A Dataset that cannot be read is an error.
func (t *trainer) lookAtDataset() error {
	err := t.shape.look(func(after uint64, fn func(uint64, []byte) error) error {
		return t.env.Data.Samples(t.spec.Job.Namespace, t.cfg.dataset, after, fn)
	})
	if err != nil {
		return fmt.Errorf("federated: dataset %s: not read: %w", t.cfg.dataset, err)
	}
	rep := t.shape.report()
	switch {
	case rep.Rows > 0:
		if t.unusable {
			t.spec.Say("")
		}
		t.unusable = false
	case rep.Settled && !t.unusable:
		t.unusable = true
		msg := fmt.Sprintf("%s: none of the %d lines of Dataset %s on %s is a sample it can train on: label,f1,f2,... (a whole label, then numbers; a txt list of image files is not read by the built-in training worker)",
			t.spec.Role, rep.Bad, t.cfg.dataset, t.env.Node)
		t.log.Warn("federated: "+msg, "dataset", t.cfg.dataset)
		t.spec.Event("Warning", "DatasetUnusable", msg)
		t.spec.Say(msg)
	}
	return nil
}

// take handles a piece of a global model; it trains once one is whole.
func (t *trainer) take(ctx context.Context, raw []byte) (done bool, err error) {
	env, err := topics.UnmarshalEnvelope(raw, msgLimits)
	if err != nil || env.Kind != KindGlobal {
		t.log.Warn("federated: not a global model", "error", err)
		return false, nil
	}
	var g global
	if err := env.DecodeBody(&g); err != nil {
		t.log.Warn("federated: global model not understood", "error", err)
		return false, nil
	}
	if g.Gen < t.spec.Generation {
		return false, nil // for an older version of the job
	}
	if g.Done {
		switch {
		case t.run_ != 0 && g.Run != t.run_:
			return false, nil // the end of an earlier run
		case t.run_ == 0 && t.doneRun != g.Run:
			// Before any round, a "done" may be an old one still on its
			// way (a job deleted and applied again): the worker asks, and
			// ends when the answer says the same.
			t.doneRun = g.Run
			t.join()
			return false, nil
		}
		t.log.Info("federated: the job is over", "round", g.Round)
		return true, nil
	}
	t.heard = true // a round of this job: the cloud has its model
	if g.Run == t.run_ && g.Round <= t.round {
		if g.Round == t.round && g.Chunk == 0 {
			t.resend() // the cloud asks again: its copy of the update was lost
		}
		return false, nil
	}
	t.pending = nil // a newer round replaces one waiting for samples
	switch {
	case t.asm == nil || g.Run != t.asmRun || g.Round > t.asmRound:
		t.asmRun, t.asmRound, t.asm = g.Run, g.Round, &paradigm.Assembly{Max: g.Size, MinPiece: minChunkBytes}
	case g.Round < t.asmRound:
		return false, nil // a piece of an older round, while a newer one comes
	}
	whole, err := t.asm.Add(g.Chunk, g.Chunks, g.Data)
	if err != nil {
		t.log.Warn("federated: global model piece refused", "error", err)
		t.asm = nil
		return false, nil
	}
	if !whole {
		return false, nil
	}
	blob := t.asm.Bytes()
	t.asm = nil
	if len(blob) != g.Size {
		t.log.Warn("federated: global model of the wrong size", "got", len(blob), "want", g.Size)
		return false, nil
	}
	// A newer round may be waiting already: train on the newest.
	if t.newerWaiting(g) {
		return false, nil
	}
	return false, t.train(ctx, g, blob)
}

// newerWaiting reports whether a piece of a later round is queued (the
// worker was offline, and the cloud's queue delivers rounds in a burst).
func (t *trainer) newerWaiting(g global) bool {
	n := len(t.in)
	for range n {
		raw := <-t.in
		select {
		case t.in <- raw: // back at the end: the order is kept
		default: // the handler took the slot: this piece is dropped, a join asks again
			t.dropped.Add(1)
		}
		env, err := topics.UnmarshalEnvelope(raw, msgLimits)
		if err != nil {
			continue
		}
		var h global
		if env.DecodeBody(&h) == nil && h.Run == g.Run && h.Round > g.Round {
			return true
		}
	}
	return false
}

func (t *trainer) train(ctx context.Context, g global, blob []byte) error {
	model, err := ml.Unmarshal(blob)
	if err != nil {
		t.log.Warn("federated: global model unusable", "round", g.Round, "error", err)
		return nil
	}
	data, err := t.samples(model.Inputs(), model.Classes())
	if err != nil {
		return err
	}
	if data.rows() == 0 {
		if t.waited != g.Round {
			t.waited = g.Round
			if data.bad > 0 {
				t.log.Warn("federated: none of the Dataset's samples is usable: each line must be label,features with the model's inputs and a label below its classes; trying again every second",
					"dataset", t.cfg.dataset, "round", g.Round, "unusable", data.bad, "inputs", model.Inputs(), "classes", model.Classes())
			} else {
				t.log.Warn("federated: no samples to train on yet; trying again every second", "dataset", t.cfg.dataset, "round", g.Round)
			}
		}
		t.report(g, 0, 0, 0, data.bad)
		t.pending = &pendingRound{g, blob}
		return nil
	}
	fit := t.cfg.fit
	fit.Seed = seedOf(t.spec.Role, g.Round)
	var loss float64
	fit.Progress = func(p ml.Progress) { loss = p.Loss }
	start := time.Now()
	if err := model.Fit(ctx, data.x, data.y, fit); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		t.log.Warn("federated: training failed", "round", g.Round, "error", err)
		return nil
	}
	took := time.Since(start).Seconds()
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		t.log.Warn("federated: training diverged (the loss is not a number): no update; lower learning_rate", "round", g.Round, "learningRate", t.cfg.fit.LearningRate)
		t.report(g, data.rows(), 0, took, data.bad)
		return nil
	}
	weights := f32le(model.Weights())
	parts := paradigm.Chunks(weights, defaultChunkBytes)
	var sent [][]byte
	for i, p := range parts {
		raw, err := topics.Encode(KindUpdate, "federated/edge", update{Run: g.Run, Round: g.Round, Role: t.spec.Role,
			Chunk: i, Chunks: len(parts), Params: model.NumWeights(), Samples: int64(data.rows()), Loss: loss, Train: took, Data: p})
		if err != nil {
			return err
		}
		sent = append(sent, raw)
	}
	// Recorded as trained before it is sent: a piece the bridge refuses
	// (a full disk) is sent again when the cloud asks for the round again.
	t.run_, t.round, t.last = g.Run, g.Round, sent
	t.resend()
	t.trained++
	t.report(g, data.rows(), loss, took, data.bad)
	t.log.Debug("federated: update sent", "round", g.Round, "samples", data.rows(), "loss", loss, "seconds", took)
	return nil
}

// resend queues the last update for the cloud (again).
func (t *trainer) resend() {
	for _, raw := range t.last {
		if err := t.env.Bus.Send(paradigm.Outbound{Topic: UpdateTopic(t.env.Node, t.spec.Job), Payload: raw, Expires: time.Now().Add(10 * time.Minute), Bulk: true}); err != nil {
			t.log.Warn("federated: update not queued; it is sent again when the cloud asks", "round", t.round, "error", err)
			return
		}
	}
}

// samples reads the node's Dataset (lines label,features...).
// It keeps what it parsed and reads only the samples added since (a
// Dataset's file is followed as it grows), so a round does not parse the
// whole Dataset again.
func (t *trainer) samples(inputs, classes int) (*samples, error) {
	if t.cache == nil || t.cacheShape != [2]int{inputs, classes} {
		t.cache, t.cacheAfter, t.cacheShape = &samples{cols: inputs}, 0, [2]int{inputs, classes}
	}
	fresh := &samples{cols: inputs}
	last := t.cacheAfter
	err := t.env.Data.Samples(t.spec.Job.Namespace, t.cfg.dataset, t.cacheAfter, func(i uint64, line []byte) error {
		fresh.add(line)
		last = i
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("federated: dataset %s: %w", t.cfg.dataset, err)
	}
	fresh.keep(classes)
	t.cache.x = append(t.cache.x, fresh.x...)
	t.cache.y = append(t.cache.y, fresh.y...)
	t.cache.bad += fresh.bad
	t.cacheAfter = last
	return t.cache, nil
}

func (t *trainer) report(g global, rows int, loss, took float64, bad int) {
	if t.spec.ReportMetrics == nil {
		return
	}
	t.spec.ReportMetrics(map[string]float64{"clientRound": float64(g.Round), "clientSamples": float64(rows),
		"clientLoss": loss, "clientTrainSeconds": took, "clientRoundsTrained": float64(t.trained),
		"clientBadSamples": float64(bad)})
}

// seedOf gives each client and round its own shuffling.
func seedOf(role string, round int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(role))
	return h.Sum64() ^ uint64(round)*0x9e3779b97f4a7c15
}
