package incremental

import (
	"encoding/json"
	"fmt"

	"github.com/sedna-go/sedna/topics"
)

// Envelope kinds of the paradigm's messages.
const (
	// KindExamples: an exampleBatch, a node's hard examples for the cloud.
	KindExamples = topics.KindILExamples
	// KindWaiting: a WaitingExample, announced on the job's waiting topic.
	KindWaiting = topics.KindILWaiting
	// KindLabel: a Label, on the job's label topic.
	KindLabel = topics.KindILLabel
	// KindRun: a runRequest, the controller asking for a stage's attempt.
	KindRun = topics.KindILRun
	// KindStage: a stageReport, an attempt's start, success or failure.
	KindStage = topics.KindILStage
	// KindLabelled: a labelledCount, the labelled examples of the job.
	KindLabelled = topics.KindILLabelled
	// KindAttempt: an AttemptEvent, on the job's attempts topic.
	KindAttempt = topics.KindILAttempt
	// KindWork: a part of a work order for an edge node's train or eval
	// worker, or of its result.
	KindWork = topics.KindILWork
)

// AttemptsTopic is where the cloud announces each stage attempt it runs
// for a job: its start and its end (not retained).
func AttemptsTopic(r topics.JobRef) string { return topics.JobTopic(r, "attempts") }

// AttemptEvent is a stage attempt run in the cloud: its start, or its end
// with its output or error and how long it took.
type AttemptEvent struct {
	Attempt string `msgpack:"attempt"`
	Stage   Stage  `msgpack:"stage"`
	Node    string `msgpack:"node"` // the controller's
	Started bool   `msgpack:"started,omitempty"`
	Done    bool   `msgpack:"done,omitempty"`
	Error   string `msgpack:"error,omitempty"`
	Output  Output `msgpack:"output"`
	Millis  int64  `msgpack:"ms,omitempty"`
}

// Topics of a job (r) on the cloud's broker, for labelling tools.
func WaitingTopic(r topics.JobRef) string { return topics.JobTopic(r, "waiting") }

// LabelTopic is where labels for a job's hard examples are published.
// Cloud users of role operator may publish there (not retained).
func LabelTopic(r topics.JobRef) string { return topics.JobLabel(r) }

// WaitingExample is a hard example waiting for its label, as the cloud announces
// it on WaitingTopic.
type WaitingExample struct {
	Key   string `msgpack:"key" json:"key"`
	ID    string `msgpack:"id,omitempty" json:"id,omitempty"`
	Node  string `msgpack:"node" json:"node"`
	Shape []int  `msgpack:"shape,omitempty" json:"shape,omitempty"`
	DType string `msgpack:"dtype,omitempty" json:"dtype,omitempty"`
	Data  []byte `msgpack:"data" json:"data"`
	Model uint64 `msgpack:"model" json:"model"`
	// Attr is the sample's task attribute (lifelong jobs).
	Attr string `msgpack:"attr,omitempty" json:"attr,omitempty"`
}

// Label is a hard example's label, published on LabelTopic as JSON
// ({"key": "edge1/17", "label": 3}) or in an envelope of KindLabel. A
// detection job's label is the scene's objects instead: {"key": ...,
// "boxes": [[xmin, ymin, xmax, ymax, 1, class], ...]} (none: an empty
// list).
type Label struct {
	Key   string       `msgpack:"key" json:"key"`
	Label int          `msgpack:"label" json:"label"`
	Boxes [][6]float32 `msgpack:"boxes,omitempty" json:"boxes,omitempty"`
}

// The operations the cloud half serves about a job (paradigm.Half.Ops),
// which the control plane offers as API operations and `sedna label` uses.
const (
	// OpWaiting lists the hard examples waiting for a label: a
	// WaitingRequest gives a WaitingList.
	OpWaiting = "examples.waiting"
	// OpLabel labels waiting examples: a list of Label gives a
	// LabelResult.
	OpLabel = "examples.label"
)

// WaitingRequest asks for the waiting examples, oldest first: at most
// Limit (0: DefaultWaitingLimit), after the key After (to page on).
type WaitingRequest struct {
	Limit int    `json:"limit,omitempty"`
	After string `json:"after,omitempty"`
}

// DefaultWaitingLimit is how many waiting examples a WaitingRequest gets
// without a limit; a list stops sooner at MaxWaitingBytes.
const (
	DefaultWaitingLimit = 100
	MaxWaitingBytes     = 512 << 10
)

// WaitingList is the answer of OpWaiting: the examples and how many wait
// in all.
type WaitingList struct {
	Examples []WaitingExample `json:"examples"`
	Total    int              `json:"total"`
	// More is set when examples after the last one listed wait too.
	More bool `json:"more,omitempty"`
}

// LabelResult is the answer of OpLabel: how many labels moved an example
// into the train or eval set, and the keys that were not waiting
// (labelled before, or never seen).
type LabelResult struct {
	Labelled   int      `json:"labelled"`
	NotWaiting []string `json:"notWaiting,omitempty"`
}

type exampleBatch struct {
	Examples []HardExample `msgpack:"e"`
}

type runRequest struct {
	Attempt string `msgpack:"attempt"`
	Stage   Stage  `msgpack:"stage"`
	Input   Input  `msgpack:"input"`
}

type stageReport struct {
	Attempt string `msgpack:"attempt"`
	Started bool   `msgpack:"started,omitempty"`
	Done    bool   `msgpack:"done,omitempty"`
	Output  Output `msgpack:"output"`
	Error   string `msgpack:"error,omitempty"`
}

type labelledCount struct {
	Total int64 `msgpack:"total"`
}

// decode reads an envelope of kind into v.
func decode(payload []byte, kind string, v any) error {
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil {
		return err
	}
	if env.Kind != kind {
		return fmt.Errorf("incremental: an envelope of kind %q, want %q", env.Kind, kind)
	}
	return env.DecodeBody(v)
}

// Labeller is an oracle as a labelling tool: given what the cloud
// announces on a job's waiting topic (WaitingTopic), the JSON label to
// publish on its label topic; ok is false for what oracle cannot label
// (it knows a sample's label by the device's ID for it).
func Labeller(oracle func(id string) (label int, ok bool)) func(waiting []byte) (label []byte, ok bool) {
	return LabellerOf(func(w WaitingExample) (int, bool) { return oracle(w.ID) })
}

// LabellerOf is Labeller for an oracle that looks at the whole waiting
// example (its values, say), not only its ID.
func LabellerOf(oracle func(WaitingExample) (label int, ok bool)) func(waiting []byte) (label []byte, ok bool) {
	return func(waiting []byte) ([]byte, bool) {
		env, err := topics.UnmarshalEnvelope(waiting, topics.Limits{})
		var w WaitingExample
		if err != nil || env.DecodeBody(&w) != nil {
			return nil, false
		}
		y, ok := oracle(w)
		if !ok {
			return nil, false
		}
		raw, err := json.Marshal(Label{Key: w.Key, Label: y})
		return raw, err == nil
	}
}
