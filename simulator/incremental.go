package simulator

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/incremental/drift"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/topics"
)

// Learning is a scenario's incremental learning companion (real mode): a
// camera on one node's broker sending the drifting frames of the example
// (examples/incremental) to an IncrementalLearningJob of the scenario's
// jobs files, and an oracle labelling each hard example the cloud
// announces, as a labelling tool would (on the job's label topic, as an
// operator). The initial model is trained and pushed by the run. The job's
// Dataset may name ${SIM_DATA}/incremental-samples.txt, an empty file the
// run writes (the job's samples are then the labelled hard examples).
type Learning struct {
	Job          string  `json:"job"`          // the job's name (namespace default)
	Node         string  `json:"node"`         // the camera's node
	InitialModel string  `json:"initialModel"` // the job's initialModel, pushed by the run
	Rate         float64 `json:"rate"`         // frames per second; default 100
	Frames       int     `json:"frames"`       // default 2000, at most 16000
}

// LearningSamplesFile is the empty Dataset file the run writes for a
// Learning companion's job.
const LearningSamplesFile = "incremental-samples.txt"

func (l *Learning) check(s *Scenario) []error {
	var errs []error
	fail := func(f string, a ...any) { errs = append(errs, fmt.Errorf("incremental: "+f, a...)) }
	if s.Mode != "real" {
		fail("a companion of real mode only")
	}
	if l.Job == "" || l.InitialModel == "" {
		fail("job and initialModel are required")
	}
	if _, err := s.NodesOf([]string{l.Node}); err != nil || l.Node == "" {
		fail("node %q: %v", l.Node, err)
	}
	if l.Rate < 0 || l.Rate > 10000 || l.Frames < 0 || l.Frames > 16000 {
		fail("rate %v (at most 10000 a second), frames %d (at most 16000)", l.Rate, l.Frames)
	}
	return errs
}

// learning is the companion running.
type learning struct {
	cam, oracle    paho.Client
	sent, labelled atomic.Int64
	stopCam        chan struct{}
	wg             sync.WaitGroup
	frames         int
}

// startLearning pushes the initial model, starts the oracle and the
// camera.
func (r *realRun) startLearning(ctx context.Context, c *cloud.Client) (*learning, error) {
	l := r.s.Incremental
	rate, frames := l.Rate, l.Frames
	if rate == 0 {
		rate = 100
	}
	if frames == 0 {
		frames = 2000
	}
	base, stream, _, _, err := drift.Data()
	if err != nil {
		return nil, err
	}
	m, err := drift.TrainInitial(ctx, base)
	if err != nil {
		return nil, err
	}
	blob, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.PushModel(pctx, "default", l.InitialModel, "sedna-ml", nil, bytes.NewReader(blob)); err != nil {
		return nil, fmt.Errorf("incremental: the initial model: %w", err)
	}
	ref := topics.JobRef{Kind: "IncrementalLearningJob", Namespace: "default", Name: l.Job}
	lr := &learning{stopCam: make(chan struct{}), frames: frames}
	labels := drift.Labels(stream, "s-")
	lr.oracle = paho.NewClient(paho.NewClientOptions().AddBroker(r.cloud.BrokerURL()).SetClientID("sim-oracle").
		SetUsername("sim-ops").SetPassword(simPassword).SetAutoReconnect(true).
		SetOnConnectHandler(func(cl paho.Client) {
			cl.Subscribe(incremental.WaitingTopic(ref), 1, func(cl paho.Client, msg paho.Message) {
				if raw, ok := labels(msg.Payload()); ok {
					cl.Publish(incremental.LabelTopic(ref), 1, false, raw)
					lr.labelled.Add(1)
				}
			})
		}))
	if tok := lr.oracle.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("incremental: the oracle: %v", tok.Error())
	}
	var node *simNode
	for _, n := range r.nodes {
		if n.name == l.Node {
			node = n
		}
	}
	lr.cam = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + node.addr).SetClientID("sim-il-camera").
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond))
	lr.cam.Connect()
	input := incremental.InputTopic(ref.Namespace, ref.Name)
	lr.wg.Add(1)
	go func() {
		defer lr.wg.Done()
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		for i := 0; i < frames; {
			select {
			case <-lr.stopCam:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !lr.cam.IsConnectionOpen() {
				continue // the node is down: the camera waits
			}
			raw, err := jointinference.EncodeRequest(drift.Request(stream, i, "s-"), "", "")
			if err != nil {
				return
			}
			lr.cam.Publish(input, 1, false, raw)
			lr.sent.Add(1)
			i++
		}
	}()
	return lr, nil
}

// stop ends the camera (the oracle labels on until close).
func (lr *learning) stop() {
	close(lr.stopCam)
	lr.wg.Wait()
}

func (lr *learning) close() {
	lr.cam.Disconnect(100)
	lr.oracle.Disconnect(100)
}

// writeLearningFile writes the empty Dataset file of a Learning companion.
func writeLearningFile(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, LearningSamplesFile), nil, 0o644)
}
