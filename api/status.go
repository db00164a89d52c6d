package api

import "time"

// Condition types and statuses, as Sedna's.
const (
	ConditionPending   = "Pending"
	ConditionAccepted  = "Accepted"
	ConditionRunning   = "Running"
	ConditionCompleted = "Completed"
	ConditionFailed    = "Failed"

	StatusTrue  = "True"
	StatusFalse = "False"
)

// Condition is one observation of a resource's state, Sedna-style.
type Condition struct {
	Type               string    `json:"type" msgpack:"type"`
	Status             string    `json:"status" msgpack:"status"`
	LastHeartbeatTime  time.Time `json:"lastHeartbeatTime" msgpack:"hb"`
	LastTransitionTime time.Time `json:"lastTransitionTime" msgpack:"tr"`
	Reason             string    `json:"reason,omitempty" msgpack:"reason,omitempty"`
	Message            string    `json:"message,omitempty" msgpack:"msg,omitempty"`
	// Stage and Data are a learning job's stage condition, as Sedna's
	// IncrementalLearningJob and LifelongLearningJob write them: the stage
	// (Train, Eval, Deploy) and its input or output as JSON.
	Stage string `json:"stage,omitempty" msgpack:"stage,omitempty"`
	Data  string `json:"data,omitempty" msgpack:"data,omitempty"`
}

// WorkerStatus is what the control plane knows of one worker.
type WorkerStatus struct {
	Role     string    `json:"role" msgpack:"role"`
	Node     string    `json:"node" msgpack:"node"`
	Phase    string    `json:"phase" msgpack:"phase"` // Pending, Running, Restarting, CrashLoopBackOff, Succeeded, Failed, Stopped
	Restarts int       `json:"restarts" msgpack:"restarts"`
	ExitCode *int      `json:"exitCode,omitempty" msgpack:"exit,omitempty"`
	Message  string    `json:"message,omitempty" msgpack:"msg,omitempty"`
	Updated  time.Time `json:"updated" msgpack:"t"`
	// Failures counts the failures in a row since the worker last ran
	// long enough to count as stable; CrashLoopFailures of them make it
	// crash-looping, even while it runs again.
	Failures int `json:"failures,omitempty" msgpack:"failures,omitempty"`
	// LastError is the error of its last failure, kept while it runs
	// again.
	LastError string `json:"lastError,omitempty" msgpack:"lastErr,omitempty"`
	// Generation and Created are the revision of the job the worker
	// runs: a report of a worker replaced since (its last "Stopped") is
	// not taken for the new one's.
	Generation uint64 `json:"generation,omitempty" msgpack:"gen,omitempty"`
	Created    int64  `json:"-" msgpack:"created,omitempty"`
	// Metrics are the worker's own numbers, as it last reported them.
	Metrics map[string]float64 `json:"metrics,omitempty" msgpack:"metrics,omitempty"`
}

// Status is a resource's observed state: conditions, workers, and numbers
// that depend on the kind (numberOfSamples for a Dataset, the version and
// digest of a Model, a job's round or stage).
type Status struct {
	Phase          string             `json:"phase" msgpack:"phase"`
	Generation     uint64             `json:"generation" msgpack:"gen"`
	Conditions     []Condition        `json:"conditions" msgpack:"conds"`
	Workers        []WorkerStatus     `json:"workers,omitempty" msgpack:"workers,omitempty"`
	StartTime      *time.Time         `json:"startTime,omitempty" msgpack:"start,omitempty"`
	CompletionTime *time.Time         `json:"completionTime,omitempty" msgpack:"done,omitempty"`
	Metrics        map[string]float64 `json:"metrics,omitempty" msgpack:"metrics,omitempty"`
	// NumberOfSamples is a Dataset's size as its node reports it.
	NumberOfSamples *int64 `json:"numberOfSamples,omitempty" msgpack:"samples,omitempty"`
	// DatasetProblem is why a Dataset's node cannot read its file.
	DatasetProblem string `json:"datasetProblem,omitempty" msgpack:"dsProblem,omitempty"`
	// Model is a Model's registered version, and which nodes hold it.
	Model *ModelStatus `json:"model,omitempty" msgpack:"model,omitempty"`
	// Pending names what an accepted resource still waits for.
	Pending  []string  `json:"pending,omitempty" msgpack:"pending,omitempty"`
	Progress *Progress `json:"progress,omitempty" msgpack:"progress,omitempty"`
	// ReadyWorkers of DesiredWorkers run now; Restarts sums the
	// workers' restarts.
	ReadyWorkers   int `json:"readyWorkers,omitempty" msgpack:"ready,omitempty"`
	DesiredWorkers int `json:"desiredWorkers,omitempty" msgpack:"desired,omitempty"`
	Restarts       int `json:"restarts,omitempty" msgpack:"restarts,omitempty"`
	// Stage is where a learning job's cycles are, as its controller last
	// said (its stage conditions are in Conditions, with Stage set).
	Stage *StageStatus `json:"stage,omitempty" msgpack:"stage,omitempty"`
	// KnowledgeBase is a lifelong job's, as its last deploy made it, in
	// Sedna's shape.
	KnowledgeBase *KnowledgeBase `json:"knowledgeBase,omitempty" msgpack:"kb,omitempty"`
}

// KnowledgeBase is a lifelong job's knowledge base in its status, as
// Sedna's: its task models, its classes and its unseen samples.
type KnowledgeBase struct {
	AIModels  AIModels  `json:"AIModels" msgpack:"models"`
	AIClasses AIClasses `json:"AIClasses" msgpack:"classes"`
	Samples   KBSamples `json:"samples" msgpack:"samples"`
	// Version is the version of the job's knowledge-base Model.
	Version uint64 `json:"version,omitempty" msgpack:"version,omitempty"`
}

// AIModels are a knowledge base's task models.
type AIModels struct {
	NumberOfAIModels int       `json:"numberOfAIModels" msgpack:"n"`
	ListOfAIModels   []AIModel `json:"listOfAIModels,omitempty" msgpack:"list,omitempty"`
}

// AIModel is one task's model: Sedna's fields, and its accuracy on its
// task's held-out samples and the task's attribute.
type AIModel struct {
	ModelID              string   `json:"modelID" msgpack:"id"`
	AveragePrecision     float64  `json:"averagePrecision" msgpack:"precision"`
	NumberOfTrainSamples int      `json:"numberOfTrainSamples" msgpack:"samples"`
	Accuracy             *float64 `json:"accuracy,omitempty" msgpack:"accuracy,omitempty"`
	Attribute            string   `json:"attribute,omitempty" msgpack:"attr,omitempty"`
}

// AIClasses are the classes the models answer with.
type AIClasses struct {
	NumberOfAIClasses int      `json:"numberOfAIClasses" msgpack:"n"`
	ListOfAIClasses   []string `json:"listOfAIClasses,omitempty" msgpack:"list,omitempty"`
}

// KBSamples count a lifelong job's samples of unseen tasks: labelled, and
// waiting in the cloud for a label.
type KBSamples struct {
	NumberOfLabeledUnseenSample int64 `json:"numberOfLabeledUnseenSample" msgpack:"labelled"`
	NumberOfUnseenSample        int64 `json:"numberOfUnseenSample" msgpack:"unseen"`
}

// StageStatus is where a learning job's cycles are.
type StageStatus struct {
	// Cycle is the current cycle (from 1); Stage and Phase where it is.
	Cycle int64  `json:"cycle" msgpack:"cycle"`
	Stage string `json:"stage" msgpack:"stage"`
	Phase string `json:"phase" msgpack:"phase"`
	// Serving is the model version that serves; Deployed counts the
	// cycles whose model was deployed.
	Serving  uint64 `json:"serving" msgpack:"serving"`
	Deployed int64  `json:"deployed" msgpack:"deployed"`
	// Done is set once a stop condition of the job held, Reason says
	// which: the job is Completed (its inference worker serves on).
	Done   bool   `json:"done,omitempty" msgpack:"done,omitempty"`
	Reason string `json:"reason,omitempty" msgpack:"reason,omitempty"`
}

// StageConditionsKept is how many stage conditions a status keeps (the
// newest); the job's events keep every one.
const StageConditionsKept = 30

// AddStageCondition appends a learning job's stage condition (c.Stage
// set), keeping the newest StageConditionsKept.
func (s *Status) AddStageCondition(c Condition) {
	s.Conditions = append(s.Conditions, c)
	n := 0
	for _, x := range s.Conditions {
		if x.Stage != "" {
			n++
		}
	}
	if n <= StageConditionsKept {
		return
	}
	drop := n - StageConditionsKept
	out := s.Conditions[:0]
	for _, x := range s.Conditions {
		if x.Stage != "" && drop > 0 {
			drop--
			continue
		}
		out = append(out, x)
	}
	s.Conditions = out
}

// Progress counts a job's rounds or stages.
type Progress struct {
	Done  int    `json:"done" msgpack:"done"`
	Total int    `json:"total" msgpack:"total"`
	Unit  string `json:"unit" msgpack:"unit"` // "rounds", "stages"
}

// SetCondition records a condition, moving its transition time only when
// its status changes. Stage conditions (AddStageCondition) are apart: a
// stage's "Running" is not the job's.
func (s *Status) SetCondition(typ, status, reason, message string, now time.Time) {
	for i := range s.Conditions {
		c := &s.Conditions[i]
		if c.Type == typ && c.Stage == "" {
			if c.Status != status {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason, c.Message, c.LastHeartbeatTime = status, reason, message, now
			return
		}
	}
	s.Conditions = append(s.Conditions, Condition{Type: typ, Status: status, Reason: reason, Message: message, LastHeartbeatTime: now, LastTransitionTime: now})
}

// Condition returns the condition of a type (not a stage condition).
func (s *Status) Condition(typ string) (Condition, bool) {
	for _, c := range s.Conditions {
		if c.Type == typ && c.Stage == "" {
			return c, true
		}
	}
	return Condition{}, false
}

// ModelStatus is what the registry holds of a Model.
type ModelStatus struct {
	Version uint64            `json:"version" msgpack:"version"`
	Digest  string            `json:"digest" msgpack:"digest"` // sha256:hex
	Size    int64             `json:"size" msgpack:"size"`
	Format  string            `json:"format" msgpack:"format"`
	Source  string            `json:"source" msgpack:"source"` // the file it came from, or "push"
	Metrics map[string]string `json:"metrics,omitempty" msgpack:"metrics,omitempty"`
	// Nodes maps each node that needs the model to the version it holds.
	Nodes map[string]uint64 `json:"nodes,omitempty" msgpack:"nodes,omitempty"`
}
