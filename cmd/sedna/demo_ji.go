package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
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
	pooled, err := test.Pool(2)
	if err != nil {
		return err
	}
	el, err := ml.Evaluate(little, pooled.X, pooled.Y)
	if err != nil {
		return err
	}
	eb, err := ml.Evaluate(big, test.X, test.Y)
	if err != nil {
		return err
	}
	c, err := cloud.Dial(broker.ClientConfig{URL: m.BrokerURL(), Username: "demo", Password: pw})
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

	// The camera: frames in, answers out, 128 in flight.
	var mu sync.Mutex
	answers := map[string]jointinference.Result{}
	got := make(chan struct{}, 1)
	reply := "demo/camera/results"
	cam := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + ag.BrokerAddr()).SetClientID("demo-camera"))
	if tok := cam.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("camera: %v", tok.Error())
	}
	defer cam.Disconnect(100)
	if tok := cam.Subscribe(reply, 1, func(_ paho.Client, msg paho.Message) {
		if r, _, err := jointinference.DecodeResult(msg.Payload()); err == nil {
			mu.Lock()
			answers[r.ID] = r
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("camera: %v", tok.Error())
	}
	send := func(id string, i int) error {
		label := test.Y[i]
		raw, err := jointinference.EncodeRequest(jointinference.Request{ID: id, Shape: []int{14, 14}, Data: classify.Bytes(test, i), Label: &label}, reply, id)
		if err != nil {
			return err
		}
		tok := cam.Publish(jointinference.InputTopic("default", "fashion-classification"), 1, false, raw)
		tok.WaitTimeout(10 * time.Second)
		return tok.Error()
	}
	answered := func(id string) (jointinference.Result, bool) {
		mu.Lock()
		defer mu.Unlock()
		r, ok := answers[id]
		return r, ok
	}
	// Until the service answers from the cloud (the workers start and the
	// models arrive), a probe a time.
	for i := 0; ; i++ {
		id := fmt.Sprintf("probe-%d", i)
		if err := send(id, i%test.Rows); err != nil {
			return err
		}
		wait := time.After(500 * time.Millisecond)
	probe:
		for {
			if r, ok := answered(id); ok {
				if r.Source == "cloud" {
					goto ready
				}
				break probe
			}
			select {
			case <-got:
			case <-wait:
				break probe
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
ready:
	start := time.Now()
	const window = 128
	for i := 0; i < test.Rows; i++ {
		for i >= window {
			if _, ok := answered(fmt.Sprintf("f-%d", i-window)); ok {
				break
			}
			select {
			case <-got:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := send(fmt.Sprintf("f-%d", i), i); err != nil {
			return err
		}
	}
	correct, offloaded := 0, 0
	var edgeLat, cloudLat []int64
	for i := 0; i < test.Rows; i++ {
		var r jointinference.Result
		for {
			var ok bool
			if r, ok = answered(fmt.Sprintf("f-%d", i)); ok {
				break
			}
			select {
			case <-got:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
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
		100*el.Accuracy, 100*eb.Accuracy, p50(edgeLat), p50(cloudLat))
	return nil
}
