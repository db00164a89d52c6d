package lifelong

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
)

// OpKB is the cloud operation that describes a job's knowledge base
// (`sedna kb`): its answer is a Summary in JSON.
const OpKB = "kb.describe"

// Summary describes a knowledge base: the version deployed last and its
// tasks, as `sedna kb` shows them.
type Summary struct {
	Job     string `json:"job"`
	Model   string `json:"model"`
	Version uint64 `json:"version"`
	Method  Method `json:"method"`
	// Features and Classes are what its models map; Window and
	// Threshold its unseen test (by cluster).
	Features  int           `json:"features"`
	Classes   int           `json:"classes"`
	Window    int           `json:"window"`
	Threshold float64       `json:"threshold"`
	Tasks     []TaskSummary `json:"tasks"`
}

// TaskSummary is one task of a Summary.
type TaskSummary struct {
	ID   string `json:"id"`
	Attr string `json:"attribute,omitempty"`
	// Samples its model learnt from; Total with the held-out ones.
	Samples int `json:"samples"`
	Total   int `json:"total"`
	// Accuracy is its model's on its held-out samples (absent without).
	Accuracy *float64 `json:"accuracy,omitempty"`
	Clusters int      `json:"clusters"`
}

// Summarize describes kb.
func Summarize(kb *KB) Summary {
	s := Summary{Method: kb.Config.Method, Features: kb.Config.Dim, Classes: kb.Config.Classes, Window: kb.Config.Window,
		Threshold: kb.Threshold, Tasks: []TaskSummary{}}
	if math.IsInf(s.Threshold, 0) || math.IsNaN(s.Threshold) {
		s.Threshold = 0
	}
	for _, t := range kb.Tasks {
		ts := TaskSummary{ID: t.ID, Attr: t.Attr, Samples: t.Samples, Total: t.Total, Clusters: len(t.Components)}
		if !math.IsNaN(t.Accuracy) {
			a := t.Accuracy
			ts.Accuracy = &a
		}
		s.Tasks = append(s.Tasks, ts)
	}
	return s
}

// ops are the cloud's operations on lifelong jobs.
func ops(env paradigm.Env) map[string]paradigm.Op {
	return map[string]paradigm.Op{
		OpKB: func(_ context.Context, ref topics.JobRef, _ []byte) ([]byte, error) {
			name := api.KnowledgeBaseModel(ref.Name)
			v, data, err := env.Models.Latest(ref.Namespace, name, 0)
			if err != nil || v == 0 {
				return nil, fmt.Errorf("job %s has no knowledge base yet (no version of Model %s: %v)", ref.Name, name, err)
			}
			kb, err := Unmarshal(data)
			if err != nil {
				return nil, fmt.Errorf("the knowledge base %s version %d: %w", name, v, err)
			}
			s := Summarize(kb)
			s.Job, s.Model, s.Version = ref.Name, name, v
			return json.Marshal(s)
		},
	}
}
