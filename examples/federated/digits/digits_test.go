package digits_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/federated/digits"
)

// The YAML parses and validates as Sedna's, with a Dataset per node and a
// training worker on each node naming it.
func TestYAMLIsValidSedna(t *testing.T) {
	for _, fashion := range []bool{false, true} {
		o := digits.Options{Dir: "/data/fl", Fashion: fashion, MinClients: 3, RoundTimeout: "30s", AggregatorParams: "trim_ratio=0.2", Aggregator: "TrimmedMean"}
		rs, err := api.Parse([]byte(digits.YAML(o)), "fl.yaml")
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, r := range rs {
			kinds[r.Kind]++
			if err := api.Validate(r, api.Admission{}); err != nil {
				t.Errorf("%s: %v", r.Key(), err)
			}
		}
		if kinds[api.KindDataset] != 5 || kinds[api.KindModel] != 1 || kinds[api.KindFederatedLearningJob] != 1 {
			t.Fatalf("kinds %v", kinds)
		}
		job := rs[len(rs)-1]
		ws := job.Workers()
		agg := ws[0].Params
		if agg["exit_round"] != "30" || agg["SEDNA_FL_AGGREGATOR"] != "TrimmedMean" || agg["SEDNA_FL_AGGREGATOR_PARAMS"] != "trim_ratio=0.2" ||
			agg["SEDNA_FL_MIN_CLIENTS"] != "3" || agg["SEDNA_FL_ROUND_TIMEOUT"] != "30s" || agg["SEDNA_FL_VALIDATION"] != filepath.Join("/data/fl", job.Metadata.Name+"-validation.csv") {
			t.Errorf("aggregation env %v", agg)
		}
		batch, epochs := "16", "2"
		if fashion {
			batch, epochs = "32", "1"
		}
		if len(ws) != 6 || ws[3].Node != "edge-2" || ws[3].Params["batch_size"] != batch || ws[3].Params["epochs"] != epochs {
			t.Errorf("training workers %+v", ws[1:])
		}
	}
}

// The data: a Dirichlet split covers the training set exactly once; a
// smaller alpha gives each node fewer labels.
func TestPartition(t *testing.T) {
	labelsPerNode := func(alpha float64) float64 {
		o := digits.Options{Alpha: alpha, Nodes: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}}
		train, _, err := digits.Data(o)
		if err != nil {
			t.Fatal(err)
		}
		parts, err := digits.Partition(o, train)
		if err != nil {
			t.Fatal(err)
		}
		rows, labels := 0, 0
		for _, p := range parts {
			rows += p.Rows
			for _, c := range p.ClassCounts() {
				if c > 0 {
					labels++
				}
			}
		}
		if rows != train.Rows {
			t.Fatalf("alpha %v: %d rows over the nodes, %d in the training set", alpha, rows, train.Rows)
		}
		return float64(labels) / float64(len(parts))
	}
	if l01, l100 := labelsPerNode(0.1), labelsPerNode(100); !(l01 < 7 && l100 > 9.5) {
		t.Errorf("labels per node: %.1f at alpha 0.1, %.1f at alpha 100", l01, l100)
	}
}

// Centralized training is the reference: it must be a good model.
func TestCentralized(t *testing.T) {
	acc, err := digits.Centralized(context.Background(), digits.Options{Rounds: 5})
	if err != nil || acc < 0.9 {
		t.Fatalf("centralized accuracy %.4f, %v", acc, err)
	}
}
