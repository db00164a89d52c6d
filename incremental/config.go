package incremental

import (
	"fmt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/topics"
)

// job is what the halves read of an IncrementalLearningJob's spec.
type job struct {
	ref       topics.JobRef
	spec      *api.IncrementalLearningJobSpec
	rules     Rules
	dataset   string
	trainProb float64
	initial   string // the model that serves before the first deploy
	deploy    string // the model each deploy makes a version of
	rev       topics.Revision
	// task is what the models do (the deploy template's SEDNA_IL_TASK):
	// classification, or detection with a window classifier.
	task jointinference.Task
}

func jobOf(ref topics.JobRef, doc []byte) (*job, error) {
	res, err := api.ParseDocument(doc)
	if err != nil {
		return nil, err
	}
	s, ok := res.Spec.(*api.IncrementalLearningJobSpec)
	if !ok {
		return nil, fmt.Errorf("incremental: a %s, not an IncrementalLearningJob", res.Kind)
	}
	j := &job{ref: ref, spec: s, dataset: s.Dataset.Name, trainProb: s.Dataset.TrainProb, initial: s.InitialModel.Name,
		deploy: s.DeploySpec.Model.Name}
	if j.trainProb == 0 {
		j.trainProb = 0.8 // Sedna's default
	}
	if j.rules.TrainTrigger, err = NewTrigger(&s.TrainSpec.Trigger); err != nil {
		return nil, fmt.Errorf("incremental: spec.trainSpec.trigger: %w", err)
	}
	if j.rules.DeployTrigger, err = NewTrigger(s.DeploySpec.Trigger); err != nil {
		return nil, fmt.Errorf("incremental: spec.deploySpec.trigger: %w", err)
	}
	params := map[string]string{}
	if cs := s.DeploySpec.Template.Spec.Containers; len(cs) > 0 {
		for _, e := range cs[0].Env {
			params[e.Name] = e.Value
		}
	}
	if j.task, err = taskOf(params); err != nil {
		return nil, fmt.Errorf("spec.deploySpec.template: %w", err)
	}
	if sc := s.StopCondition; sc != nil {
		j.rules.MaxCycles, j.rules.Target = sc.MaxCycles, sc.Target
	}
	return j, nil
}
