package simulator

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/topics"
)

// Learning is a scenario's incremental learning companion (real mode): a
// camera on one node's broker sending the drifting frames of the example
// (examples/incremental) to an IncrementalLearningJob of the scenario's
// jobs files, and an oracle labelling each hard example the cloud
// announces, as a labelling tool would (on the job's label topic, as an
// operator). The initial model is trained and pushed by the run. The job's
// Dataset may name ${SIM_DATA}/incremental-samples.txt, an empty file the
// run writes (the job's samples are then the labelled hard examples).
type Learning struct {
	Job          string  `json:"job"`          // the job's name (namespace default)
	Node         string  `json:"node"`         // the camera's node
	InitialModel string  `json:"initialModel"` // the job's initialModel, pushed by the run
	Rate         float64 `json:"rate"`         // frames per second; default 100
	Frames       int     `json:"frames"`       // default 2000, at most 16000
}

// LearningSamplesFile is the empty Dataset file the run writes for a
// Learning companion's job.
const LearningSamplesFile = "incremental-samples.txt"

func (l *Learning) check(s *Scenario) []error {
	var errs []error
	fail := func(f string, a ...any) { errs = append(errs, fmt.Errorf("incremental: "+f, a...)) }
	if s.Mode != "real" {
		fail("a companion of real mode only")
	}
	if l.Job == "" || l.InitialModel == "" {
		fail("job and initialModel are required")
	}
	if _, err := s.NodesOf([]string{l.Node}); err != nil || l.Node == "" {
		fail("node %q: %v", l.Node, err)
	}
	if l.Rate < 0 || l.Rate > 10000 || l.Frames < 0 || l.Frames > 16000 {
		fail("rate %v (at most 10000 a second), frames %d (at most 16000)", l.Rate, l.Frames)
	}
	return errs
}

// startLearning pushes the initial model, starts the oracle and the
// camera.
func (r *realRun) startLearning(ctx context.Context, c *cloud.Client) (*companion, error) {
	l := r.s.Incremental
	rate, frames := l.Rate, l.Frames
	if rate == 0 {
		rate = 100
	}
	if frames == 0 {
		frames = 2000
	}
	base, stream, _, _, err := drift.Data()
	if err != nil {
		return nil, err
	}
	m, err := drift.TrainInitial(ctx, base)
	if err != nil {
		return nil, err
	}
	blob, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.PushModel(pctx, "default", l.InitialModel, "sedna-ml", nil, bytes.NewReader(blob)); err != nil {
		return nil, fmt.Errorf("incremental: the initial model: %w", err)
	}
	ref := topics.JobRef{Kind: "IncrementalLearningJob", Namespace: "default", Name: l.Job}
	return r.startCompanion(ctx, "il", ref, drift.Labels(stream, "s-"), l.Node, incremental.InputTopic(ref.Namespace, ref.Name), rate, frames,
		func(i int) jointinference.Request { return drift.Request(stream, i, "s-") })
}

// writeLearningFile writes the empty Dataset file of a Learning companion.
func writeLearningFile(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, LearningSamplesFile), nil, 0o644)
}
