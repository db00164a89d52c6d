package api

// APIVersion is the only version accepted, Sedna's.
const APIVersion = "sedna.io/v1alpha1"

// The kinds.
const (
	KindDataset                = "Dataset"
	KindModel                  = "Model"
	KindJointInferenceService  = "JointInferenceService"
	KindIncrementalLearningJob = "IncrementalLearningJob"
	KindFederatedLearningJob   = "FederatedLearningJob"
	KindLifelongLearningJob    = "LifelongLearningJob"
)

// Kinds lists every kind, resources before the jobs that use them.
var Kinds = []string{KindDataset, KindModel, KindJointInferenceService, KindIncrementalLearningJob, KindFederatedLearningJob, KindLifelongLearningJob}

// ObjectMeta is the part of Kubernetes' metadata that Sedna-Go uses.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// EnvVar is one environment variable of a container; its value reaches the
// worker as a parameter.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Container is the part of a Kubernetes container a worker uses. With a
// Command, the worker is that external process; without, it is the built-in
// worker for the job's kind and role (the Image, user code in Sedna, is
// then only a label).
type Container struct {
	Name       string   `json:"name"`
	Image      string   `json:"image"`
	Command    []string `json:"command"`
	Args       []string `json:"args"`
	Env        []EnvVar `json:"env"`
	WorkingDir string   `json:"workingDir"`
}

// PodSpec places a worker (NodeName) and describes it (the first container).
type PodSpec struct {
	NodeName   string      `json:"nodeName"`
	Containers []Container `json:"containers"`
}

// PodTemplate is a worker's template.
type PodTemplate struct {
	Spec PodSpec `json:"spec"`
}

// ModelRef names a Model.
type ModelRef struct {
	Name string `json:"name"`
}

// DatasetRef names a Dataset and the share of it used for training.
type DatasetRef struct {
	Name      string  `json:"name"`
	TrainProb float64 `json:"trainProb"`
}

// KV is a parameter as Sedna writes them: strings.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// HardExampleMining names a miner plugin and its parameters.
type HardExampleMining struct {
	Name       string `json:"name"`
	Parameters []KV   `json:"parameters"`
}

// DatasetSpec: a file of samples on a node.
type DatasetSpec struct {
	URL      string `json:"url"`
	Format   string `json:"format"`
	NodeName string `json:"nodeName"`
	// CredentialName names a secret of the cloud (sedna secret create)
	// whose keys the workers that use the Dataset get as environment
	// variables (Sedna's S3 credentials: ACCESS_KEY_ID, ...).
	CredentialName string `json:"credentialName"`
}

// ModelSpec: a model file and its metrics. Format says what the file is:
// FormatSedna (the learning substrate's own), FormatONNX, or "" for either
// (told apart by the file's first bytes); any other word is a format only
// an external worker serves (Sedna's "pb", "pth", ...), which built-in
// workers refuse in one line. An ONNX Model may declare its tensors and
// preprocessing (ModelIO, Sedna-Go's fields); what it leaves out is read
// from the graph.
type ModelSpec struct {
	URL     string `json:"url"`
	Format  string `json:"format"`
	Metrics []KV   `json:"metrics"`
	// CredentialName, as a Dataset's: the workers that use the Model get
	// the secret's keys.
	CredentialName string `json:"credentialName"`
	ModelIO
}

// The model formats built-in workers serve.
const (
	FormatSedna = "sedna"
	// FormatSednaML is FormatSedna's older name, which the examples used.
	FormatSednaML = "sedna-ml"
	FormatONNX    = "onnx"
)

// ModelIO is what an ONNX Model declares about its graph: the input to
// feed and the output to read (name, shape as ONNX writes it, the batch
// axis first), the preprocessing the model was trained with, and whether
// its output is logits (Postprocess "softmax", the default) or
// probabilities ("none"). It travels with each version to the nodes.
type ModelIO struct {
	Inputs      []TensorSpec `json:"inputs,omitempty" msgpack:"inputs,omitempty"`
	Outputs     []TensorSpec `json:"outputs,omitempty" msgpack:"outputs,omitempty"`
	Preprocess  *Preprocess  `json:"preprocess,omitempty" msgpack:"pre,omitempty"`
	Postprocess string       `json:"postprocess,omitempty" msgpack:"post,omitempty"`
}

// Declared says whether any field is set.
func (m ModelIO) Declared() bool {
	return len(m.Inputs) > 0 || len(m.Outputs) > 0 || m.Preprocess != nil || m.Postprocess != ""
}

// TensorSpec names a graph's tensor and, for an input, its shape: batch
// first (-1, or 1), then one sample's dimensions ([-1, 1, 14, 14]).
type TensorSpec struct {
	Name  string  `json:"name,omitempty" msgpack:"name,omitempty"`
	Shape []int64 `json:"shape,omitempty" msgpack:"shape,omitempty"`
}

// Preprocess is what is done to a sample before the model sees it: each
// value times Scale (0 means 1), then (v - Mean[c]) / Std[c] per channel
// (one value: every channel), and an image sent height × width × channels
// reordered for Layout "NCHW" (the default; "NHWC" keeps it).
type Preprocess struct {
	Scale  float32   `json:"scale,omitempty" msgpack:"scale,omitempty"`
	Mean   []float32 `json:"mean,omitempty" msgpack:"mean,omitempty"`
	Std    []float32 `json:"std,omitempty" msgpack:"std,omitempty"`
	Layout string    `json:"layout,omitempty" msgpack:"layout,omitempty"`
}

// EdgeWorker is a joint inference service's edge side.
type EdgeWorker struct {
	Model             ModelRef          `json:"model"`
	HardExampleMining HardExampleMining `json:"hardExampleMining"`
	Template          PodTemplate       `json:"template"`
}

// CloudWorker is a joint inference service's cloud side.
type CloudWorker struct {
	Model    ModelRef    `json:"model"`
	Template PodTemplate `json:"template"`
}

// JointInferenceServiceSpec: a little model on the edge, a big one in the
// cloud, hard examples offloaded.
type JointInferenceServiceSpec struct {
	EdgeWorker  EdgeWorker  `json:"edgeWorker"`
	CloudWorker CloudWorker `json:"cloudWorker"`
}

// Timer is a daily window, "HH:MM" to "HH:MM"; a start after the end wraps
// around midnight (see Window).
type Timer struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// TriggerCondition compares a metric ("num_of_samples",
// "precision_delta[1]") with a threshold by one of Operators (see Check).
type TriggerCondition struct {
	Operator  string  `json:"operator"`
	Threshold float64 `json:"threshold"`
	Metric    string  `json:"metric"`
}

// Trigger says when a stage starts.
type Trigger struct {
	CheckPeriodSeconds int               `json:"checkPeriodSeconds"`
	Timer              *Timer            `json:"timer"`
	Condition          *TriggerCondition `json:"condition"`
}

// TrainSpec is a training stage.
type TrainSpec struct {
	Template PodTemplate `json:"template"`
	Trigger  Trigger     `json:"trigger"`
}

// EvalSpec is an evaluation stage.
type EvalSpec struct {
	Template PodTemplate `json:"template"`
}

// DeployModel is the model an incremental job deploys.
type DeployModel struct {
	Name              string `json:"name"`
	HotUpdateEnabled  bool   `json:"hotUpdateEnabled"`
	PollPeriodSeconds int    `json:"pollPeriodSeconds"`
}

// DeploySpec is a deployment stage.
type DeploySpec struct {
	Model             DeployModel        `json:"model"`
	Trigger           *Trigger           `json:"trigger"`
	HardExampleMining *HardExampleMining `json:"hardExampleMining"`
	Template          PodTemplate        `json:"template"`
}

// IncrementalLearningJobSpec: train, evaluate and deploy again as new
// samples arrive.
type IncrementalLearningJobSpec struct {
	Dataset      DatasetRef `json:"dataset"`
	InitialModel ModelRef   `json:"initialModel"`
	TrainSpec    TrainSpec  `json:"trainSpec"`
	EvalSpec     EvalSpec   `json:"evalSpec"`
	DeploySpec   DeploySpec `json:"deploySpec"`
	OutputDir    string     `json:"outputDir"`
	// CredentialName: the job's workers get the secret's keys.
	CredentialName string `json:"credentialName"`
	// StopCondition is Sedna-Go's: without it the job runs cycles until
	// it is deleted, as in Sedna.
	StopCondition *StopCondition `json:"stopCondition,omitempty"`
}

// StopCondition ends a learning job (Completed; its inference worker
// serves on with the last model): after MaxCycles cycles, or once a
// deployed model's evaluation meets Target ("accuracy >= 0.9").
type StopCondition struct {
	MaxCycles int64             `json:"maxCycles,omitempty"`
	Target    *TriggerCondition `json:"target,omitempty"`
}

// AggregationWorker is a federated job's cloud side.
type AggregationWorker struct {
	Model    ModelRef    `json:"model"`
	Template PodTemplate `json:"template"`
}

// TrainingWorker is one federated client, on the node of its dataset.
type TrainingWorker struct {
	Dataset  DatasetRef  `json:"dataset"`
	Template PodTemplate `json:"template"`
}

// FederatedLearningJobSpec: models train at the edge, an aggregator in the
// cloud combines them.
type FederatedLearningJobSpec struct {
	AggregationWorker AggregationWorker `json:"aggregationWorker"`
	TrainingWorkers   []TrainingWorker  `json:"trainingWorkers"`
	PretrainedModel   ModelRef          `json:"pretrainedModel"`
}

// LifelongDeploySpec is a lifelong job's deployment stage.
type LifelongDeploySpec struct {
	Template PodTemplate `json:"template"`
}

// KnowledgeBaseModel is the Model whose versions are a lifelong job's
// knowledge base ("JOB-kb"), registered by each deploy.
func KnowledgeBaseModel(job string) string { return job + "-kb" }

// LifelongLearningJobSpec: train per task, keep a knowledge base, deploy.
type LifelongLearningJobSpec struct {
	Dataset    DatasetRef         `json:"dataset"`
	TrainSpec  TrainSpec          `json:"trainSpec"`
	EvalSpec   EvalSpec           `json:"evalSpec"`
	DeploySpec LifelongDeploySpec `json:"deploySpec"`
	OutputDir  string             `json:"outputDir"`
	// CredentialName: the job's workers get the secret's keys.
	CredentialName string `json:"credentialName"`
}
