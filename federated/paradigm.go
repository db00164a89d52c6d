package federated

import (
	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/workers"
)

// Paradigm is federated learning as the runtime runs it: the "train"
// workers on the nodes that hold the training Datasets, the "aggregation"
// worker in the cloud.
type Paradigm struct{}

var _ paradigm.Paradigm = Paradigm{}

// Kind is api.KindFederatedLearningJob.
func (Paradigm) Kind() string { return api.KindFederatedLearningJob }

// Name is "fl".
func (Paradigm) Name() string { return "fl" }

// View: the aggregation worker decides. The job completes when it has,
// and runs once it runs, with the training workers it has.
func (Paradigm) View() paradigm.View { return paradigm.View{Deciders: []string{"aggregation"}} }

// Edge gives a node its training worker.
func (Paradigm) Edge(env paradigm.Env) (paradigm.Half, error) {
	return paradigm.Half{Workers: map[string]workers.Builtin{"train": Trainer(env)}}, nil
}

// Cloud subscribes to every node's updates and joins and gives the cloud
// its aggregation worker.
func (Paradigm) Cloud(env paradigm.Env) (paradigm.Half, error) {
	c, err := NewCloud(env)
	if err != nil {
		return paradigm.Half{}, err
	}
	return paradigm.Half{Workers: map[string]workers.Builtin{"aggregation": c.Worker()}, Close: c.Close}, nil
}
