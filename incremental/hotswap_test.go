package incremental_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// swapRig is an inference worker on a node (an in-memory bus, a Badger
// store, the WASM miner) whose model registry a test adds versions to.
type swapRig struct {
	reg     *paradigmtest.Registry
	bus     paradigm.Bus
	metrics atomic.Pointer[map[string]float64]
	fresh   chan struct{} // a report of metrics came
	done    chan error
	cancel  context.CancelFunc
	net     *ml.Network
}

// newSwapRig starts the worker of a job whose deploy model is hot-updated
// (or not), serving a model of hidden units.
func newSwapRig(t testing.TB, hot bool, hidden int) *swapRig {
	t.Helper()
	ctx := context.Background()
	m, err := ml.NewMLP(196, []int{hidden}, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := m.MarshalBinary()
	r := &swapRig{reg: paradigmtest.NewRegistry(map[string][]byte{"default/initial-model": blob, "default/deploy-model": blob}), net: m,
		done: make(chan error, 1), fresh: make(chan struct{}, 1)}
	host := testHost(t)
	st := tempStore(t)
	net := paradigmtest.NewNet()
	r.bus = net.Node("edge1")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	half, err := incremental.Paradigm{}.Edge(paradigm.Env{Side: paradigm.Edge, Node: "edge1", Bus: r.bus, Models: r.reg, Store: st, Log: log,
		Plugins: func() (*plugins.Host, error) { return host, nil },
		Data:    paradigm.SamplesFunc(func(string, string, uint64, func(uint64, []byte) error) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(half.Close)
	doc := strings.Replace(ilJob, "hotUpdateEnabled: true", fmt.Sprintf("hotUpdateEnabled: %v, pollPeriodSeconds: 1", hot), 1)
	ref := topics.JobRef{Kind: api.KindIncrementalLearningJob, Namespace: "default", Name: "helmet"}
	ready := make(chan struct{})
	var once sync.Once
	spec := workers.Spec{Job: ref, Generation: 1, Document: []byte(doc), Worker: api.Worker{Role: "deploy", Node: "edge1"},
		ReportMessage: func(msg string) {
			if msg == "" {
				once.Do(func() { close(ready) })
			}
		},
		ReportMetrics: func(m map[string]float64) {
			r.metrics.Store(&m)
			select {
			case r.fresh <- struct{}{}:
			default:
			}
		}}
	wctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go func() { r.done <- half.Workers["deploy"](wctx, spec, log) }()
	t.Cleanup(func() { cancel(); <-r.done })
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("the inference worker stopped: %v", err)
	}
	return r
}

// deploy registers a new version of the deploy model (the same weights).
func (r *swapRig) deploy(t testing.TB) uint64 {
	t.Helper()
	blob, _ := r.net.MarshalBinary()
	v, err := r.reg.Register(context.Background(), "default", "deploy-model", "", "", nil, blob)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// load is a device sending requests one after another (each sent when the
// previous one is answered) until stop is closed: the latency of each, and
// the requests that got an error or no answer within a second.
func (r *swapRig) load(t testing.TB, stop <-chan struct{}) (lat []time.Duration, failed, lost int) {
	t.Helper()
	answers := make(chan jointinference.Result, 16)
	unsub, err := r.bus.Subscribe("cam/answers", func(m paradigm.Message) error {
		if res, _, err := jointinference.DecodeResult(m.Payload); err == nil {
			answers <- res
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unsub() }()
	frame := make([]byte, 196)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return lat, failed, lost
		default:
		}
		frame[i%196]++
		raw, _ := jointinference.EncodeRequest(jointinference.Request{ID: fmt.Sprint(i), Shape: []int{14, 14}, Data: frame}, "cam/answers", "")
		t0 := time.Now()
		if err := r.bus.Publish(incremental.InputTopic("default", "helmet"), raw, false, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-answers:
			lat = append(lat, time.Since(t0))
			if res.Error != "" || res.ID != fmt.Sprint(i) {
				failed++
			}
		case <-time.After(time.Second):
			lost++
		}
	}
}

// waitUpdates waits until the worker has reported n model updates.
func (r *swapRig) waitUpdates(t testing.TB, n float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := r.metrics.Load(); m != nil && (*m)["hotUpdates"] >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %v model updates reported in 30 s", n)
		}
		select {
		case err := <-r.done:
			t.Fatalf("the inference worker stopped: %v", err)
		case <-r.fresh: // metrics come every 2 s
		case <-time.After(time.Until(deadline)):
		}
	}
}

// Must-show 6: three new model versions are hot-swapped in while a
// device keeps sending: every request is answered, none with an error,
// none dropped, and the worker reports the three updates.
func TestHotUpdateUnderLoadDropsNothing(t *testing.T) {
	r := newSwapRig(t, true, 256)
	stop := make(chan struct{})
	type outcome struct {
		lat          []time.Duration
		failed, lost int
	}
	res := make(chan outcome, 1)
	go func() {
		lat, failed, lost := r.load(t, stop)
		res <- outcome{lat, failed, lost}
	}()
	for i := range 3 {
		r.deploy(t)
		r.waitUpdates(t, float64(i+1))
	}
	close(stop)
	o := <-res
	m := *r.metrics.Load()
	t.Logf("%d requests across 3 hot updates: %d failed, %d unanswered, %v dropped at the input; p99 %v", len(o.lat), o.failed, o.lost,
		m["inputDropped"], percentile(o.lat, 0.99))
	if o.failed != 0 || o.lost != 0 || m["inputDropped"] != 0 || len(o.lat) == 0 {
		t.Fatalf("%d requests: %d failed, %d unanswered, %v dropped", len(o.lat), o.failed, o.lost, m["inputDropped"])
	}
}

// Without hot update the worker restarts with a new version instead (as
// Sedna's): it counts the update, answers no request with an error, and
// serves on after it.
func TestWithoutHotUpdateTheWorkerRestartsWithTheModel(t *testing.T) {
	r := newSwapRig(t, false, 64)
	stop := make(chan struct{})
	type outcome struct {
		lat          []time.Duration
		failed, lost int
	}
	res := make(chan outcome, 1)
	go func() {
		lat, failed, lost := r.load(t, stop)
		res <- outcome{lat, failed, lost}
	}()
	r.deploy(t)
	r.waitUpdates(t, 1)
	at := (*r.metrics.Load())["samples"]
	<-r.fresh // the next report, 2 s on
	close(stop)
	o := <-res
	m := *r.metrics.Load()
	t.Logf("%d requests across a restart: %d unanswered (sent while it restarted); %v answered after it", len(o.lat), o.lost, m["samples"]-at)
	if o.failed != 0 || m["hotUpdates"] != 1 || m["samples"] <= at {
		t.Fatalf("%d failed, %v updates, %v samples then %v", o.failed, m["hotUpdates"], at, m["samples"])
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkHotUpdate measures a device's request latency at the inference
// worker over 3 s, side by side in one run: with nothing deployed, and with
// a new version (an MLP of 1,024 hidden units, 0.8 MB) deployed every
// poll, so that about three hot updates fall in the window. It reports
// both p99s, their ratio, and the requests that failed or went unanswered
// during the swaps (which must be 0).
func BenchmarkHotUpdate(b *testing.B) {
	var steady, swapping []time.Duration
	failures := 0
	for range b.N {
		for _, swap := range []bool{false, true} {
			r := newSwapRig(b, true, 1024)
			stop := make(chan struct{})
			done := make(chan struct{})
			var lat []time.Duration
			var failed, lost int
			go func() { lat, failed, lost = r.load(b, stop); close(done) }()
			if swap {
				for i := range 3 {
					r.deploy(b)
					r.waitUpdates(b, float64(i+1))
				}
			} else {
				<-time.After(3 * time.Second)
			}
			close(stop)
			<-done
			r.cancel()
			failures += failed + lost
			if swap {
				swapping = append(swapping, lat...)
			} else {
				steady = append(steady, lat...)
			}
		}
	}
	s, w := percentile(steady, 0.99), percentile(swapping, 0.99)
	b.ReportMetric(float64(s.Microseconds()), "p99-steady-µs")
	b.ReportMetric(float64(w.Microseconds()), "p99-swapping-µs")
	b.ReportMetric(float64(w)/float64(s), "p99-ratio")
	b.ReportMetric(float64(failures), "failed")
	b.ReportMetric(float64(len(swapping)), "requests-swapping")
}
