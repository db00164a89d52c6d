package e2e

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/topics"
)

// sednaJSONSize is the size of the body Sedna's edge worker posts to its
// cloud for one image: the normalised float32 array as a JSON list of
// numbers (Python's json.dumps of data.tolist(): nested lists, ", "
// separators, each float32 widened to a double and written shortest).
func sednaJSONSize(test *datasets.Dataset, i int) int {
	var b strings.Builder
	b.WriteString(`{"data": [`)
	img := classify.Bytes(test, i)
	for r := range 14 {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('[')
		for c := range 14 {
			if c > 0 {
				b.WriteString(", ")
			}
			v := float64(float32(img[r*14+c]) / 255)
			s := strconv.FormatFloat(v, 'g', -1, 64)
			if !strings.ContainsAny(s, ".e") {
				s += ".0"
			}
			b.WriteString(s)
		}
		b.WriteByte(']')
	}
	b.WriteString("]}")
	return b.Len()
}

// pump sends test images 0..n-1 with at most window unanswered and
// returns how long all took.
func (cam *camera) pump(t testing.TB, prefix string, test *datasets.Dataset, n, window int) time.Duration {
	start := time.Now()
	for i := range n {
		for i-window >= 0 {
			if _, k := cam.result(fmt.Sprintf("%s-%d", prefix, i-window)); k > 0 {
				break
			}
			<-cam.got
		}
		cam.send(t, fmt.Sprintf("%s-%d", prefix, i), classify.Bytes(test, i%test.Rows), test.Y[i%test.Rows])
	}
	cam.waitFor(t, prefix, 0, n, 2*time.Minute)
	return time.Since(start)
}

// BenchmarkJointInference measures, in one run and side by side, the
// throughput of the classification example with its miner (joint) against
// EdgeOnly (edge-only), the latencies the edge worker reports, and the
// bytes sent up per offloaded image, counted at the cloud broker, against
// Sedna's JSON encoding of the same images.
//
//	go test ./internal/e2e -run '^$' -bench JointInference -benchtime 1x
func BenchmarkJointInference(b *testing.B) {
	_, _, test := trainedModels(b)
	f := startJI(b)
	defer f.close()
	cam := newCamera(b, f.edge, "bench-cam")
	cam.waitServing(b, test, "cloud")

	// The cloud broker's view of the offloads.
	var mu sync.Mutex
	var upBytes, upSamples int
	spy := client(b, f.cloud.BrokerURL(), "bench-spy", "app", true)
	filter := topics.Root + "/node/+/job/" + api.KindJointInferenceService + "/+/+/offload"
	if tok := spy.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{MaxBody: 64 << 20})
		if err != nil {
			return
		}
		var batch struct {
			Samples []struct{} `msgpack:"s"`
		}
		if env.DecodeBody(&batch) == nil {
			mu.Lock()
			upBytes += len(m.Payload())
			upSamples += len(batch.Samples)
			mu.Unlock()
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}

	const n, window = 4000, 256
	var joint, edgeOnly []float64
	for round := range 3 {
		for _, mode := range []string{"edge-only", "joint"} {
			if mode == "edge-only" {
				f.apply(b, "EdgeOnly", nil, nil)
			} else {
				f.apply(b, "CrossEntropy", map[string]string{"threshold_cross_entropy": classify.Threshold}, nil)
			}
			cam.waitServing(b, test, map[string]string{"edge-only": "edge", "joint": "cloud"}[mode])
			took := cam.pump(b, fmt.Sprintf("%s-%d", mode, round), test, n, window)
			rate := float64(n) / took.Seconds()
			if mode == "joint" {
				joint = append(joint, rate)
			} else {
				edgeOnly = append(edgeOnly, rate)
			}
		}
	}
	st := f.waitStatus(b, func(st api.Status) bool { return st.Metrics["offloadLatencyP50ms"] > 0 })
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	sedna := 0
	for i := range test.Rows {
		sedna += sednaJSONSize(test, i)
	}
	perImageJSON := float64(sedna) / float64(test.Rows)
	mu.Lock()
	perSample := float64(upBytes) / math.Max(1, float64(upSamples))
	mu.Unlock()
	b.ReportMetric(mean(joint), "joint-images/s")
	b.ReportMetric(mean(edgeOnly), "edge-only-images/s")
	b.ReportMetric(mean(joint)/mean(edgeOnly), "joint/edge-only")
	b.ReportMetric(perSample, "bytes-up/offloaded")
	b.ReportMetric(perImageJSON, "sedna-json-bytes/image")
	b.ReportMetric(perSample/perImageJSON, "ours/sedna-json")
	b.Logf("joint %.0f images/s (%v), edge-only %.0f images/s (%v): ratio %.2f; edge latency p50 %.2f ms p99 %.2f ms, offloaded p50 %.2f ms p99 %.2f ms (last 4096 of each); %.0f bytes up per offloaded image at the cloud broker (%d images) vs %.0f bytes of Sedna's JSON: %.3f",
		mean(joint), roundAll(joint), mean(edgeOnly), roundAll(edgeOnly), mean(joint)/mean(edgeOnly),
		st.Metrics["edgeLatencyP50ms"], st.Metrics["edgeLatencyP99ms"], st.Metrics["offloadLatencyP50ms"], st.Metrics["offloadLatencyP99ms"],
		perSample, upSamples, perImageJSON, perSample/perImageJSON)
}

func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Round(x)
	}
	return out
}

var _ = jointinference.KindOffload
