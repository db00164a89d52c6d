package lifelong_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/cluster"
	"github.com/sedna-go/sedna/ml/comfort"
)

// The tasks of the tests, from the thermal-comfort generator: A, B and C
// arrive in turn, D is never seen until it is flagged.
var (
	taskA, taskB, taskC, taskD = "tropical-summer-nv", "temperate-summer-ac", "cold-winter-nv", "cold-summer-nv"
	seenTasks                  = []string{taskA, taskB, taskC}
)

// comfortSamples draws n samples of a task, its name as their attribute.
func comfortSamples(t testing.TB, name string, n int, seed uint64) []lifelong.Sample {
	t.Helper()
	task, err := comfort.ParseTask(name)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := comfort.Generate(task, n, seed)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]lifelong.Sample, n)
	for i, s := range raw {
		out[i] = lifelong.Sample{X: s.Features(), Y: int(s.Preference), Attr: name}
	}
	return out
}

// data is each task's training and test samples.
type data struct{ train, test map[string][]lifelong.Sample }

func comfortData(t testing.TB) data {
	d := data{train: map[string][]lifelong.Sample{}, test: map[string][]lifelong.Sample{}}
	for i, name := range []string{taskA, taskB, taskC, taskD} {
		d.train[name] = comfortSamples(t, name, 2000, uint64(10+i))
		d.test[name] = comfortSamples(t, name, 1000, uint64(100+i))
	}
	return d
}

func config(m lifelong.Method) lifelong.Config {
	return lifelong.Config{Method: m, Dim: len(comfort.FeatureNames), Classes: len(comfort.PreferenceNames), Seed: 1}
}

// kbAccuracy is the knowledge base's accuracy on samples sent in windows
// of 10 (a sample of a task it calls unseen is answered by the nearest
// task's model).
func kbAccuracy(t testing.TB, kb *lifelong.KB, samples []lifelong.Sample) float64 {
	t.Helper()
	right := 0
	for lo := 0; lo < len(samples); lo += 10 {
		win := samples[lo:min(lo+10, len(samples))]
		classes, _, err := kb.Predict(win)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range classes {
			if c == win[i].Y {
				right++
			}
		}
	}
	return float64(right) / float64(len(samples))
}

func xy(samples []lifelong.Sample) ([]float32, []int) {
	var x []float32
	y := make([]int, len(samples))
	for i, s := range samples {
		x = append(x, s.X...)
		y[i] = s.Y
	}
	return x, y
}

// fitOne fits (or fine-tunes) m on samples as a task's model is fitted.
func fitOne(t testing.TB, m *ml.Network, samples []lifelong.Sample) {
	t.Helper()
	x, y := xy(samples)
	if err := m.Fit(context.Background(), x, y, ml.FitOptions{Epochs: 30, Optimizer: ml.Adam, Seed: 2}); err != nil {
		t.Fatal(err)
	}
}

func accuracy(t testing.TB, m *ml.Network, samples []lifelong.Sample) float64 {
	t.Helper()
	x, y := xy(samples)
	ev, err := ml.Evaluate(m, x, y)
	if err != nil {
		t.Fatal(err)
	}
	return ev.Accuracy
}

func newMLP(t testing.TB) *ml.Network {
	m, err := ml.NewMLP(len(comfort.FeatureNames), []int{32}, len(comfort.PreferenceNames), 3)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Must-show 1 of issue 18, for both ways of defining tasks: A, B and C
// arrive in turn; the knowledge base's accuracy on A after C is within 2
// points of its accuracy right after A, where one model fine-tuned on
// each task in turn loses more than 15 points on A.
func TestTasksInSequenceAreNotForgotten(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models")
	}
	d, _ := seenKBs(t)
	one := newMLP(t)
	fitOne(t, one, d.train[taskA])
	oneAfterA := accuracy(t, one, d.test[taskA])
	for _, name := range []string{taskB, taskC} {
		fitOne(t, one, d.train[name])
	}
	oneAfterC := accuracy(t, one, d.test[taskA])
	t.Logf("one model fine-tuned on A, B, C in turn: %.3f on A after A, %.3f after C", oneAfterA, oneAfterC)
	if oneAfterA-oneAfterC <= 0.15 {
		t.Errorf("the fine-tuned model lost %.3f on A: the tasks are meant to make it forget more than 15 points", oneAfterA-oneAfterC)
	}
	_, kbs := seenKBs(t)
	for method, kb := range kbs {
		afterA, afterC := learnt.afterA[method], kbAccuracy(t, kb, d.test[taskA])
		t.Logf("knowledge base by %s: %d tasks; %.3f on A after A, %.3f after C", method, len(kb.Tasks), afterA, afterC)
		if afterA-afterC > 0.02 {
			t.Errorf("by %s: the knowledge base lost %.3f on A", method, afterA-afterC)
		}
	}
}

// learnt is a knowledge base of each method that learnt A, B and C in
// turn (its accuracy on A measured right after A), built once for the
// tests that look at it.
var learnt = struct {
	once   sync.Once
	d      data
	kbs    map[lifelong.Method]*lifelong.KB
	afterA map[lifelong.Method]float64 // accuracy on A right after A
	err    error
}{}

func seenKBs(t *testing.T) (data, map[lifelong.Method]*lifelong.KB) {
	t.Helper()
	learnt.once.Do(func() {
		learnt.d = comfortData(t)
		learnt.kbs, learnt.afterA = map[lifelong.Method]*lifelong.KB{}, map[lifelong.Method]float64{}
		for _, method := range []lifelong.Method{lifelong.ByAttribute, lifelong.ByCluster} {
			kb, err := lifelong.New(config(method))
			if err != nil {
				learnt.err = err
				return
			}
			for _, name := range seenTasks {
				if _, err := kb.Learn(context.Background(), learnt.d.train[name]); err != nil {
					learnt.err = err
					return
				}
				if name == taskA {
					learnt.afterA[method] = kbAccuracy(t, kb, learnt.d.test[taskA])
				}
			}
			learnt.kbs[method] = kb
		}
	})
	if learnt.err != nil {
		t.Fatal(learnt.err)
	}
	return learnt.d, learnt.kbs
}

// Must-show 2 of issue 18, its first half: D's samples (sent in windows
// of 10, as one building's sensor sends them) are flagged unseen, A, B and
// C's are not: precision and recall of the flag at least 0.9, by
// attribute and by clustering.
func TestAnUnseenTaskIsFlagged(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models")
	}
	d, kbs := seenKBs(t)
	for _, method := range []lifelong.Method{lifelong.ByAttribute, lifelong.ByCluster} {
		kb := kbs[method]
		var tp, fp, fn int
		for _, name := range []string{taskA, taskB, taskC, taskD} {
			test := d.test[name]
			for lo := 0; lo < len(test); lo += 10 {
				_, unseen, err := kb.Allocate(test[lo:min(lo+10, len(test))])
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range unseen {
					switch {
					case u && name == taskD:
						tp++
					case u:
						fp++
					case name == taskD:
						fn++
					}
				}
			}
		}
		precision, recall := float64(tp)/float64(max(tp+fp, 1)), float64(tp)/float64(tp+fn)
		t.Logf("by %s: unseen flag precision %.3f, recall %.3f", method, precision, recall)
		if precision < 0.9 || recall < 0.9 {
			t.Errorf("by %s: precision %.3f, recall %.3f of the unseen flag: want 0.9 each", method, precision, recall)
		}
	}
}

// withD is a copy of each knowledge base of seenKBs that then learnt D,
// with each method's accuracy on D just before, built once.
var withD = struct {
	once   sync.Once
	kbs    map[lifelong.Method]*lifelong.KB
	before map[lifelong.Method]float64
	err    error
}{}

func kbsWithD(t *testing.T) (data, map[lifelong.Method]*lifelong.KB) {
	t.Helper()
	d, seen := seenKBs(t)
	withD.once.Do(func() {
		withD.kbs, withD.before = map[lifelong.Method]*lifelong.KB{}, map[lifelong.Method]float64{}
		for method, kb := range seen {
			c, err := kb.Clone()
			if err != nil {
				withD.err = err
				return
			}
			withD.before[method] = kbAccuracy(t, c, d.test[taskD])
			if _, err := c.Learn(context.Background(), d.train[taskD]); err != nil {
				withD.err = err
				return
			}
			withD.kbs[method] = c
		}
	})
	if withD.err != nil {
		t.Fatal(withD.err)
	}
	return d, withD.kbs
}

// Must-show 2 of issue 18, its second half: once D's samples are learnt
// (labelled, as the job's oracle labels them), the knowledge base's
// accuracy on D is within 3 points of a model trained on D alone, by
// attribute and by clustering, and A is still not forgotten.
func TestAnUnseenTaskIsLearnt(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models")
	}
	d, kbs := kbsWithD(t)
	alone := newMLP(t)
	fitOne(t, alone, d.train[taskD])
	aloneAcc := accuracy(t, alone, d.test[taskD])
	for _, method := range []lifelong.Method{lifelong.ByAttribute, lifelong.ByCluster} {
		kb := kbs[method]
		after, onA := kbAccuracy(t, kb, d.test[taskD]), kbAccuracy(t, kb, d.test[taskA])
		t.Logf("by %s: D %.3f before learning it (the nearest task's model), %.3f after; a model of D alone %.3f; A %.3f (%.3f after A)",
			method, withD.before[method], after, aloneAcc, onA, learnt.afterA[method])
		if after < aloneAcc-0.03 {
			t.Errorf("by %s: %.3f on D, more than 3 points below D's own model (%.3f)", method, after, aloneAcc)
		}
		if learnt.afterA[method]-onA > 0.02 {
			t.Errorf("by %s: learning D lost %.3f on A", method, learnt.afterA[method]-onA)
		}
	}
}

// Must-show 3 of issue 18: without attributes, the tasks the clustering
// allocates A, B, C and D's test samples to (in windows of 10) recover
// the generator's tasks (adjusted Rand index at least 0.8), and the
// knowledge base's mean accuracy over the four is within 3 points of the
// one by attribute.
func TestClusteringRecoversTheTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models")
	}
	d, kbs := kbsWithD(t)
	var truth, got []int
	for i, name := range []string{taskA, taskB, taskC, taskD} {
		test := d.test[name]
		for lo := 0; lo < len(test); lo += 10 {
			tasks, _, err := kbs[lifelong.ByCluster].Allocate(test[lo:min(lo+10, len(test))])
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range tasks {
				truth, got = append(truth, i), append(got, task)
			}
		}
	}
	ari, err := cluster.AdjustedRandIndex(truth, got)
	if err != nil {
		t.Fatal(err)
	}
	mean := map[lifelong.Method]float64{}
	for method, kb := range kbs {
		for _, name := range []string{taskA, taskB, taskC, taskD} {
			mean[method] += kbAccuracy(t, kb, d.test[name]) / 4
		}
	}
	t.Logf("by cluster: %d tasks, adjusted Rand index %.3f against the generator's 4; mean accuracy %.3f by cluster, %.3f by attribute",
		len(kbs[lifelong.ByCluster].Tasks), ari, mean[lifelong.ByCluster], mean[lifelong.ByAttribute])
	if ari < 0.8 {
		t.Errorf("adjusted Rand index %.3f: want 0.8", ari)
	}
	if mean[lifelong.ByCluster] < mean[lifelong.ByAttribute]-0.03 {
		t.Errorf("mean accuracy by cluster %.3f, more than 3 points below by attribute (%.3f)", mean[lifelong.ByCluster], mean[lifelong.ByAttribute])
	}
}

// Must-show 4 of issue 18: nine tasks, A, B and C each at three sites
// whose occupants meet the same conditions but prefer differently
// (comfort.SiteShift); the knowledge base by attribute (the site is in
// the attribute, not in the features) scores a mean per-task accuracy at
// least 5 points above one global model of the same features trained on
// all the same data, of the tasks' size and of four times it (the larger
// left out under the race detector).
func TestTheKnowledgeBaseBeatsOneGlobalModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models")
	}
	kb, err := lifelong.New(config(lifelong.ByAttribute))
	if err != nil {
		t.Fatal(err)
	}
	var all []lifelong.Sample
	tests := map[string][]lifelong.Sample{}
	for i, base := range seenTasks {
		for site := range comfort.Sites {
			name := base
			if site > 0 {
				name = fmt.Sprintf("%s-site%d", base, site)
			}
			train := comfortSamples(t, name, 2000, uint64(200+10*i+site))
			tests[name] = comfortSamples(t, name, 1000, uint64(300+10*i+site))
			all = append(all, train...)
			if _, err := kb.Learn(context.Background(), train); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mean float64
	for _, test := range tests {
		mean += kbAccuracy(t, kb, test) / float64(len(tests))
	}
	x, y := xy(all)
	sizes := []int{32, 128}
	if raceEnabled {
		sizes = sizes[:1]
	}
	for _, hidden := range sizes {
		global, err := ml.NewMLP(len(comfort.FeatureNames), []int{hidden}, len(comfort.PreferenceNames), 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := global.Fit(context.Background(), x, y, ml.FitOptions{Epochs: 30, Optimizer: ml.Adam, Seed: 2}); err != nil {
			t.Fatal(err)
		}
		var g float64
		for _, test := range tests {
			g += accuracy(t, global, test) / float64(len(tests))
		}
		t.Logf("mean per-task accuracy over %d tasks: knowledge base %.3f, one global model of %d hidden units %.3f (%+.1f points)",
			len(tests), mean, hidden, g, 100*(mean-g))
		if mean-g < 0.05 {
			t.Errorf("the knowledge base's %.3f is not 5 points above the global model's %.3f", mean, g)
		}
	}
}
