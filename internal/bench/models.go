package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"sync/atomic"
	"text/tabwriter"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// models measures model distribution to a `sedna edge` process against the
// bridge's raw downlink throughput for the same bytes, in one run, with the
// edge's resident memory, and the latency of apply.
func (b *bencher) models(ctx context.Context) error {
	pw, _, creds, err := benchUsers("ops")
	if err != nil {
		return err
	}
	m, err := cloud.Start(cloud.Config{DataDir: b.subdir("cloud-models"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"},
		cloud.Options{Paradigms: all.All(), Logger: b.o.Log, Credentials: creds})
	if err != nil {
		return err
	}
	defer m.Close()
	e, err := b.startEdge(ctx, "process", m.BrokerURL(), "--password", pw)
	if err != nil {
		return err
	}
	defer e.stop()
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "ops", Password: pw})
	if err != nil {
		return err
	}
	defer c.Close()
	app, err := benchClient(m.BrokerURL(), "bench-app", "ops", pw)
	if err != nil {
		return err
	}
	defer app.Disconnect(0)
	local, err := benchClient("tcp://"+e.addr, "bench-local", "", "")
	if err != nil {
		return err
	}
	defer local.Disconnect(0)

	fmt.Fprintf(b.out, "\n## Model distribution: cloud registry -> bridge downlink -> edge model cache\n\n")
	fmt.Fprintf(b.out, "A `sedna edge` process (write mode process) and the embedded cloud broker; raw: the same bytes as\n")
	fmt.Fprintf(b.out, "%d KB messages published by a cloud app for the node, received by a subscriber on the edge broker.\n\n", cloud.ModelChunkSize>>10)
	tw := tabwriter.NewWriter(b.out, 0, 4, 1, ' ', 0)
	fmt.Fprintln(tw, "| model\t raw downlink MB/s\t model distribution MB/s\t vs raw\t edge RSS idle / peak (raw)\t edge RSS peak (model): all / anonymous\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t")
	for i, size := range []int{1 << 20, 64 << 20} {
		rawRate, rawIdle, rawPeak, err := b.rawDownlink(ctx, app, local, size, e)
		if err != nil {
			return err
		}
		modelRate, modelPeak, modelAnon, err := b.distribute(ctx, c, size, fmt.Sprintf("bench-model-%d", i), e)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "| %d MB\t %.1f\t %.1f\t %.2fx\t %.1f / %.1f MB\t %.1f / %.1f MB\t\n", size>>20, rawRate, modelRate, modelRate/rawRate,
			float64(rawIdle)/1024, float64(rawPeak)/1024, float64(modelPeak)/1024, float64(modelAnon)/1024)
	}
	tw.Flush()

	// apply -> accepted, one small document at a time.
	var lat []time.Duration
	for i := range 20 {
		doc := fmt.Sprintf("apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: bench-ds-%d}\nspec: {url: /data/%d.txt, format: txt, nodeName: bench}\n", i, i)
		rs, err := api.Parse([]byte(doc), "bench")
		if err != nil {
			return err
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rep, err := c.Apply(actx, rs)
		cancel()
		if err != nil || len(rep.Results) != 1 || rep.Results[0].Action != "created" {
			return fmt.Errorf("apply: %v %+v", err, rep)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Fprintf(b.out, "\napply -> accepted (a client's request to the control plane and its answer, 20 documents): p50 %v, max %v\n",
		lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	return nil
}

// sampleRSS tracks the peak resident memory of the edge, in all and its
// anonymous part, until stop.
func sampleRSS(e *edgeProc) (peak, anon *atomic.Int64, stop func()) {
	peak, anon = &atomic.Int64{}, &atomic.Int64{}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := rss(e.cmd.Process.Pid); v > peak.Load() {
				peak.Store(v)
			}
			if v := rssAnon(e.cmd.Process.Pid); v > anon.Load() {
				anon.Store(v)
			}
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	return peak, anon, func() { close(done); <-finished }
}

func (b *bencher) rawDownlink(ctx context.Context, app, local paho.Client, size int, e *edgeProc) (float64, int64, int64, error) {
	chunk := cloud.ModelChunkSize
	n := size / chunk
	topic := fmt.Sprintf("raw/%d", size)
	got := make(chan struct{}, n)
	var count atomic.Int64
	if t := local.Subscribe(topic, 1, func(paho.Client, paho.Message) {
		if count.Add(1) <= int64(n) {
			got <- struct{}{}
		}
	}); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, 0, 0, fmt.Errorf("subscribe: %v", t.Error())
	}
	defer local.Unsubscribe(topic)
	idle := rss(e.cmd.Process.Pid)
	peak, _, stop := sampleRSS(e)
	payload := make([]byte, chunk)
	start := time.Now()
	for range n {
		t := app.Publish(topics.ToNodeApp("bench", topic), 1, false, payload)
		if !t.WaitTimeout(60*time.Second) || t.Error() != nil {
			stop()
			return 0, 0, 0, fmt.Errorf("publish: %v", t.Error())
		}
	}
	for range n {
		select {
		case <-got:
		case <-ctx.Done():
			stop()
			return 0, 0, 0, ctx.Err()
		case <-time.After(5 * time.Minute):
			stop()
			return 0, 0, 0, fmt.Errorf("raw downlink: %d of %d messages", count.Load(), n)
		}
	}
	elapsed := time.Since(start)
	stop()
	return float64(size) / (1 << 20) / elapsed.Seconds(), idle, peak.Load(), nil
}

func (b *bencher) distribute(ctx context.Context, c *cloud.Client, size int, name string, e *edgeProc) (float64, int64, int64, error) {
	data := make([]byte, size)
	_, _ = rand.Read(data)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if _, err := c.PushModel(pctx, "default", name, "bin", nil, bytes.NewReader(data)); err != nil {
		return 0, 0, 0, err
	}
	held := make(chan struct{}, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ref := topics.JobRef{Kind: api.KindModel, Namespace: "default", Name: name}
	go func() {
		_ = c.Watch(wctx, ref, func(st api.Status) {
			if st.Model != nil && st.Model.Nodes["bench"] == st.Model.Version && st.Model.Version > 0 {
				select {
				case held <- struct{}{}:
				default:
				}
			}
		}, nil)
	}()
	doc := fmt.Sprintf(`apiVersion: sedna.io/v1alpha1
kind: JointInferenceService
metadata: {name: %s}
spec:
  edgeWorker: {model: {name: %s}, hardExampleMining: {name: IBT}, template: {spec: {nodeName: bench}}}
  cloudWorker: {model: {name: %s}, template: {spec: {nodeName: cloud}}}
`, name, name, name)
	rs, err := api.Parse([]byte(doc), "bench")
	if err != nil {
		return 0, 0, 0, err
	}
	peak, anon, stop := sampleRSS(e)
	start := time.Now()
	if _, err := c.Apply(pctx, rs); err != nil {
		stop()
		return 0, 0, 0, err
	}
	select {
	case <-held:
	case <-pctx.Done():
		stop()
		return 0, 0, 0, fmt.Errorf("model %s never reached the node", name)
	}
	elapsed := time.Since(start)
	stop()
	return float64(size) / (1 << 20) / elapsed.Seconds(), peak.Load(), anon.Load(), nil
}
