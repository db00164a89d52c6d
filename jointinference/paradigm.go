package jointinference

import (
	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/workers"
)

// Paradigm is joint inference as the runtime runs it: the "edge" worker
// on the node of a JointInferenceService, the "cloud" worker in the cloud.
type Paradigm struct{}

var _ paradigm.Paradigm = Paradigm{}

// Kind is api.KindJointInferenceService.
func (Paradigm) Kind() string { return api.KindJointInferenceService }

// Name is "ji".
func (Paradigm) Name() string { return "ji" }

// View: every worker decides (a service runs while both workers run).
func (Paradigm) View() paradigm.View { return paradigm.View{} }

// Edge serves a node's services: their input topics, the edge model, the
// hard-example miner and the offloads.
func (Paradigm) Edge(env paradigm.Env) (paradigm.Half, error) {
	e := NewEdge(env)
	return paradigm.Half{Workers: map[string]workers.Builtin{"edge": e.Worker()},
		Drivers: map[string]workers.Builtin{"edge": e.ExternalWorker()}, Close: e.Close}, nil
}

// Cloud answers every node's offloads with the services' cloud models.
func (Paradigm) Cloud(env paradigm.Env) (paradigm.Half, error) {
	c, err := NewCloud(env)
	if err != nil {
		return paradigm.Half{}, err
	}
	return paradigm.Half{Workers: map[string]workers.Builtin{"cloud": c.Worker()},
		Drivers: map[string]workers.Builtin{"cloud": c.ExternalWorker()}, Close: c.Close}, nil
}
