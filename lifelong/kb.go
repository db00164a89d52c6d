package lifelong

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/cluster"
)

// ErrInvalid: samples or settings the knowledge base cannot take.
var ErrInvalid = errors.New("lifelong: invalid input")

// Sample is one labelled sample of a lifelong job: its features, its
// class, and its task attribute (the value of the job's attribute
// columns, "" when the job defines tasks by clustering).
type Sample struct {
	X    []float32
	Y    int
	Attr string
}

// Method is how the knowledge base defines tasks.
type Method string

// The two methods: by the samples' attribute (Sedna's default), or by
// clustering their features when the job names no attribute.
const (
	ByAttribute Method = "attribute"
	ByCluster   Method = "cluster"
)

// Config is how a knowledge base learns.
type Config struct {
	Method  Method `msgpack:"method" json:"method"`
	Dim     int    `msgpack:"dim" json:"dim"` // features per sample
	Classes int    `msgpack:"classes" json:"classes"`
	// Hidden are the task models' hidden layers (default one of 32).
	Hidden []int `msgpack:"hidden" json:"hidden"`
	// Epochs, BatchSize and LearningRate fit each task's model (default
	// 30 epochs of Adam at 0.001, batches of 32).
	Epochs       int     `msgpack:"epochs" json:"epochs"`
	BatchSize    int     `msgpack:"batchSize" json:"batchSize,omitempty"`
	LearningRate float32 `msgpack:"learningRate" json:"learningRate,omitempty"`
	// HoldOut is the share of each task's samples its model is not
	// trained on but measured on (default 0.2; negative: none, and the
	// task's accuracy is NaN).
	HoldOut float64 `msgpack:"holdOut" json:"holdOut"`
	// MinTaskSamples is the fewest unexplained samples that make new
	// tasks by clustering (default 50): fewer join their nearest tasks.
	MinTaskSamples int `msgpack:"minTaskSamples" json:"minTaskSamples"`
	// MaxTasks bounds the tasks one clustering may define (default 8).
	MaxTasks int `msgpack:"maxTasks" json:"maxTasks"`
	// UnseenQuantile sets the threshold of the unseen-task test: the
	// log density below which that share of the training windows fall
	// (default 0.01). Window is how many consecutive samples of one
	// source the test averages (default 10; 1 judges each sample).
	UnseenQuantile float64 `msgpack:"unseenQuantile" json:"unseenQuantile"`
	Window         int     `msgpack:"window" json:"window"`
	Seed           uint64  `msgpack:"seed" json:"seed"`
}

func (c Config) withDefaults() (Config, error) {
	if c.Method == "" {
		c.Method = ByAttribute
	}
	if c.Method != ByAttribute && c.Method != ByCluster {
		return c, fmt.Errorf("%w: method %q: want %s or %s", ErrInvalid, c.Method, ByAttribute, ByCluster)
	}
	if c.Dim < 1 || c.Classes < 2 {
		return c, fmt.Errorf("%w: %d features to %d classes", ErrInvalid, c.Dim, c.Classes)
	}
	if c.Hidden == nil {
		c.Hidden = []int{32}
	}
	if c.Epochs <= 0 {
		c.Epochs = 30
	}
	if c.HoldOut == 0 {
		c.HoldOut = 0.2
	}
	if c.HoldOut < 0 || c.HoldOut >= 1 {
		c.HoldOut = 0
	}
	if c.MinTaskSamples <= 0 {
		c.MinTaskSamples = 50
	}
	if c.MaxTasks <= 0 {
		c.MaxTasks = 8
	}
	if c.UnseenQuantile <= 0 || c.UnseenQuantile >= 1 {
		c.UnseenQuantile = 0.01
	}
	if c.Window <= 0 {
		c.Window = 10
	}
	return c, nil
}

// Task is a task of the knowledge base and its model.
type Task struct {
	// ID names it: "attr:VALUE" or "cluster:N".
	ID    string
	Attr  string
	Model *ml.Network
	// Samples is how many samples its model learnt from; Total counts
	// the held-out ones too.
	Samples, Total int
	// Accuracy and Precision (micro-averaged over the classes, as Sedna's
	// example measures it) are its model's on its own samples held out at
	// training (NaN when none are).
	Accuracy, Precision float64
	// Components are its clusters in the knowledge base's recognition
	// mixture.
	Components []int
}

// KB is a knowledge base: the tasks the job met, a model per task, and
// how a sample is allocated to a task (its attribute, or the nearest
// cluster of a Gaussian mixture over the features), or recognised as of
// none (an unseen task). Allocate and Predict may be called from several
// goroutines at once; Learn may not be called with anything else.
type KB struct {
	Config Config
	Tasks  []*Task
	// Mixture recognises the tasks by their features; component i
	// belongs to task Owner[i]. Threshold is the unseen test's bound on
	// a window's mean log density.
	Mixture   *cluster.Mixture
	Owner     []int
	Threshold float64
	data      map[string][]Sample // each task's samples, by ID
	mixed     int                 // samples the mixture's clusters were fitted to
}

// New makes an empty knowledge base.
func New(cfg Config) (*KB, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &KB{Config: cfg, data: map[string][]Sample{}}, nil
}

// checkX checks the samples' features.
func (kb *KB) checkX(samples []Sample) error {
	for i, s := range samples {
		if len(s.X) != kb.Config.Dim {
			return fmt.Errorf("%w: sample %d has %d features, want %d", ErrInvalid, i, len(s.X), kb.Config.Dim)
		}
	}
	return nil
}

func (kb *KB) check(samples []Sample) error {
	if err := kb.checkX(samples); err != nil {
		return err
	}
	for i, s := range samples {
		if s.Y < 0 || s.Y >= kb.Config.Classes {
			return fmt.Errorf("%w: sample %d is of class %d of %d", ErrInvalid, i, s.Y, kb.Config.Classes)
		}
		if kb.Config.Method == ByAttribute && s.Attr == "" {
			return fmt.Errorf("%w: sample %d has no task attribute", ErrInvalid, i)
		}
	}
	return nil
}

// Learn adds labelled samples to the knowledge base: samples of a task it
// knows retrain that task's model on all of the task's samples, samples of
// new tasks make new tasks and models; the other tasks' models are not
// touched (nothing they learnt is forgotten). It returns the IDs of the
// tasks trained. By cluster, the samples a task's clusters explain join
// that task, the others are clustered into new tasks.
func (kb *KB) Learn(ctx context.Context, samples []Sample) ([]string, error) {
	return kb.learn(ctx, samples, false)
}

// Update learns from all the samples a job has (its Dataset's and the
// labelled ones), as a knowledge base decoded without its samples does at
// each training: each task's samples become those Update groups to it; a
// task with as many samples as its model learnt from keeps its model,
// the others and new tasks are trained. It returns the IDs of the tasks
// trained.
func (kb *KB) Update(ctx context.Context, samples []Sample) ([]string, error) {
	return kb.learn(ctx, samples, true)
}

func (kb *KB) learn(ctx context.Context, samples []Sample, replace bool) ([]string, error) {
	if len(samples) == 0 {
		return nil, nil
	}
	if err := kb.check(samples); err != nil {
		return nil, err
	}
	groups := map[string][]Sample{}
	if kb.Config.Method == ByAttribute {
		for _, s := range samples {
			groups["attr:"+s.Attr] = append(groups["attr:"+s.Attr], s)
		}
		// A new attribute's samples get clusters of their own in the
		// recognition mixture, which answers the windows of attributes
		// the knowledge base has not seen with the nearest task's model.
		for _, id := range slices.Sorted(maps.Keys(groups)) {
			if kb.task(id) != nil {
				continue
			}
			ch, err := kb.cluster(groups[id], 1, 3)
			if err != nil {
				return nil, err
			}
			kb.addTasks(ch, len(groups[id]), func(int) *Task { return &Task{ID: id, Attr: id[len("attr:"):]} })
		}
	} else {
		var err error
		if groups, err = kb.groupByCluster(samples); err != nil {
			return nil, err
		}
	}
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		t := kb.task(id)
		if !replace {
			kb.data[id] = append(kb.data[id], groups[id]...)
		} else {
			kb.data[id] = groups[id]
			if t.Model != nil && t.Total == len(groups[id]) {
				continue // nothing new for it
			}
		}
		if err := kb.train(ctx, t); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := kb.setThreshold(); err != nil {
		return nil, err
	}
	if err := kb.Mixture.Prepare(); err != nil {
		return nil, err
	}
	return ids, nil
}

func (kb *KB) task(id string) *Task {
	for _, t := range kb.Tasks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// groupByCluster assigns samples to the tasks whose clusters explain them
// (windows of the samples in their order, as a source sends them) and
// clusters the rest into new tasks, whose components join the mixture.
func (kb *KB) groupByCluster(samples []Sample) (map[string][]Sample, error) {
	groups := map[string][]Sample{}
	var rest []Sample
	var nearest []int
	if kb.Mixture == nil {
		rest = samples
	} else {
		w := kb.Config.Window
		for lo := 0; lo < len(samples); lo += w {
			win := samples[lo:min(lo+w, len(samples))]
			task, unseen, err := kb.allocateWindow(win)
			if err != nil {
				return nil, err
			}
			if unseen {
				rest = append(rest, win...)
				for range win {
					nearest = append(nearest, task)
				}
				continue
			}
			id := kb.Tasks[task].ID
			groups[id] = append(groups[id], win...)
		}
	}
	if len(rest) == 0 {
		return groups, nil
	}
	if kb.Mixture != nil && len(rest) < kb.Config.MinTaskSamples {
		// Too few to be a task: the stragglers join their nearest tasks.
		for i, s := range rest {
			id := kb.Tasks[nearest[i]].ID
			groups[id] = append(groups[id], s)
		}
		return groups, nil
	}
	ch, err := kb.cluster(rest, 1, min(kb.Config.MaxTasks, len(rest)))
	if err != nil {
		return nil, err
	}
	first := len(kb.Tasks)
	kb.addTasks(ch, len(rest), func(c int) *Task { return &Task{ID: fmt.Sprintf("cluster:%d", first+c)} })
	for i, s := range rest {
		id := fmt.Sprintf("cluster:%d", first+ch.Labels[i])
		groups[id] = append(groups[id], s)
	}
	return groups, nil
}

// cluster fits Gaussian mixtures of kmin to kmax clusters to samples'
// features and keeps the one of the least ICL.
func (kb *KB) cluster(samples []Sample, kmin, kmax int) (*cluster.MixtureChoice, error) {
	dim := kb.Config.Dim
	x := make([]float32, 0, len(samples)*dim)
	for _, s := range samples {
		x = append(x, s.X...)
	}
	return cluster.ChooseMixture(x, dim, kmin, min(kmax, len(samples)), cluster.MixtureOptions{
		Options: cluster.Options{Seed: kb.Config.Seed}, Criterion: cluster.CriterionICL})
}

// addTasks adds ch's clusters, fitted to n samples, to the recognition
// mixture: cluster c belongs to the task newTask(c) returns, a task that
// is added to the knowledge base unless it is already the last one added
// (by attribute, all of one attribute's clusters are one task). The
// weights of the mixture are each cluster's share of all the samples it
// has seen.
func (kb *KB) addTasks(ch *cluster.MixtureChoice, n int, newTask func(c int) *Task) {
	if kb.Mixture == nil {
		kb.Mixture = &cluster.Mixture{Dim: kb.Config.Dim}
	}
	total := float64(kb.mixed + n)
	for i := range kb.Mixture.Weights {
		kb.Mixture.Weights[i] *= float64(kb.mixed) / total
	}
	kb.mixed += n
	for c := range ch.Mixture.K() {
		t := newTask(c)
		if last := len(kb.Tasks) - 1; last < 0 || kb.Tasks[last].ID != t.ID {
			kb.Tasks = append(kb.Tasks, t)
		}
		owner := len(kb.Tasks) - 1
		kb.Tasks[owner].Components = append(kb.Tasks[owner].Components, kb.Mixture.K())
		kb.Owner = append(kb.Owner, owner)
		kb.Mixture.Weights = append(kb.Mixture.Weights, ch.Mixture.Weights[c]*float64(n)/total)
		kb.Mixture.Means = append(kb.Mixture.Means, ch.Mixture.Means[c])
		kb.Mixture.Covs = append(kb.Mixture.Covs, ch.Mixture.Covs[c])
	}
	kb.Mixture.Reset()
}

// train fits a task's model on its samples but the last HoldOut share,
// on which its accuracy is measured (as the job's eval set measures it).
func (kb *KB) train(ctx context.Context, t *Task) error {
	data := kb.data[t.ID]
	cfg := kb.Config
	fit := len(data) - int(cfg.HoldOut*float64(len(data)))
	if fit < 1 {
		fit = len(data)
	}
	m, err := ml.NewMLP(cfg.Dim, cfg.Hidden, cfg.Classes, cfg.Seed+1)
	if err != nil {
		return err
	}
	x, y := matrix(data[:fit])
	if err := m.Fit(ctx, x, y, ml.FitOptions{Epochs: cfg.Epochs, BatchSize: cfg.BatchSize, LearningRate: cfg.LearningRate,
		Optimizer: ml.Adam, Seed: cfg.Seed + 1}); err != nil {
		return err
	}
	t.Accuracy, t.Precision = math.NaN(), math.NaN()
	if fit < len(data) {
		x, y := matrix(data[fit:])
		ev, err := ml.Evaluate(m, x, y)
		if err != nil {
			return err
		}
		t.Accuracy, t.Precision = ev.Accuracy, ev.Confusion.Micro().Precision
	}
	t.Model, t.Samples, t.Total = m, fit, len(data)
	return nil
}

func matrix(rows []Sample) ([]float32, []int) {
	x := make([]float32, 0, len(rows)*len(rows[0].X))
	y := make([]int, len(rows))
	for i, s := range rows {
		x = append(x, s.X...)
		y[i] = s.Y
	}
	return x, y
}

// setThreshold sets the unseen test's threshold from the windows of the
// samples the knowledge base learnt from.
func (kb *KB) setThreshold() error {
	var means []float64
	for _, t := range kb.Tasks {
		data := kb.data[t.ID]
		w := kb.Config.Window
		for lo := 0; lo+w <= len(data); lo += w {
			m, err := kb.meanLogDensity(data[lo : lo+w])
			if err != nil {
				return err
			}
			means = append(means, m)
		}
	}
	if len(means) == 0 {
		kb.Threshold = math.Inf(-1)
		return nil
	}
	sort.Float64s(means)
	kb.Threshold = means[int(kb.Config.UnseenQuantile*float64(len(means)))]
	return nil
}

func (kb *KB) meanLogDensity(win []Sample) (float64, error) {
	var sum float64
	for _, s := range win {
		_, lp, err := kb.Mixture.Predict(s.X)
		if err != nil {
			return 0, err
		}
		sum += lp
	}
	return sum / float64(len(win)), nil
}

// allocateWindow is the task of a window of samples of one source (the
// task most of its samples' clusters belong to), and whether its mean log
// density is below the threshold (no task explains it).
func (kb *KB) allocateWindow(win []Sample) (int, bool, error) {
	js := make([]judged, len(win))
	for i, s := range win {
		var err error
		if js[i], err = kb.judge(s.X); err != nil {
			return 0, false, err
		}
	}
	best, unseen := kb.decide(js)
	return best, unseen, nil
}

// judged is what the recognition mixture says of one sample: the task
// its most likely cluster belongs to, and the mixture's log density there.
type judged struct {
	owner int
	lp    float64
}

func (kb *KB) judge(x []float32) (judged, error) {
	c, lp, err := kb.Mixture.Predict(x)
	if err != nil {
		return judged{}, err
	}
	return judged{owner: kb.Owner[c], lp: lp}, nil
}

// decide is a window's task (the one most of its samples' clusters
// belong to) and whether its mean log density is below the threshold.
func (kb *KB) decide(win []judged) (int, bool) {
	votes := make([]int, len(kb.Tasks))
	var sum float64
	for _, j := range win {
		votes[j.owner]++
		sum += j.lp
	}
	best := 0
	for t, v := range votes {
		if v > votes[best] {
			best = t
		}
	}
	return best, sum/float64(len(win)) < kb.Threshold
}

// Allocate is the task of each sample of a window from one source, and
// whether it is of a task the knowledge base has not seen: by attribute,
// an attribute it has no task of; by cluster, a window its clusters do
// not explain. A sample of an unseen task is allocated to the nearest
// task (the one most of its window's clusters belong to), whose model
// answers it until its own task is learnt. Before the knowledge base has
// learnt anything, every task is -1 and every sample unseen.
func (kb *KB) Allocate(win []Sample) (tasks []int, unseen []bool, err error) {
	if err := kb.checkX(win); err != nil {
		return nil, nil, err
	}
	tasks, unseen = make([]int, len(win)), make([]bool, len(win))
	if kb.Mixture == nil || len(win) == 0 {
		for i := range win {
			tasks[i], unseen[i] = -1, true
		}
		return tasks, unseen, nil
	}
	near, u, err := kb.allocateWindow(win)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range win {
		tasks[i], unseen[i] = near, u
		if kb.Config.Method == ByAttribute {
			if t := kb.task("attr:" + s.Attr); t != nil {
				tasks[i], unseen[i] = slices.Index(kb.Tasks, t), false
			} else {
				unseen[i] = true
			}
		}
	}
	return tasks, unseen, nil
}

// Predict answers a window of samples from one source with their tasks'
// models: each sample's class (-1 before the knowledge base has learnt
// anything) and whether it is of an unseen task, answered by the nearest
// task's model.
func (kb *KB) Predict(win []Sample) (classes []int, unseen []bool, err error) {
	tasks, unseen, err := kb.Allocate(win)
	if err != nil {
		return nil, nil, err
	}
	classes = make([]int, len(win))
	for i, s := range win {
		if tasks[i] < 0 {
			classes[i] = -1
			continue
		}
		p, err := kb.Tasks[tasks[i]].Model.Predict(s.X)
		if err != nil {
			return nil, nil, err
		}
		classes[i] = p[0]
	}
	return classes, unseen, nil
}
