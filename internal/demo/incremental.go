package demo

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/topics"
)

// SendTo sends req to topic with the camera as its reply address.
func (cam *Camera) SendTo(topic string, req jointinference.Request) error {
	raw, err := jointinference.EncodeRequest(req, cam.reply, req.ID)
	if err != nil {
		return err
	}
	tok := cam.c.Publish(topic, 1, false, raw)
	tok.WaitTimeout(10 * time.Second)
	return tok.Error()
}

// demoIncremental runs the incremental learning example on node ag: a
// camera whose frames drift, the hard ones labelled by an oracle on the
// job's label topic, one cycle, the camera again.
func demoIncremental(ctx context.Context, say func(string, ...any), m *cloud.Manager, ag *edge.Agent, node, dir, pw string) error {
	say("incremental learning on %s: a camera whose frames drift; the initial model learnt the original images", node)
	o := drift.Options{Dir: filepath.Join(dir, "il"), Node: node, MaxCycles: 1, TrainAfter: 500}
	if err := drift.Write(o); err != nil {
		return err
	}
	base, stream, _, _, err := drift.Data()
	if err != nil {
		return err
	}
	m0, err := drift.TrainInitial(ctx, base)
	if err != nil {
		return err
	}
	blob, err := m0.MarshalBinary()
	if err != nil {
		return err
	}
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "demo", Password: pw})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.PushModel(ctx, "default", o.InitialModel(), "sedna-ml", nil, bytes.NewReader(blob)); err != nil {
		return err
	}
	rs, err := api.Parse([]byte(drift.YAML(o)), "incremental.yaml")
	if err != nil {
		return err
	}
	if rep, err := c.Apply(ctx, rs); err != nil || rep.Error != "" {
		return fmt.Errorf("apply: %v %s", err, rep.Error)
	}
	ref := topics.JobRef{Kind: api.KindIncrementalLearningJob, Namespace: "default", Name: o.WithDefaults().Job}

	// The oracle: a labelling tool that knows the stream's labels.
	labels := drift.Labels(stream, "s-")
	lab, err := startOracle(m.BrokerURL(), pw, "demo-oracle", ref, labels)
	if err != nil {
		return err
	}
	defer lab.Disconnect(100)

	cam, err := NewCamera(ag.BrokerAddr(), "demo-il-camera")
	if err != nil {
		return err
	}
	defer cam.Close()
	input := incremental.InputTopic(ref.Namespace, ref.Name)
	probe := func(id string, i int) error {
		req := drift.Request(stream, 15000+i%1000, "")
		req.ID = id
		return cam.SendTo(input, req)
	}
	if err := cam.WaitSource(ctx, probe, "edge"); err != nil {
		return err
	}
	score := func(rs []jointinference.Result, from int) (right float64, hard int) {
		n := 0
		for i, r := range rs {
			if r.Class == stream.Y[from+i] {
				n++
			}
			if r.Hard {
				hard++
			}
		}
		return float64(n) / float64(len(rs)), hard
	}
	// The IDs the oracle knows are "s-{frame}": frame i of this run.
	before, err := cam.Stream(ctx, "s", 1000, 64, func(id string, i int) error {
		return cam.SendTo(input, drift.Request(stream, i, "s-"))
	})
	if err != nil {
		return err
	}
	accBefore, hard := score(before, 0)
	say("1,000 drifted frames: %.1f%% right with the initial model; %d hard ones go up to be labelled", 100*accBefore, hard)
	t0 := time.Now()
	var st api.Status
	wctx, cancel := context.WithCancel(ctx)
	err = c.Watch(wctx, ref, func(s api.Status) {
		st = s
		if s.Phase == api.ConditionCompleted && s.Metrics["hotUpdates"] >= 1 || s.Phase == api.ConditionFailed {
			cancel()
		}
	}, nil)
	cancel()
	if err != nil {
		return err
	}
	if st.Phase != api.ConditionCompleted {
		return fmt.Errorf("the job did not complete: %s", st.Phase)
	}
	say("a cycle: trained on the labelled examples (earlier ones replayed), evaluated, deployed and swapped in at the edge in %v",
		time.Since(t0).Round(100*time.Millisecond))
	after, err := cam.Stream(ctx, "t", 1000, 64, func(id string, i int) error {
		req := drift.Request(stream, 1000+i, "t-")
		req.ID = id
		return cam.SendTo(input, req)
	})
	if err != nil {
		return err
	}
	accAfter, _ := score(after, 1000)
	say("the next 1,000 drifted frames: %.1f%% right with the deployed model (was %.1f%%); %.0f of %.0f bytes seen went up (hard examples only)",
		100*accAfter, 100*accBefore, st.Metrics["bytesUp"], st.Metrics["bytesSeen"])
	return nil
}

// startOracle connects a labelling tool to the cloud broker: each example
// the job's cloud announces as waiting gets the label labels gives it, on
// the job's label topic.
func startOracle(url, pw, id string, ref topics.JobRef, labels func(waiting []byte) ([]byte, bool)) (paho.Client, error) {
	lab := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername("demo").SetPassword(pw))
	if tok := lab.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("oracle: %v", tok.Error())
	}
	if tok := lab.Subscribe(incremental.WaitingTopic(ref), 1, func(cl paho.Client, msg paho.Message) {
		if raw, ok := labels(msg.Payload()); ok {
			cl.Publish(incremental.LabelTopic(ref), 1, false, raw)
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		lab.Disconnect(100)
		return nil, fmt.Errorf("oracle: %v", tok.Error())
	}
	return lab, nil
}
