package demo

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/lifelong/comfort"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/topics"
)

// demoLifelong runs the lifelong learning example on node ag: a Dataset of
// three thermal-comfort tasks, a first knowledge base, a fourth task's
// surveys flagged unseen and labelled by an oracle, a second knowledge base
// that learnt it.
func demoLifelong(ctx context.Context, say func(string, ...any), m *cloud.Manager, ag *edge.Agent, node, dir, pw string) error {
	say("lifelong learning on %s: comfort surveys of three tasks in the Dataset (%s)", node, comfort.Describe())
	o := comfort.Options{Dir: filepath.Join(dir, "ll"), Node: node, TrainAfter: 300, Epochs: 20}
	if err := comfort.Write(o); err != nil {
		return err
	}
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "demo", Password: pw})
	if err != nil {
		return err
	}
	defer c.Close()
	rs, err := api.Parse([]byte(comfort.YAML(o)), "lifelong.yaml")
	if err != nil {
		return err
	}
	t0 := time.Now()
	if rep, err := c.Apply(ctx, rs); err != nil || rep.Error != "" {
		return fmt.Errorf("apply: %v %s", err, rep.Error)
	}
	ref := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: o.WithDefaults().Job}
	wait := func(what string, ok func(api.Status) bool) (api.Status, error) {
		var st api.Status
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		err := c.Watch(wctx, ref, func(s api.Status) {
			st = s
			if ok(s) || s.Phase == api.ConditionFailed {
				cancel()
			}
		}, nil)
		if !ok(st) {
			return st, fmt.Errorf("the job never had %s (phase %s: %v)", what, st.Phase, err)
		}
		return st, nil
	}
	serves := func(tasks int) func(api.Status) bool {
		return func(s api.Status) bool {
			return s.KnowledgeBase != nil && s.KnowledgeBase.AIModels.NumberOfAIModels == tasks &&
				s.Metrics["modelVersion"] >= float64(s.KnowledgeBase.Version)
		}
	}
	st, err := wait("a knowledge base of 3 tasks", serves(3))
	if err != nil {
		return err
	}
	say("cycle 1 on %s: a knowledge base of %d task models trained and serving in %v", node, st.KnowledgeBase.AIModels.NumberOfAIModels,
		time.Since(t0).Round(100*time.Millisecond))

	unseen, err := comfort.Samples(comfort.TaskD, 1000, 99)
	if err != nil {
		return err
	}
	labels := comfort.Labels(unseen, "d-")
	lab, err := startOracle(m.BrokerURL(), pw, "demo-ll-oracle", ref, labels)
	if err != nil {
		return err
	}
	defer lab.Disconnect(100)
	sensor, err := NewCamera(ag.BrokerAddr(), "demo-ll-sensor")
	if err != nil {
		return err
	}
	defer sensor.Close()
	input := lifelong.InputTopic(ref.Namespace, ref.Name)
	score := func(rs []jointinference.Result, from int) (right float64, flagged int) {
		n := 0
		for i, r := range rs {
			if r.Class == unseen[from+i].Y {
				n++
			}
			if r.Unseen {
				flagged++
			}
		}
		return float64(n) / float64(len(rs)), flagged
	}
	// The oracle knows the IDs "d-{i}": survey i of D.
	before, err := sensor.Stream(ctx, "d", 500, 64, func(id string, i int) error {
		return sensor.SendTo(input, comfort.Request(unseen[i], id, "building-d", true))
	})
	if err != nil {
		return err
	}
	accBefore, flagged := score(before, 0)
	say("500 surveys of a fourth task (%s): %d flagged unseen, %.1f%% right with the nearest task's model; they go up to be labelled",
		comfort.TaskD, flagged, 100*accBefore)
	t1 := time.Now()
	if st, err = wait("a knowledge base of 4 tasks", serves(4)); err != nil {
		return err
	}
	say("cycle 2: the labelled surveys trained the fourth task's model alone (the other three kept theirs), deployed and swapped in in %v",
		time.Since(t1).Round(100*time.Millisecond))
	after, err := sensor.Stream(ctx, "e", 500, 64, func(id string, i int) error {
		return sensor.SendTo(input, comfort.Request(unseen[500+i], id, "building-d", true))
	})
	if err != nil {
		return err
	}
	accAfter, flaggedAfter := score(after, 500)
	say("the next 500 surveys of it: %d flagged unseen, %.1f%% right (was %.1f%%); the status's knowledge base: %d models, %d labelled unseen samples",
		flaggedAfter, 100*accAfter, 100*accBefore, st.KnowledgeBase.AIModels.NumberOfAIModels, st.KnowledgeBase.Samples.NumberOfLabeledUnseenSample)
	return nil
}
