package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/topics"
)

// The classification example's models, trained once per test binary.
var jiModels struct {
	once          sync.Once
	little, big   []byte
	test          *datasets.Dataset
	littleM, bigM *ml.Network
	err           error
}

func trainedModels(t testing.TB) (little, big []byte, test *datasets.Dataset) {
	jiModels.once.Do(func() {
		train, test, err := classify.Data()
		if err != nil {
			jiModels.err = err
			return
		}
		l, b, err := classify.Train(context.Background(), train)
		if err != nil {
			jiModels.err = err
			return
		}
		jiModels.test, jiModels.littleM, jiModels.bigM = test, l, b
		if jiModels.little, jiModels.err = l.MarshalBinary(); jiModels.err == nil {
			jiModels.big, jiModels.err = b.MarshalBinary()
		}
	})
	if jiModels.err != nil {
		t.Fatal(jiModels.err)
	}
	return jiModels.little, jiModels.big, jiModels.test
}

const jiName = "fashion-classification"

// exampleYAML is the example's YAML with the miner replaced.
func exampleYAML(t testing.TB, miner string, params, env map[string]string) []*api.Resource {
	s := classify.YAML
	if miner != "" {
		var kv strings.Builder
		for k, v := range params {
			fmt.Fprintf(&kv, "\n        - key: %s\n          value: %q", k, v)
		}
		old := "      name: CrossEntropy\n      parameters:\n        - key: threshold_cross_entropy\n          value: \"0.62\""
		if !strings.Contains(s, old) {
			t.Fatal("the example's miner section changed; update the test")
		}
		repl := "      name: " + miner + "\n      parameters: []"
		if len(params) > 0 {
			repl = "      name: " + miner + "\n      parameters:" + kv.String()
		}
		s = strings.Replace(s, old, repl, 1)
	}
	for k, v := range env {
		old := "              - name: SEDNA_JI_TIMEOUT\n                value: 2s\n"
		if !strings.Contains(s, old) {
			t.Fatal("the example's edge env changed; update the test")
		}
		s = strings.Replace(s, old, old+fmt.Sprintf("              - name: %s\n                value: %q\n", k, v), 1)
	}
	rs, err := api.Parse([]byte(s), "classification.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// servingJI starts the classification example and a camera, and waits
// until the cloud answers it.
func servingJI(t *testing.T) (*jiFleet, *camera, *datasets.Dataset) {
	_, _, test := trainedModels(t)
	f := startJI(t)
	cam := newCamera(t, f.edge, "cam-1")
	cam.waitServing(t, test, "cloud")
	return f, cam, test
}

// jiFleet is a cloud, edge1 and the example applied.
type jiFleet struct {
	dir, listen string
	cloud       *cloud.Manager
	edge        *edge.Agent
	link        *netfault.Proxy // between edge1 and the cloud
	api         *cloud.Client
	ctx         context.Context
}

func startJI(t testing.TB) *jiFleet {
	little, big, _ := trainedModels(t)
	return startJIWith(t, map[string][]byte{classify.LittleModel: little, classify.BigModel: big}, func(t testing.TB) []*api.Resource {
		return exampleYAML(t, "", nil, nil)
	})
}

// startJIWith starts a cloud and edge1 (through a netfault proxy),
// registers models and applies what yaml gives.
func startJIWith(t testing.TB, models map[string][]byte, yaml func(testing.TB) []*api.Resource) *jiFleet {
	f := &jiFleet{dir: t.TempDir()}
	f.cloud = startCloud(t, filepath.Join(f.dir, "cloud"), "")
	f.listen = strings.TrimPrefix(f.cloud.BrokerURL(), "tcp://")
	link, err := netfault.New(f.listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = link.Close() })
	f.link = link
	f.edge = startEdge(t, "edge1", filepath.Join(f.dir, "edge1"), "tcp://"+link.Addr())
	waitLink(t, f.edge)
	f.api = apiClient(t, f.cloud.BrokerURL())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	f.ctx = ctx
	for name, data := range models {
		if _, err := f.api.PushModel(ctx, "default", name, "sedna-ml", nil, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := f.api.Apply(f.ctx, yaml(t)); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
	return f
}

func (f *jiFleet) apply(t testing.TB, miner string, params, env map[string]string) {
	t.Helper()
	if rep, err := f.api.Apply(f.ctx, exampleYAML(t, miner, params, env)); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
}

func (f *jiFleet) close() {
	f.edge.Close()
	f.cloud.Close()
}

// camera is a device on edge1's broker: it sends frames and collects the
// answers on its own reply topic.
type camera struct {
	c       paho.Client
	reply   string
	mu      sync.Mutex
	results map[string][]jointinference.Result
	got     chan struct{}
}

func newCamera(t testing.TB, ag *edge.Agent, name string) *camera {
	cam := &camera{reply: "devices/" + name + "/results", results: map[string][]jointinference.Result{}, got: make(chan struct{}, 1)}
	cam.c = client(t, "tcp://"+ag.BrokerAddr(), name, "", true)
	tok := cam.c.Subscribe(cam.reply, 1, func(_ paho.Client, m paho.Message) {
		r, _, err := jointinference.DecodeResult(m.Payload())
		if err != nil {
			return
		}
		cam.mu.Lock()
		cam.results[r.ID] = append(cam.results[r.ID], r)
		cam.mu.Unlock()
		select {
		case cam.got <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return cam
}

func (cam *camera) send(t testing.TB, id string, img []byte, label int) {
	cam.sendTo(t, jiName, jointinference.Request{ID: id, Shape: []int{14, 14}, Data: img, Label: &label})
}

// sendTo sends req to service.
func (cam *camera) sendTo(t testing.TB, service string, req jointinference.Request) {
	raw, err := jointinference.EncodeRequest(req, cam.reply, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tok := cam.c.Publish(jointinference.InputTopic("default", service), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", req.ID, tok.Error())
	}
}

func (cam *camera) result(id string) (jointinference.Result, int) {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	rs := cam.results[id]
	if len(rs) == 0 {
		return jointinference.Result{}, 0
	}
	return rs[0], len(rs)
}

// ask sends the test images from..to and waits for their answers.
func (cam *camera) ask(t testing.TB, prefix string, test *datasets.Dataset, from, to int) []jointinference.Result {
	t.Helper()
	for i := from; i < to; i++ {
		cam.send(t, fmt.Sprintf("%s-%d", prefix, i), classify.Bytes(test, i), test.Y[i])
	}
	cam.waitFor(t, prefix, from, to, 2*time.Minute)
	out := make([]jointinference.Result, 0, to-from)
	for i := from; i < to; i++ {
		r, n := cam.result(fmt.Sprintf("%s-%d", prefix, i))
		if n != 1 {
			t.Fatalf("%s-%d answered %d times", prefix, i, n)
		}
		out = append(out, r)
	}
	return out
}

// waitFor waits until requests prefix-from..prefix-to are all answered.
func (cam *camera) waitFor(t testing.TB, prefix string, from, to int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	next := from
	for {
		for next < to {
			if _, n := cam.result(fmt.Sprintf("%s-%d", prefix, next)); n == 0 {
				break
			}
			next++
		}
		if next == to {
			return
		}
		select {
		case <-cam.got:
		case <-deadline:
			t.Fatalf("%s-%d not answered after %v", prefix, next, d)
		}
	}
}

// waitServing sends probes until one is answered by source ("edge" or
// "cloud") without a fallback: the worker listens (a frame sent before it
// subscribed reaches no one), the models are in place and, for the cloud,
// the offload path works.
func (cam *camera) waitServing(t testing.TB, test *datasets.Dataset, source string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		prefix := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), i)
		for k := range 20 {
			cam.send(t, fmt.Sprintf("%s-%d", prefix, k), classify.Bytes(test, k), test.Y[k])
		}
		wait := time.After(3 * time.Second)
	probe:
		for {
			for k := range 20 {
				if r, n := cam.result(fmt.Sprintf("%s-%d", prefix, k)); n > 0 && r.Error == "" && r.Source == source && r.Fallback == "" {
					return
				}
			}
			select {
			case <-cam.got:
			case <-wait:
				break probe
			}
		}
	}
	t.Fatalf("no answer from the %s in 2 minutes", source)
}

// Must-show 1: the joint accuracy and offload share across thresholds, and
// at the example's threshold through the whole system: joint accuracy at
// least cloud-only minus 2 points with at most 35% offloaded; the cloud
// model reaches 85% alone.
func TestJointInferenceClassification(t *testing.T) {
	_, _, test := trainedModels(t)
	f := startJI(t)
	defer f.close()

	// The curve, from the models and the WASM miner itself.
	pooled, _ := test.Pool(2)
	pl, _ := jiModels.littleM.PredictProba(pooled.X)
	pb, _ := jiModels.bigM.PredictProba(test.X)
	acc := func(p []float32) float64 {
		pred := ml.Argmax(p, 10)
		a, _ := ml.Accuracy(test.Y, pred)
		return a
	}
	edgeOnly, cloudOnly := acc(pl), acc(pb)
	t.Logf("edge model alone %.4f, cloud model alone %.4f on %d test images", edgeOnly, cloudOnly, test.Rows)
	if cloudOnly < 0.85 {
		t.Fatalf("the cloud model reaches %.4f alone, under 85%%", cloudOnly)
	}
	for _, th := range []string{"0.3", "0.4", "0.5", "0.55", "0.6", "0.62", "0.65", "0.7", "0.8", "0.9"} {
		m, err := f.cloud.Plugins().Miner("CrossEntropy", map[string]string{"threshold_cross_entropy": th})
		if err != nil {
			t.Fatal(err)
		}
		v, err := m.Mine(f.ctx, plugins.Batch{Probs: pl, Classes: 10})
		if err != nil {
			t.Fatal(err)
		}
		joint := append([]float32(nil), pl...)
		off := 0
		for i := range v {
			if v[i].Hard {
				copy(joint[i*10:(i+1)*10], pb[i*10:(i+1)*10])
				off++
			}
		}
		t.Logf("curve: threshold %-4s joint accuracy %.4f (cloud-only %+.2f points), offloaded %5.1f%%",
			th, acc(joint), 100*(acc(joint)-cloudOnly), 100*float64(off)/float64(test.Rows))
	}

	cam := newCamera(t, f.edge, "cam-1")
	cam.waitServing(t, test, "cloud")
	start := time.Now()
	rs := cam.ask(t, "img", test, 0, test.Rows)
	took := time.Since(start)
	correct, offloaded := 0, 0
	for i, r := range rs {
		if r.Error != "" || r.Fallback != "" {
			t.Fatalf("image %d: %+v", i, r)
		}
		if r.Source == "cloud" {
			offloaded++
		}
		if r.Class == test.Y[i] {
			correct++
		}
	}
	joint, share := float64(correct)/float64(test.Rows), float64(offloaded)/float64(test.Rows)
	t.Logf("through the system at threshold %s: joint accuracy %.4f (cloud-only %.4f, edge-only %.4f), %.1f%% offloaded, %d images in %v",
		classify.Threshold, joint, cloudOnly, edgeOnly, 100*share, test.Rows, took.Round(time.Millisecond))
	if joint < cloudOnly-0.02 || share > 0.35 {
		t.Fatalf("joint accuracy %.4f (want at least %.4f), offloaded %.3f (want at most 0.35)", joint, cloudOnly-0.02, share)
	}

	// Any MQTT client is a device: JSON in, JSON out, on the service's
	// result topic when the request names no reply topic.
	plain := client(t, "tcp://"+f.edge.BrokerAddr(), "plain-json-device", "", true)
	answers := make(chan []byte, 4)
	if tok := plain.Subscribe(jointinference.ResultTopic("default", jiName), 1, func(_ paho.Client, m paho.Message) {
		answers <- m.Payload()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	vals, _ := json.Marshal(test.Row(0))
	for _, body := range []string{
		`{"id": "json-1", "shape": [14, 14], "values": ` + string(vals) + `}`,
		`{"id": "json-2", "shape": [2, 2], "values": [0, 0.5, 0.5, 1]}`,
	} {
		if tok := plain.Publish(jointinference.InputTopic("default", jiName), 1, false, body); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		select {
		case raw := <-answers:
			var r jointinference.Result
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatalf("a JSON device got %q: %v", raw, err)
			}
			switch r.ID {
			case "json-1":
				if r.Error != "" || r.Class != rs[0].Class {
					t.Fatalf("JSON request answered %+v, the msgpack one %+v", r, rs[0])
				}
			case "json-2":
				if !strings.Contains(r.Error, "does not fit a model of 49 inputs") {
					t.Fatalf("a 2×2 sample answered %+v", r)
				}
			}
			t.Logf("JSON device: %s", raw[:min(len(raw), 120)])
		case <-time.After(10 * time.Second):
			t.Fatal("no answer to a JSON device")
		}
	}

	// The job's status carries the workers' numbers.
	st := f.waitStatus(t, func(st api.Status) bool {
		return st.Metrics["inferences"] >= float64(test.Rows) && st.Metrics["cloudInferences"] > 0
	})
	t.Logf("status metrics: inferences %.0f, hard %.0f, upload ratio %.3f, accuracy %.4f, edge p50 %.2f ms, offload p50 %.2f ms p99 %.2f ms, %.0f bytes up per offloaded sample",
		st.Metrics["inferences"], st.Metrics["hardExamples"], st.Metrics["uploadRatio"], st.Metrics["accuracy"],
		st.Metrics["edgeLatencyP50ms"], st.Metrics["offloadLatencyP50ms"], st.Metrics["offloadLatencyP99ms"], st.Metrics["bytesUpPerOffloaded"])
}

// waitStatus watches the service's status until ok says so (30 s).
func (f *jiFleet) waitStatus(t testing.TB, ok func(api.Status) bool) api.Status {
	t.Helper()
	return f.waitStatusOf(t, jiName, 30*time.Second, ok)
}

// waitStatusOf watches the status of the service called name until ok
// says so, for at most d.
func (f *jiFleet) waitStatusOf(t testing.TB, name string, d time.Duration, ok func(api.Status) bool) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, d)
	defer cancel()
	found := make(chan api.Status, 1)
	var last api.Status
	var mu sync.Mutex
	go func() {
		_ = f.api.Watch(ctx, topics.JobRef{Kind: api.KindJointInferenceService, Namespace: "default", Name: name}, func(st api.Status) {
			mu.Lock()
			last = st
			mu.Unlock()
			if ok(st) {
				select {
				case found <- st:
				default:
				}
			}
		}, nil)
	}()
	select {
	case st := <-found:
		return st
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: the status never got there; last: phase %s, metrics %v, workers %+v", name, last.Phase, last.Metrics, last.Workers)
		return last
	}
}

// hardSet is which of test images 0..n-1 the miner, with params, judges
// hard on the edge model's answers: what the service must offload.
func hardSet(t *testing.T, h *plugins.Host, test *datasets.Dataset, n int, miner string, params map[string]string) []bool {
	t.Helper()
	pooled, _ := test.Pool(2)
	pl, err := jiModels.littleM.PredictProba(pooled.X[:n*pooled.Cols])
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Miner(miner, params)
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Mine(context.Background(), plugins.Batch{Probs: pl, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]bool, n)
	for i := range v {
		out[i] = v[i].Hard
	}
	return out
}

// Must-show 4: the edge's miner is the WASM plugin the YAML names; a new
// name or new parameters, applied again, change what is offloaded, image
// for image as the plugin judges.
func TestJointInferenceMinerFollowsTheYAML(t *testing.T) {
	f, cam, test := servingJI(t)
	defer f.close()
	const n = 200
	for round, step := range []struct {
		miner  string
		params map[string]string
	}{
		{"CrossEntropy", map[string]string{"threshold_cross_entropy": classify.Threshold}},
		{"CloudOnly", nil},
		{"EdgeOnly", nil},
		{"CrossEntropy", map[string]string{"threshold_cross_entropy": "0.9"}},
	} {
		if round > 0 {
			f.apply(t, step.miner, step.params, nil)
		}
		want := hardSet(t, f.cloud.Plugins(), test, n, step.miner, step.params)
		wantN := 0
		for _, h := range want {
			if h {
				wantN++
			}
		}
		// The worker restarts with the new spec: ask until it answers as
		// the plugin judges (each round trip is a full answer, no sleep).
		deadline := time.Now().Add(time.Minute)
		for try := 0; ; try++ {
			rs := cam.ask(t, fmt.Sprintf("r%d-%d", round, try), test, 0, n)
			same, offloaded := true, 0
			for i, r := range rs {
				cloud := r.Source == "cloud"
				if cloud {
					offloaded++
				}
				same = same && cloud == want[i] && r.Hard == want[i] && r.Error == "" && r.Fallback == ""
			}
			if same {
				t.Logf("%s %v: %d of %d offloaded, each as the plugin judges (after %d tries)", step.miner, step.params, offloaded, n, try+1)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %v: the service offloaded %d of %d, the plugin judges %d hard", step.miner, step.params, offloaded, n, wantN)
			}
		}
	}
}

// Must-show 3: the cloud stops mid-stream: every request is still answered
// once (the edge's answer, marked), none lost; when the cloud comes back,
// offload resumes by itself.
func TestJointInferenceSurvivesTheCloudGoingAway(t *testing.T) {
	_, _, test := trainedModels(t)
	f := startJI(t)
	defer func() { f.close() }()
	cam := newCamera(t, f.edge, "cam-1")
	cam.waitServing(t, test, "cloud")

	count := func(rs []jointinference.Result) (cloud, fallback int, why map[string]int) {
		why = map[string]int{}
		for _, r := range rs {
			if r.Error != "" {
				t.Fatalf("%s: %s", r.ID, r.Error)
			}
			if r.Source == "cloud" {
				cloud++
			}
			if r.Fallback != "" {
				fallback++
				why[r.Fallback]++
			}
		}
		return
	}
	// Mid-stream: 600 frames sent without waiting; the cloud stops after
	// the first 200.
	const n = 600
	for i := range n {
		if i == 200 {
			f.cloud.Close()
		}
		cam.send(t, fmt.Sprintf("mid-%d", i), classify.Bytes(test, i), test.Y[i])
	}
	cam.waitFor(t, "mid", 0, n, time.Minute)
	mid := make([]jointinference.Result, n)
	for i := range n {
		r, k := cam.result(fmt.Sprintf("mid-%d", i))
		if k != 1 {
			t.Fatalf("mid-%d answered %d times", i, k)
		}
		mid[i] = r
	}
	c, fb, why := count(mid)
	t.Logf("cloud stopped after 200 of %d frames: all answered once, %d by the cloud, %d hard ones by the edge (%v)", n, c, fb, why)
	if fb == 0 {
		t.Fatal("no fallback while the cloud was away: the cloud did not stop")
	}

	down := cam.ask(t, "down", test, 0, 300)
	c, fb, why = count(down)
	t.Logf("cloud away: 300 frames answered, %d by the cloud, %d hard ones by the edge (%v)", c, fb, why)
	if c != 0 || fb == 0 {
		t.Fatalf("with the cloud away: %d cloud answers, %d fallbacks", c, fb)
	}

	f.cloud = startCloud(t, filepath.Join(f.dir, "cloud"), f.listen)
	start := time.Now()
	cam.waitServing(t, test, "cloud")
	t.Logf("offload resumed %v after the cloud came back", time.Since(start).Round(time.Millisecond))
	back := cam.ask(t, "back", test, 0, 300)
	c, fb, _ = count(back)
	t.Logf("cloud back: 300 frames answered, %d by the cloud, %d fallbacks", c, fb)
	if c == 0 || fb != 0 {
		t.Fatalf("after the cloud came back: %d cloud answers, %d fallbacks", c, fb)
	}
}

// A link that stalls (no error, nothing moves) holds offloads for no longer
// than the service's deadline (2 s): each hard frame is answered by the
// edge, marked "timeout"; offload resumes when the link moves again.
func TestJointInferenceNeverWaitsWithoutBound(t *testing.T) {
	f, cam, test := servingJI(t)
	defer f.close()
	f.link.SetStall(true)
	rs := cam.ask(t, "stalled", test, 0, 200)
	timeouts := 0
	var worst int64
	for _, r := range rs {
		if r.Source == "cloud" || r.Error != "" {
			t.Fatalf("%s through a stalled link: %+v", r.ID, r)
		}
		if r.Fallback == "timeout" {
			timeouts++
			worst = max(worst, r.LatencyMicros)
		}
	}
	t.Logf("stalled link: %d hard frames answered by the edge after the deadline, the slowest in %.2f s", timeouts, float64(worst)/1e6)
	if timeouts == 0 || worst > 3e6 {
		t.Fatalf("%d timeouts, slowest %d µs (deadline 2 s)", timeouts, worst)
	}
	f.link.SetStall(false)
	cam.waitServing(t, test, "cloud")
}

// Mining-then-inference: the miner judges the raw frame first; a hard one
// goes to the cloud without an edge inference, the others get the edge's
// answer. With Random at 0.5 about half go up, and the hard ones carry no
// edge result (their answer is the cloud's, and an edge answer only on a
// fallback).
func TestJointInferenceMiningThenInference(t *testing.T) {
	f, cam, test := servingJI(t)
	defer f.close()
	f.apply(t, "CrossEntropy", map[string]string{"threshold_cross_entropy": classify.Threshold},
		map[string]string{jointinference.ParamMode: jointinference.ModeMiningThenInference})
	// CrossEntropy needs the edge's answers, which this mode does not
	// give it: the worker says so, and answers at the edge, marked.
	deadline := time.Now().Add(time.Minute)
	for try := 0; ; try++ {
		rs := cam.ask(t, fmt.Sprintf("ce-%d", try), test, 0, 50)
		marked := 0
		for _, r := range rs {
			if r.Fallback == "mining-error" && r.Source == "edge" {
				marked++
			}
		}
		if marked == len(rs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CrossEntropy before inference: %d of %d answered at the edge marked mining-error", marked, len(rs))
		}
	}
	f.apply(t, "Random", map[string]string{"random_ratio": "0.5"}, map[string]string{jointinference.ParamMode: jointinference.ModeMiningThenInference})
	deadline = time.Now().Add(time.Minute)
	for try := 0; ; try++ {
		rs := cam.ask(t, fmt.Sprintf("rnd-%d", try), test, 0, 400)
		cloud, edgeAns, bad := 0, 0, 0
		for _, r := range rs {
			switch {
			case r.Error != "" || r.Fallback != "":
				bad++
			case r.Source == "cloud" && r.Hard:
				cloud++
			case r.Source == "edge" && !r.Hard:
				edgeAns++
			default:
				bad++
			}
		}
		if bad == 0 && cloud > 120 && edgeAns > 120 {
			t.Logf("mining-then-inference with Random(0.5): %d of 400 to the cloud, %d answered at the edge", cloud, edgeAns)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mining-then-inference with Random(0.5): %d cloud, %d edge, %d other", cloud, edgeAns, bad)
		}
	}
}
