package incremental

import (
	"fmt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
)

// job is what the halves read of a job's spec.
type job struct {
	ref     topics.JobRef
	fl      Flavour
	spec    JobSpec
	rules   Rules
	dataset string
	// trainProb is the share of labelled examples the train set gets.
	trainProb float64
	initial   string // the model that serves before the first deploy
	deploy    string // the model each deploy makes a version of
	rev       topics.Revision
	// task is what the models do (the deploy template's SEDNA_IL_TASK):
	// classification, or detection with a window classifier.
	task jointinference.Task
}

func jobOf(fl Flavour, ref topics.JobRef, doc []byte) (*job, error) {
	res, err := api.ParseDocument(doc)
	if err != nil {
		return nil, err
	}
	if res.Kind != fl.Kind {
		return nil, fmt.Errorf("%s: a %s, not a %s", fl.Source, res.Kind, fl.Kind)
	}
	s, err := fl.Job(res)
	if err != nil {
		return nil, err
	}
	j := &job{ref: ref, fl: fl, spec: s, dataset: s.Dataset, trainProb: s.TrainProb, initial: s.Initial, deploy: s.Deploy}
	if j.trainProb == 0 {
		j.trainProb = 0.8 // Sedna's default
	}
	trigger := s.TrainTrigger
	if j.rules.TrainTrigger, err = NewTrigger(&trigger); err != nil {
		return nil, fmt.Errorf("%s: spec.trainSpec.trigger: %w", fl.Source, err)
	}
	if j.rules.DeployTrigger, err = NewTrigger(s.DeployTrigger); err != nil {
		return nil, fmt.Errorf("%s: spec.deploySpec.trigger: %w", fl.Source, err)
	}
	params := map[string]string{}
	if cs := s.DeployTemplate.Spec.Containers; len(cs) > 0 {
		for _, e := range cs[0].Env {
			params[e.Name] = e.Value
		}
	}
	if j.task, err = taskOf(params); err != nil {
		return nil, fmt.Errorf("spec.deploySpec.template: %w", err)
	}
	if sc := s.Stop; sc != nil {
		j.rules.MaxCycles, j.rules.Target = sc.MaxCycles, sc.Target
	}
	if !s.External {
		for field, t := range map[string]api.PodTemplate{"trainSpec": s.TrainTemplate, "evalSpec": s.EvalTemplate, "deploySpec": s.DeployTemplate} {
			if commanded(t) {
				return nil, fmt.Errorf("%s: spec.%s.template runs a command: this kind of job has built-in workers only", fl.Source, field)
			}
		}
	}
	return j, nil
}

// topic is one of the job's device topics: {prefix}/{ns}/{job}/{what}
// (input, result, inferred).
func (j *job) topic(what string) string {
	return j.fl.Prefix + "/" + j.ref.Namespace + "/" + j.ref.Name + "/" + what
}

// learner is the job's learner on a side.
func (j *job) learner(env paradigm.Env) (Learner, error) {
	if j.spec.Learner == nil {
		return networkLearner{task: j.task}, nil
	}
	return j.spec.Learner(env)
}
