package plugins_test

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/plugins/internal/reference"
)

// Miner overhead: batches of 64 samples, sandboxed against the native twin,
// side by side. Reported per sample.
func BenchmarkMiner(b *testing.B) {
	h, _ := newHost(b, plugins.Config{})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 1))
	const batch, classes = 64, 10
	probs := randomProbs(r, batch, classes)
	for i := range probs { // valid rows only: measure the rule, not the refusals
		if probs[i] != probs[i] || probs[i] > 1 {
			probs[i] = 0.1
		}
	}
	boxes := randomBoxes(r, batch)
	for _, bs := range boxes {
		for i := range bs {
			bs[i][4] = 0.3
		}
	}
	refBoxes := toRef(boxes)
	perSample := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/batch, "ns/sample")
	}
	for _, name := range []string{"CrossEntropy", "IBT"} {
		b.Run(name+"/native", func(b *testing.B) {
			for b.Loop() {
				if name == "IBT" {
					reference.IBT(refBoxes, nil)
				} else {
					reference.CrossEntropy(probs, classes, nil)
				}
			}
			perSample(b)
		})
		b.Run(name+"/wasm", func(b *testing.B) {
			m, err := h.Miner(name, nil)
			if err != nil {
				b.Fatal(err)
			}
			in := plugins.Batch{Probs: probs, Classes: classes}
			if name == "IBT" {
				in = plugins.Batch{Boxes: boxes}
			}
			for b.Loop() {
				if _, err := m.Mine(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			perSample(b)
		})
	}
}

// Aggregation of 10 clients × 100k float32, sandboxed against native.
func BenchmarkAggregate(b *testing.B) {
	h, _ := newHost(b, plugins.Config{})
	r := rand.New(rand.NewPCG(2, 2))
	us := make([]plugins.Update, 10)
	for i := range us {
		w := make([]float32, 100_000)
		for j := range w {
			w[j] = float32(r.NormFloat64())
		}
		us[i] = plugins.Update{Weights: w, Samples: float64(100 + i)}
	}
	ref := refUpdates(us)
	native := map[string]func(){
		"FedAvg":      func() { reference.FedAvg(ref) },
		"Median":      func() { reference.Median(ref) },
		"TrimmedMean": func() { reference.TrimmedMean(ref, nil) },
	}
	for _, name := range []string{"FedAvg", "Median", "TrimmedMean"} {
		b.Run(name+"/native", func(b *testing.B) {
			for b.Loop() {
				native[name]()
			}
		})
		b.Run(name+"/wasm", func(b *testing.B) {
			a, _ := h.Aggregator(name, nil)
			for b.Loop() {
				if _, err := a.Aggregate(context.Background(), plugins.Round{Updates: us}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Cold start with a warm compilation cache: a new host loads the module,
// instantiates it, reads the manifest and serves a first call.
func BenchmarkColdStart(b *testing.B) {
	margin, _ := buildGoPlugins(b)
	dir := b.TempDir()
	for _, c := range []struct {
		name  string
		files []string
		miner string
	}{
		{"builtins-C", nil, "CrossEntropy"},
		{"go-guest", []string{margin}, "Margin"},
	} {
		cfg := plugins.Config{CacheDir: dir, NoBuiltins: c.files != nil}
		warm, _ := newHost(b, cfg) // fills the cache
		for _, f := range c.files {
			loadFile(b, warm, f)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				h, err := plugins.New(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				for _, f := range c.files {
					if _, err := h.LoadFile(context.Background(), f); err != nil {
						b.Fatal(err)
					}
				}
				m, err := h.Miner(c.miner, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Mine(context.Background(), plugins.Batch{Classes: 2, Probs: []float32{0.5, 0.5}}); err != nil {
					b.Fatal(err)
				}
				h.Close(context.Background())
			}
		})
	}
}

func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// Host RSS per loaded module and per instance: 8 concurrent callers force 8
// instances of one module.
func BenchmarkRSS(b *testing.B) {
	margin, _ := buildGoPlugins(b)
	for _, c := range []struct{ name, file, miner string }{
		{"builtins-C", "../plugins/builtin/builtins.wasm", "CrossEntropy"},
		{"go-guest", margin, "Margin"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				debug.FreeOSMemory()
				base := rssMB()
				h, err := plugins.New(context.Background(), plugins.Config{CacheDir: cacheDir, NoBuiltins: true, MaxInstances: 8})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.LoadFile(context.Background(), c.file); err != nil {
					b.Fatal(err)
				}
				debug.FreeOSMemory()
				loaded := rssMB()
				m, _ := h.Miner(c.miner, nil)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						for range 20 {
							m.Mine(context.Background(), plugins.Batch{Classes: 10, Probs: make([]float32, 640)})
						}
					}()
				}
				close(start)
				wg.Wait()
				debug.FreeOSMemory()
				eight := rssMB()
				b.ReportMetric(loaded-base, "MB-module")
				b.ReportMetric((eight-loaded)/7, "MB/instance")
				h.Close(context.Background())
			}
		})
	}
}
