package incremental

import (
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
)

// Topics of a job (r) on the cloud's broker, for labelling tools.
func WaitingTopic(r topics.JobRef) string { return topics.JobTopic(r, "waiting") }

// LabelTopic is where labels for a job's hard examples are published.
func LabelTopic(r topics.JobRef) string { return topics.JobTopic(r, "label") }

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
}

// Label is a hard example's label, published on LabelTopic as JSON
// ({"key": "edge1/17", "label": 3}) or in an envelope of KindLabel.
type Label struct {
	Key   string `msgpack:"key" json:"key"`
	Label int    `msgpack:"label" json:"label"`
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
