package api

import (
	"fmt"
	"slices"
)

// Worker is one process a job needs: its role, the node that runs it, and
// what to run.
type Worker struct {
	// Role names the worker within its job: "edge", "cloud", "train",
	// "eval", "deploy", "aggregation", "train-0", ...
	Role string `json:"role"`
	// Node runs it: an edge node's name, or the cloud's.
	Node string `json:"node"`
	// Container is the template's first container (zero when it has none).
	Container Container `json:"container"`
	// Params are the container's env values, by name.
	Params map[string]string `json:"params"`
	// Field is the template's path in the document, for messages.
	Field string `json:"field"`
}

// External reports whether the worker is an external process (the template
// gives a command) rather than a built-in.
func (w Worker) External() bool { return len(w.Container.Command) > 0 }

func worker(role, field string, t PodTemplate) Worker {
	w := Worker{Role: role, Node: t.Spec.NodeName, Field: field, Params: map[string]string{}}
	if len(t.Spec.Containers) > 0 {
		w.Container = t.Spec.Containers[0]
		for _, e := range w.Container.Env {
			w.Params[e.Name] = e.Value
		}
	}
	return w
}

// Workers lists the workers of a job kind (none for a Dataset or a Model).
func (r *Resource) Workers() []Worker {
	switch s := r.Spec.(type) {
	case *JointInferenceServiceSpec:
		return []Worker{
			worker("edge", "spec.edgeWorker.template", s.EdgeWorker.Template),
			worker("cloud", "spec.cloudWorker.template", s.CloudWorker.Template),
		}
	case *IncrementalLearningJobSpec:
		return []Worker{
			worker("train", "spec.trainSpec.template", s.TrainSpec.Template),
			worker("eval", "spec.evalSpec.template", s.EvalSpec.Template),
			worker("deploy", "spec.deploySpec.template", s.DeploySpec.Template),
		}
	case *FederatedLearningJobSpec:
		ws := []Worker{worker("aggregation", "spec.aggregationWorker.template", s.AggregationWorker.Template)}
		for i, t := range s.TrainingWorkers {
			ws = append(ws, worker(fmt.Sprintf("train-%d", i), fmt.Sprintf("spec.trainingWorkers[%d].template", i), t.Template))
		}
		return ws
	case *LifelongLearningJobSpec:
		return []Worker{
			worker("train", "spec.trainSpec.template", s.TrainSpec.Template),
			worker("eval", "spec.evalSpec.template", s.EvalSpec.Template),
			worker("deploy", "spec.deploySpec.template", s.DeploySpec.Template),
		}
	}
	return nil
}

// Reference is a resource a job needs, and the field that names it.
type Reference struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Field string `json:"field"`
	// Input is set for a Model the job reads (a model to serve, an
	// initial or pretrained one): the job waits for it to have a version.
	// A Model the job writes (the output of training) need not have one.
	Input bool `json:"input,omitempty"`
}

// References lists the Models and Datasets a resource names (in its own
// namespace).
func (r *Resource) References() []Reference {
	var out []Reference
	add := func(kind, name, field string) {
		if name != "" {
			out = append(out, Reference{Kind: kind, Name: name, Field: field})
		}
	}
	input := func(name, field string) {
		if name != "" {
			out = append(out, Reference{Kind: KindModel, Name: name, Field: field, Input: true})
		}
	}
	switch s := r.Spec.(type) {
	case *JointInferenceServiceSpec:
		input(s.EdgeWorker.Model.Name, "spec.edgeWorker.model.name")
		input(s.CloudWorker.Model.Name, "spec.cloudWorker.model.name")
	case *IncrementalLearningJobSpec:
		add(KindDataset, s.Dataset.Name, "spec.dataset.name")
		input(s.InitialModel.Name, "spec.initialModel.name")
		add(KindModel, s.DeploySpec.Model.Name, "spec.deploySpec.model.name")
	case *FederatedLearningJobSpec:
		add(KindModel, s.AggregationWorker.Model.Name, "spec.aggregationWorker.model.name")
		input(s.PretrainedModel.Name, "spec.pretrainedModel.name")
		for i, w := range s.TrainingWorkers {
			add(KindDataset, w.Dataset.Name, fmt.Sprintf("spec.trainingWorkers[%d].dataset.name", i))
		}
	case *LifelongLearningJobSpec:
		add(KindDataset, s.Dataset.Name, "spec.dataset.name")
		// Its knowledge base's Model is the job's own: the first deploy
		// registers it.
	}
	return out
}

// Nodes lists the nodes a resource places work on, without repeats.
func (r *Resource) Nodes() []string {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if d, ok := r.Spec.(*DatasetSpec); ok {
		add(d.NodeName)
	}
	for _, w := range r.Workers() {
		add(w.Node)
	}
	return out
}

// NodeModels lists, for each node, the Models the resource's workers there
// use (to be distributed to it).
func (r *Resource) NodeModels() map[string][]string {
	out := map[string][]string{}
	add := func(node, model string) {
		if node != "" && model != "" && !slices.Contains(out[node], model) {
			out[node] = append(out[node], model)
		}
	}
	switch s := r.Spec.(type) {
	case *JointInferenceServiceSpec:
		add(s.EdgeWorker.Template.Spec.NodeName, s.EdgeWorker.Model.Name)
		add(s.CloudWorker.Template.Spec.NodeName, s.CloudWorker.Model.Name)
	case *IncrementalLearningJobSpec:
		add(s.TrainSpec.Template.Spec.NodeName, s.InitialModel.Name)
		// The inference worker serves the initial model until a cycle
		// deploys a version of the deploy model.
		add(s.DeploySpec.Template.Spec.NodeName, s.InitialModel.Name)
		add(s.DeploySpec.Template.Spec.NodeName, s.DeploySpec.Model.Name)
	case *FederatedLearningJobSpec:
		add(s.AggregationWorker.Template.Spec.NodeName, s.AggregationWorker.Model.Name)
		for _, w := range s.TrainingWorkers {
			add(w.Template.Spec.NodeName, s.PretrainedModel.Name)
		}
	case *LifelongLearningJobSpec:
		// Training starts from the serving knowledge base; the inference
		// worker serves it.
		kb := KnowledgeBaseModel(r.Metadata.Name)
		add(s.TrainSpec.Template.Spec.NodeName, kb)
		add(s.EvalSpec.Template.Spec.NodeName, kb)
		add(s.DeploySpec.Template.Spec.NodeName, kb)
	}
	return out
}
