package simulator

import (
	"context"
	"fmt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/lifelong/comfort"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/topics"
)

// Lifelong is a scenario's lifelong learning companion (real mode): a
// sensor on one node's broker sending the thermal-comfort surveys of the
// example's task D (examples/lifelong), which the job's first knowledge
// base has not seen, to a LifelongLearningJob of the scenario's jobs
// files, and an oracle labelling each unseen sample the cloud announces
// (on the job's label topic, as an operator). The job's Dataset may name
// ${SIM_DATA}/lifelong-surveys.csv, which the run writes with the
// example's tasks A, B and C.
type Lifelong struct {
	Job     string  `json:"job"`     // the job's name (namespace default)
	Node    string  `json:"node"`    // the sensor's node: the job's inference worker's
	Rate    float64 `json:"rate"`    // surveys a second; default 50
	Surveys int     `json:"surveys"` // default 1000, at most 20000
}

// LifelongSurveysFile is the Dataset file the run writes for a Lifelong
// companion's job.
const LifelongSurveysFile = "lifelong-surveys.csv"

func (l *Lifelong) check(s *Scenario) []error {
	var errs []error
	fail := func(f string, a ...any) { errs = append(errs, fmt.Errorf("lifelong: "+f, a...)) }
	if s.Mode != "real" {
		fail("a companion of real mode only")
	}
	if l.Job == "" {
		fail("job is required")
	}
	if _, err := s.NodesOf([]string{l.Node}); err != nil || l.Node == "" {
		fail("node %q: %v", l.Node, err)
	}
	if l.Rate < 0 || l.Rate > 10000 || l.Surveys < 0 || l.Surveys > 20000 {
		fail("rate %v (at most 10000 a second), surveys %d (at most 20000)", l.Rate, l.Surveys)
	}
	return errs
}

// startLifelong starts the companion's oracle and sensor.
func (r *realRun) startLifelong(ctx context.Context) (*companion, error) {
	l := r.s.Lifelong
	rate, n := l.Rate, l.Surveys
	if rate == 0 {
		rate = 50
	}
	if n == 0 {
		n = 1000
	}
	unseen, err := comfort.Samples(comfort.TaskD, n, uint64(r.s.Seed)+17)
	if err != nil {
		return nil, err
	}
	ref := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: l.Job}
	return r.startCompanion(ctx, "ll", ref, comfort.Labels(unseen, "d-"), l.Node, lifelong.InputTopic(ref.Namespace, ref.Name), rate, n,
		func(i int) jointinference.Request {
			return comfort.Request(unseen[i], fmt.Sprint("d-", i), "sim-building-d", true)
		})
}

// writeLifelongFile writes the Dataset file of a Lifelong companion.
func writeLifelongFile(dataDir string) error {
	return comfort.Write(comfort.Options{Dir: dataDir, Job: "lifelong"})
}
