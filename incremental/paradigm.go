package incremental

import (
	"context"
	"log/slog"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/workers"
)

// Paradigm is incremental learning as the runtime runs it: the controller
// at the node of each job's Dataset and the inference worker ("deploy")
// at the edge; the labelling, the sets and the stages in the cloud, Train
// and Eval done by an edge node's workers when their templates place them
// there.
type Paradigm struct{}

var _ paradigm.Paradigm = Paradigm{}

// Kind is api.KindIncrementalLearningJob.
func (Paradigm) Kind() string { return api.KindIncrementalLearningJob }

// Name is "il".
func (Paradigm) Name() string { return "il" }

// View: the inference worker decides whether the job runs (the training
// and evaluation workers run the stages when asked).
func (Paradigm) View() paradigm.View { return paradigm.View{Deciders: []string{"deploy"}} }

// Edge starts a node's controllers and gives it the inference worker, and
// the training and evaluation workers for stages placed on the node.
func (Paradigm) Edge(env paradigm.Env) (paradigm.Half, error) { return Incremental.EdgeHalf(env) }

// Cloud starts the cloud's labelling and stages, and gives it the
// training and evaluation workers, which stand for the cloud's stage
// runner in the job's status.
func (Paradigm) Cloud(env paradigm.Env) (paradigm.Half, error) { return Incremental.CloudHalf(env) }

// EdgeHalf is the flavour's edge half: the node's controllers, the
// inference worker ("deploy"), and the training and evaluation workers
// for stages placed on the node.
func (fl Flavour) EdgeHalf(env paradigm.Env) (paradigm.Half, error) {
	e, err := fl.NewEdge(env)
	if err != nil {
		return paradigm.Half{}, err
	}
	return paradigm.Half{Workers: map[string]workers.Builtin{"deploy": e.Inference(), "train": e.stageWorker(Train), "eval": e.stageWorker(Eval)},
		Drivers: map[string]workers.Builtin{"deploy": e.ExternalInference(), "train": e.stageWorker(Train), "eval": e.stageWorker(Eval)},
		Close:   e.Close}, nil
}

// CloudHalf is the flavour's cloud half: the labelling and the stages,
// and the training and evaluation workers, which stand for the cloud's
// stage runner in the job's status.
func (fl Flavour) CloudHalf(env paradigm.Env) (paradigm.Half, error) {
	c, err := fl.NewCloud(env)
	if err != nil {
		return paradigm.Half{}, err
	}
	standBy := func(ctx context.Context, spec workers.Spec, log *slog.Logger) error {
		spec.Say("runs the job's " + spec.Role + " attempts when its controller asks")
		<-ctx.Done()
		return nil
	}
	return paradigm.Half{Workers: map[string]workers.Builtin{"train": standBy, "eval": standBy},
		Drivers: map[string]workers.Builtin{"train": c.driver(Train), "eval": c.driver(Eval)},
		Close:   c.Close, Ops: c.ops()}, nil
}
