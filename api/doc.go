// Package api holds Sedna's resources as Sedna's users write them
// (apiVersion sedna.io/v1alpha1): Dataset, Model, JointInferenceService,
// IncrementalLearningJob, FederatedLearningJob and LifelongLearningJob, with
// Sedna's field names, so that their YAML files apply unchanged.
//
// It parses multi-document YAML, keeps every field it does not use (Kubernetes
// resources, images, volumes: listed by Ignored, shown by `sedna describe`,
// never an error), validates what it uses with errors that name the field,
// and says which workers a job needs and where (from each template's
// spec.nodeName). Status types (Sedna-style conditions) live here too.
//
// The package is pure: no broker, no store. The cloud manager admits and
// persists resources; the agents run their workers.
package api
