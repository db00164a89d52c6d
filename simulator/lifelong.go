package simulator

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/lifelong/comfort"
	"github.com/sedna-go/sedna/incremental"
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

// lifelongRun is the companion running.
type lifelongRun struct {
	sensor, oracle paho.Client
	sent, labelled atomic.Int64
	stop           chan struct{}
	wg             sync.WaitGroup
	surveys        int
}

// startLifelong starts the oracle and the sensor.
func (r *realRun) startLifelong(ctx context.Context) (*lifelongRun, error) {
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
	labels := comfort.Labels(unseen, "d-")
	ref := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: l.Job}
	lr := &lifelongRun{stop: make(chan struct{}), surveys: n}
	lr.oracle = paho.NewClient(paho.NewClientOptions().AddBroker(r.cloud.BrokerURL()).SetClientID("sim-ll-oracle").
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
		return nil, fmt.Errorf("lifelong: the oracle: %v", tok.Error())
	}
	var node *simNode
	for _, nd := range r.nodes {
		if nd.name == l.Node {
			node = nd
		}
	}
	lr.sensor = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + node.addr).SetClientID("sim-ll-sensor").
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond))
	lr.sensor.Connect()
	input := lifelong.InputTopic(ref.Namespace, ref.Name)
	lr.wg.Add(1)
	go func() {
		defer lr.wg.Done()
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		for i := 0; i < n; {
			select {
			case <-lr.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !lr.sensor.IsConnectionOpen() {
				continue // the node is down: the sensor waits
			}
			raw, err := jointinference.EncodeRequest(comfort.Request(unseen[i], fmt.Sprint("d-", i), "sim-building-d", true), "", "")
			if err != nil {
				return
			}
			lr.sensor.Publish(input, 1, false, raw)
			lr.sent.Add(1)
			i++
		}
	}()
	return lr, nil
}

// end stops the sensor (the oracle labels on until close).
func (lr *lifelongRun) end() {
	close(lr.stop)
	lr.wg.Wait()
}

func (lr *lifelongRun) close() {
	lr.sensor.Disconnect(100)
	lr.oracle.Disconnect(100)
}

// writeLifelongFile writes the Dataset file of a Lifelong companion.
func writeLifelongFile(dataDir string) error {
	return comfort.Write(comfort.Options{Dir: dataDir, Job: "lifelong"})
}
