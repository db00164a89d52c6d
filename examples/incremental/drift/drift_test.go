package drift_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/topics"
)

// Labels answers an announcement of a frame it sent with the frame's
// label, keyed as announced, and nothing for a frame it did not send or
// for what is not an announcement.
func TestLabelsAnswersWhatItSent(t *testing.T) {
	d := &datasets.Dataset{Name: "t", Rows: 3, Cols: 1, X: []float32{0, 0, 0}, Y: []int{4, 7, 1}, Classes: make([]string, 8)}
	labels := drift.Labels(d, "s-")
	announce := func(id string) []byte {
		raw, err := topics.Encode(incremental.KindWaiting, "test", incremental.WaitingExample{Key: "edge1/9", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	raw, ok := labels(announce("s-1"))
	var l incremental.Label
	if !ok || json.Unmarshal(raw, &l) != nil || l.Key != "edge1/9" || l.Label != 7 || l.Boxes != nil {
		t.Fatalf("label %s %v", raw, ok)
	}
	for _, bad := range [][]byte{announce("s-3"), announce("t-1"), []byte("{}")} {
		if raw, ok := labels(bad); ok {
			t.Errorf("%q labelled: %s", bad, raw)
		}
	}
}

// With a worker program, the train, eval and deploy templates run it (each
// an external worker); without, none has a command (the built-ins).
func TestTheYAMLRunsTheWorkerProgramWhenGiven(t *testing.T) {
	for _, worker := range []string{"", "/usr/local/bin/il-worker"} {
		rs, err := api.Parse([]byte(drift.YAML(drift.Options{Dir: "/d", Worker: worker})), "incremental.yaml")
		if err != nil {
			t.Fatal(err)
		}
		roles := 0
		for _, r := range rs {
			for _, w := range r.Workers() {
				roles++
				if got := strings.Join(w.Container.Command, " "); got != worker {
					t.Errorf("worker %s: command %q, want %q", w.Role, got, worker)
				}
			}
		}
		if roles != 3 {
			t.Errorf("%d workers, want train, eval and deploy", roles)
		}
	}
}
