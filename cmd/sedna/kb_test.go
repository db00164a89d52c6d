package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/topics"
)

// `sedna kb describe` shows each task with its held-out share and
// accuracy ("-" without one), and how unseen samples are told.
func TestPrintKB(t *testing.T) {
	acc := 0.8125
	var b bytes.Buffer
	err := printKB(&b, lifelong.Summary{Job: "comfort", Model: "comfort-kb", Version: 2, Method: lifelong.ByCluster, Features: 7, Classes: 3,
		Window: 10, Threshold: -4.5, Tasks: []lifelong.TaskSummary{{ID: "cluster:0", Samples: 1600, Total: 2000, Accuracy: &acc, Clusters: 2},
			{ID: "cluster:1", Samples: 30, Total: 30, Clusters: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"comfort-kb version 2", "7 features to 3 classes", "a window of 10 samples", "below -4.500",
		"cluster:0  -          1600     400       0.812     2", "cluster:1  -          30       0         -         1"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q not in:\n%s", want, out)
		}
	}
}

// `sedna kb list` shows each lifelong job's knowledge base from its
// status, and "-" for a job that has none yet.
func TestPrintKBList(t *testing.T) {
	st := api.Status{Phase: "Running", KnowledgeBase: &api.KnowledgeBase{Version: 3, AIModels: api.AIModels{NumberOfAIModels: 4},
		AIClasses: api.AIClasses{NumberOfAIClasses: 3}, Samples: api.KBSamples{NumberOfLabeledUnseenSample: 812, NumberOfUnseenSample: 5}}}
	with, _ := json.Marshal(st)
	without, _ := json.Marshal(api.Status{Phase: "Running"})
	var b bytes.Buffer
	if err := printKBList(&b, []topics.APIObject{{Key: "LifelongLearningJob/default/a", Status: with},
		{Key: "LifelongLearningJob/default/b", Status: without}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[1]), " ") != "a Running 3 4 3 812 5" ||
		strings.Join(strings.Fields(lines[2]), " ") != "b Running - - - - -" {
		t.Fatalf("got:\n%s", b.String())
	}
	if err := printKBList(&b, []topics.APIObject{{Key: "x", Status: []byte("{")}}); err == nil {
		t.Fatal("a status that is not JSON was printed")
	}
}
