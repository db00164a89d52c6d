package demo

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/examples/jointinference/detection"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
)

// demoJointInference runs the joint inference example on node ag: trains
// its two models, registers them, applies the service and plays a camera
// sending the 2,000 test frames.
func demoJointInference(ctx context.Context, say func(string, ...any), m *cloud.Manager, ag *edge.Agent, node, pw string) error {
	say("joint inference on %s: training the little and the big model", node)
	train, test, err := classify.Data()
	if err != nil {
		return err
	}
	little, big, err := classify.Train(ctx, train)
	if err != nil {
		return err
	}
	edgeAcc, cloudAcc, err := classify.Accuracy(little, big, test)
	if err != nil {
		return err
	}
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "demo", Password: pw})
	if err != nil {
		return err
	}
	defer c.Close()
	for name, net := range map[string]*ml.Network{classify.LittleModel: little, classify.BigModel: big} {
		b, err := net.MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := c.PushModel(ctx, "default", name, "sedna-ml", nil, bytes.NewReader(b)); err != nil {
			return err
		}
	}
	rs, err := api.Parse([]byte(classify.YAMLFor(node)), "classification.yaml")
	if err != nil {
		return err
	}
	if rep, err := c.Apply(ctx, rs); err != nil || rep.Error != "" {
		return fmt.Errorf("apply: %v %s", err, rep.Error)
	}

	cam, err := NewCamera(ag.BrokerAddr(), "demo-camera")
	if err != nil {
		return err
	}
	defer cam.Close()
	service := "fashion-classification"
	send := func(id string, i int) error {
		label := test.Y[i]
		return cam.Send(service, jointinference.Request{ID: id, Shape: []int{14, 14}, Data: classify.Bytes(test, i), Label: &label})
	}
	if err := cam.waitCloud(ctx, func(id string, i int) error { return send(id, i%test.Rows) }); err != nil {
		return err
	}
	start := time.Now()
	results, err := cam.Stream(ctx, "f", test.Rows, 128, send)
	if err != nil {
		return err
	}
	correct, offloaded := 0, 0
	var edgeLat, cloudLat []int64
	for i, r := range results {
		if r.Class == test.Y[i] {
			correct++
		}
		if r.Source == "cloud" {
			offloaded++
			cloudLat = append(cloudLat, r.LatencyMicros)
		} else {
			edgeLat = append(edgeLat, r.LatencyMicros)
		}
	}
	took := time.Since(start)
	p50 := func(v []int64) float64 {
		if len(v) == 0 {
			return 0
		}
		sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
		return float64(v[len(v)/2]) / 1000
	}
	say("%d frames in %v: joint accuracy %.1f%% with %.1f%% sent to the cloud (edge model alone %.1f%%, cloud model alone %.1f%%); latency p50 %.2f ms at the edge, %.2f ms offloaded",
		test.Rows, took.Round(time.Millisecond), 100*float64(correct)/float64(test.Rows), 100*float64(offloaded)/float64(test.Rows),
		100*edgeAcc, 100*cloudAcc, p50(edgeLat), p50(cloudLat))
	return demoDetection(ctx, say, c, ag, node)
}

// Camera is a device on a node's broker that sends frames to a joint
// inference service and collects the answers. The demo and the bench play
// it.
type Camera struct {
	c       paho.Client
	reply   string
	mu      sync.Mutex
	answers map[string]jointinference.Result
	got     chan struct{}
}

// NewCamera connects a camera named name to the broker at addr (a node's
// broker) and subscribes it to its answers.
func NewCamera(addr, name string) (*Camera, error) {
	cam := &Camera{reply: "demo/" + name + "/results", answers: map[string]jointinference.Result{}, got: make(chan struct{}, 1)}
	cam.c = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(name))
	if tok := cam.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("camera: %v", tok.Error())
	}
	if tok := cam.c.Subscribe(cam.reply, 1, func(_ paho.Client, msg paho.Message) {
		if r, _, err := jointinference.DecodeResult(msg.Payload()); err == nil {
			cam.mu.Lock()
			cam.answers[r.ID] = r
			cam.mu.Unlock()
			select {
			case cam.got <- struct{}{}:
			default:
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		cam.c.Disconnect(100)
		return nil, fmt.Errorf("camera: %v", tok.Error())
	}
	return cam, nil
}

// Close disconnects the camera.
func (cam *Camera) Close() { cam.c.Disconnect(100) }

// Send sends req to the joint inference service of the default namespace
// with the camera as its reply address.
func (cam *Camera) Send(service string, req jointinference.Request) error {
	raw, err := jointinference.EncodeRequest(req, cam.reply, req.ID)
	if err != nil {
		return err
	}
	tok := cam.c.Publish(jointinference.InputTopic("default", service), 1, false, raw)
	tok.WaitTimeout(10 * time.Second)
	return tok.Error()
}

func (cam *Camera) answered(id string) (jointinference.Result, bool) {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	r, ok := cam.answers[id]
	return r, ok
}

// wait waits for the answer to id until ctx ends or, if stop is not nil,
// stop fires (ok false).
func (cam *Camera) wait(ctx context.Context, id string, stop <-chan time.Time) (jointinference.Result, bool, error) {
	for {
		if r, ok := cam.answered(id); ok {
			return r, true, nil
		}
		select {
		case <-cam.got:
		case <-stop:
			return jointinference.Result{}, false, nil
		case <-ctx.Done():
			return jointinference.Result{}, false, ctx.Err()
		}
	}
}

// waitCloud sends probes, one at a time, until one is answered by the
// cloud: the workers started and the models arrived.
func (cam *Camera) waitCloud(ctx context.Context, send func(id string, i int) error) error {
	return cam.WaitSource(ctx, send, "cloud")
}

// WaitSource sends probes until one is answered by source ("edge" or
// "cloud") without a fallback or an error.
func (cam *Camera) WaitSource(ctx context.Context, send func(id string, i int) error, source string) error {
	for i := 0; ; i++ {
		id := fmt.Sprintf("probe-%s-%d-%d", source, time.Now().UnixNano(), i)
		if err := send(id, i); err != nil {
			return err
		}
		r, ok, err := cam.wait(ctx, id, time.After(500*time.Millisecond))
		if err != nil {
			return err
		}
		if ok && r.Source == source && r.Fallback == "" && r.Error == "" {
			return nil
		}
	}
}

// Stream sends n frames with window in flight and returns their answers:
// frame i is send(prefix-i, i).
func (cam *Camera) Stream(ctx context.Context, prefix string, n, window int, send func(id string, i int) error) ([]jointinference.Result, error) {
	for i := 0; i < n; i++ {
		if i >= window {
			if _, _, err := cam.wait(ctx, fmt.Sprintf("%s-%d", prefix, i-window), nil); err != nil {
				return nil, err
			}
		}
		if err := send(fmt.Sprintf("%s-%d", prefix, i), i); err != nil {
			return nil, err
		}
	}
	out := make([]jointinference.Result, n)
	for i := range out {
		r, _, err := cam.wait(ctx, fmt.Sprintf("%s-%d", prefix, i), nil)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// demoDetection runs the detection example on node ag.
func demoDetection(ctx context.Context, say func(string, ...any), c *cloud.Client, ag *edge.Agent, node string) error {
	say("joint inference, detection on %s: training the little and the big detector", node)
	train, test, err := detection.Data(1)
	if err != nil {
		return err
	}
	little, big, err := detection.Train(ctx, train)
	if err != nil {
		return err
	}
	for name, net := range map[string]*ml.Network{detection.LittleModel: little, detection.BigModel: big} {
		b, err := net.MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := c.PushModel(ctx, "default", name, "sedna-ml", nil, bytes.NewReader(b)); err != nil {
			return err
		}
	}
	rs, err := api.Parse([]byte(detection.YAMLFor(node)), "detection.yaml")
	if err != nil {
		return err
	}
	if rep, err := c.Apply(ctx, rs); err != nil || rep.Error != "" {
		return fmt.Errorf("apply: %v %s", err, rep.Error)
	}
	cam, err := NewCamera(ag.BrokerAddr(), "demo-detection-camera")
	if err != nil {
		return err
	}
	defer cam.Close()
	send := func(id string, i int) error {
		s := test[i%len(test)]
		return cam.Send("digits-detection", jointinference.Request{ID: id, Shape: []int{s.Height, s.Width}, Data: detection.Bytes(s)})
	}
	if err := cam.waitCloud(ctx, send); err != nil {
		return err
	}
	start := time.Now()
	results, err := cam.Stream(ctx, "d", len(test), 128, send)
	if err != nil {
		return err
	}
	took := time.Since(start)
	pred := make([][]detect.Box, len(test))
	truth := make([][]detect.Box, len(test))
	offloaded := 0
	for i, r := range results {
		truth[i] = test[i].Objects
		if r.Source == "cloud" {
			offloaded++
		}
		for _, b := range r.Boxes {
			pred[i] = append(pred[i], detect.FromArray(b))
		}
	}
	frames := make([]detect.Scene, len(test)) // as the camera sent them
	for i, s := range test {
		frames[i] = detection.Scene(detection.Bytes(s), s.Width, s.Height)
	}
	edgeOnly, err := detection.Detector(little).DetectAll(frames)
	if err != nil {
		return err
	}
	joint, _, err := detect.MeanAveragePrecision(pred, truth, detection.Classes, 0.5)
	if err != nil {
		return err
	}
	alone, _, err := detect.MeanAveragePrecision(edgeOnly, truth, detection.Classes, 0.5)
	if err != nil {
		return err
	}
	say("%d frames in %v: IBT sent %.1f%% to the cloud; mAP@0.5 joint %.3f, edge detector alone %.3f",
		len(test), took.Round(time.Millisecond), 100*float64(offloaded)/float64(len(test)), joint, alone)
	return nil
}
