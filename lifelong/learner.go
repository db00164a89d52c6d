package lifelong

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
)

// ParseSample parses one line of a lifelong job's Dataset:
// "label,attribute,f1,f2,..." (the attribute may be empty when the job
// defines tasks by clustering). ok is false for a blank line and for one
// that is not a non-negative whole label, an attribute and finite
// numbers.
func ParseSample(line []byte) (s Sample, ok bool) {
	line = bytes.TrimSpace(line)
	fields := bytes.Split(line, []byte{','})
	if len(fields) < 3 {
		return Sample{}, false
	}
	y, err := strconv.Atoi(string(bytes.TrimSpace(fields[0])))
	if err != nil || y < 0 {
		return Sample{}, false
	}
	s = Sample{Y: y, Attr: string(bytes.TrimSpace(fields[1])), X: make([]float32, 0, len(fields)-2)}
	for _, f := range fields[2:] {
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(f)), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Sample{}, false
		}
		s.X = append(s.X, float32(v))
	}
	return s, true
}

// FormatSample is the Dataset line of s (ParseSample's inverse).
func FormatSample(s Sample) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(s.Y))
	b.WriteByte(',')
	b.WriteString(s.Attr)
	for _, v := range s.X {
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	return b.String()
}

// Columns says how a Dataset's lines are read: by position ("label,
// attribute,features...", the zero Columns), or by the names the job gives
// its columns in the train template's env, as its csv file's header names
// them: label (the class column), attributes (the task's columns,
// comma-separated; a sample's attribute is their values joined by "|"),
// features (comma-separated; default every other column).
type Columns struct {
	Label      string
	Attributes []string
	Features   []string
}

// ColumnsOf reads Columns from a template's env.
func ColumnsOf(params map[string]string) Columns {
	split := func(v string) []string {
		var out []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	return Columns{Label: strings.TrimSpace(params["label"]), Attributes: split(params["attributes"]), Features: split(params["features"])}
}

// Named says whether the job names its columns.
func (c Columns) Named() bool { return c.Label != "" || len(c.Attributes) > 0 || len(c.Features) > 0 }

// Parser reads the lines of a Dataset whose header is header: an error
// names a column the header does not have.
func (c Columns) Parser(header []string) (func(line []byte) (Sample, bool), error) {
	parse, _, err := c.parser(header)
	return parse, err
}

// parser is Parser, with the names of the columns a sample is made of:
// the label's, the attributes', the features'.
func (c Columns) parser(header []string) (func(line []byte) (Sample, bool), []string, error) {
	index := map[string]int{}
	for i, h := range header {
		index[h] = i
	}
	find := func(what, name string) (int, error) {
		i, ok := index[name]
		if !ok {
			return 0, fmt.Errorf("lifelong: the %s column %q is not in the Dataset's header %q", what, name, strings.Join(header, ","))
		}
		return i, nil
	}
	if c.Label == "" {
		return nil, nil, errors.New("lifelong: the job names its columns but not its label column (env label)")
	}
	label, err := find("label", c.Label)
	if err != nil {
		return nil, nil, err
	}
	var attrs, feats []int
	used := map[int]bool{label: true}
	for _, a := range c.Attributes {
		i, err := find("attribute", a)
		if err != nil {
			return nil, nil, err
		}
		attrs, used[i] = append(attrs, i), true
	}
	if len(c.Features) > 0 {
		for _, f := range c.Features {
			i, err := find("feature", f)
			if err != nil {
				return nil, nil, err
			}
			feats = append(feats, i)
		}
	} else {
		for i := range header {
			if !used[i] {
				feats = append(feats, i)
			}
		}
	}
	if len(feats) == 0 {
		return nil, nil, errors.New("lifelong: the Dataset has no feature column")
	}
	names := []string{header[label]}
	for _, i := range append(slices.Clip(attrs), feats...) {
		names = append(names, header[i])
	}
	return func(line []byte) (Sample, bool) {
		fields := strings.Split(string(bytes.TrimSpace(line)), ",")
		if len(fields) != len(header) {
			return Sample{}, false
		}
		y, err := strconv.Atoi(strings.TrimSpace(fields[label]))
		if err != nil || y < 0 {
			return Sample{}, false
		}
		vals := make([]string, len(attrs))
		for k, i := range attrs {
			vals[k] = strings.TrimSpace(fields[i])
		}
		s := Sample{Y: y, Attr: strings.Join(vals, "|"), X: make([]float32, len(feats))}
		for k, i := range feats {
			v, err := strconv.ParseFloat(strings.TrimSpace(fields[i]), 32)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return Sample{}, false
			}
			s.X[k] = float32(v)
		}
		return s, true
	}, names, nil
}

// learner is a lifelong job's: its models are knowledge bases, trained on
// the node of the job's Dataset from the Dataset's samples (their train
// share) and the labelled examples of unseen tasks.
type learner struct {
	env       paradigm.Env
	namespace string
	dataset   string
	trainProb float64
	cfg       Config // Dim and Classes from the data when 0
	cols      Columns
}

var _ incremental.Learner = (*learner)(nil)

// reader reads the job's Dataset lines: its parser, and the names of a
// sample's columns (label, attributes, features) with the number of
// attribute columns; names is nil for a Dataset read by position.
func (l *learner) reader() (parse func([]byte) (Sample, bool), names []string, attrs int, err error) {
	if !l.cols.Named() {
		return ParseSample, nil, 1, nil
	}
	cs, ok := l.env.Data.(paradigm.Columns)
	if !ok {
		return nil, nil, 0, fmt.Errorf("lifelong: Dataset %s's columns cannot be read here: place the job's train and eval "+
			"templates on its node", l.dataset)
	}
	header, err := cs.Columns(l.namespace, l.dataset)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("lifelong: the job names its Dataset's columns: %w (a csv Dataset's first line names them)", err)
	}
	parse, names, err = l.cols.parser(header)
	return parse, names, len(l.cols.Attributes), err
}

// datasetSamples reads the Dataset's samples of the train or the eval
// share; bad lines are counted.
func (l *learner) datasetSamples(train bool) (out []Sample, bad int, err error) {
	parse, _, _, err := l.reader()
	if err != nil {
		return nil, 0, err
	}
	return l.readSamples(parse, train)
}

// readSamples reads the Dataset's train or eval share with parse.
func (l *learner) readSamples(parse func([]byte) (Sample, bool), train bool) (out []Sample, bad int, err error) {
	err = l.env.Data.Samples(l.namespace, l.dataset, 0, func(i uint64, line []byte) error {
		s, ok := parse(line)
		if !ok {
			if len(bytes.TrimSpace(line)) > 0 {
				bad++
			}
			return nil
		}
		if incremental.InTrainSet(fmt.Sprintf("dataset/%d", i), l.trainProb) == train {
			out = append(out, s)
		}
		return nil
	})
	if errors.Is(err, paradigm.ErrNotHere) {
		return nil, 0, fmt.Errorf("lifelong: Dataset %s is read on its node, where its samples stay: place the job's train and eval "+
			"templates there (spec.trainSpec.template.spec.nodeName, spec.evalSpec.template.spec.nodeName)", l.dataset)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("lifelong: Dataset %s: %w", l.dataset, err)
	}
	return out, bad, nil
}

// labelled turns a job's labelled examples into samples.
func labelled(examples []incremental.Example) ([]Sample, error) {
	out := make([]Sample, 0, len(examples))
	for _, e := range examples {
		x, err := e.Values()
		if err != nil {
			return nil, fmt.Errorf("lifelong: example %s: %w", e.Key, err)
		}
		out = append(out, Sample{X: x, Y: e.Label, Attr: e.Attr})
	}
	return out, nil
}

// base decodes the serving knowledge base, or makes an empty one shaped
// by the samples.
func (l *learner) base(raw []byte, samples []Sample) (*KB, error) {
	if raw != nil {
		return Unmarshal(raw)
	}
	cfg := l.cfg
	if len(samples) == 0 {
		return nil, fmt.Errorf("lifelong: no samples to learn from")
	}
	if cfg.Dim == 0 {
		cfg.Dim = len(samples[0].X)
	}
	if cfg.Classes == 0 {
		cfg.Classes = 2
		for _, s := range samples {
			cfg.Classes = max(cfg.Classes, s.Y+1)
		}
	}
	return New(cfg)
}

// Learn updates the serving knowledge base (a new one the first time)
// with every sample the job has: the tasks with new samples are trained,
// new tasks made, the others keep their models.
func (l *learner) Learn(ctx context.Context, base []byte, set incremental.TrainSet, _ incremental.Fit) ([]byte, error) {
	samples, bad, err := l.datasetSamples(true)
	if err != nil {
		return nil, err
	}
	if bad > 0 {
		l.env.Logger().Warn("lifelong: Dataset lines that do not parse skipped", "dataset", l.dataset, "lines", bad)
	}
	more, err := labelled(append(append([]incremental.Example(nil), set.Old...), set.New...))
	if err != nil {
		return nil, err
	}
	samples = append(samples, more...)
	kb, err := l.base(base, samples)
	if err != nil {
		return nil, err
	}
	trained, err := kb.Update(ctx, samples)
	if err != nil {
		return nil, err
	}
	l.env.Logger().Info("lifelong: knowledge base trained", "samples", len(samples), "tasks", len(kb.Tasks), "trained", trained)
	return kb.MarshalBinary()
}

// Score measures a knowledge base on the Dataset's eval share and the
// labelled examples of the eval set, in windows as they come: accuracy,
// precision and recall per class, and the share of samples it calls
// unseen.
func (l *learner) Score(model []byte, _ paradigm.ModelInfo, examples []incremental.Example) (incremental.Metrics, error) {
	kb, err := Unmarshal(model)
	if err != nil {
		return nil, err
	}
	samples, _, err := l.datasetSamples(false)
	if err != nil {
		return nil, err
	}
	more, err := labelled(examples)
	if err != nil {
		return nil, err
	}
	samples = append(samples, more...)
	if len(samples) == 0 {
		return nil, errors.New("lifelong: nothing to evaluate on: the Dataset's eval share and the eval set are empty")
	}
	var got, want []int
	unseen := 0
	for lo := 0; lo < len(samples); lo += kb.Config.Window {
		win := samples[lo:min(lo+kb.Config.Window, len(samples))]
		classes, u, err := kb.Predict(win)
		if err != nil {
			return nil, err
		}
		for i, c := range classes {
			if u[i] {
				unseen++
			}
			got, want = append(got, max(c, 0)), append(want, win[i].Y)
		}
	}
	conf, err := ml.NewConfusion(want, got, kb.Config.Classes)
	if err != nil {
		return nil, err
	}
	out := incremental.Metrics{"accuracy": {conf.Accuracy()}, "unseen": {float64(unseen) / float64(len(samples))}}
	for _, s := range conf.PerClass() {
		out["precision"] = append(out["precision"], s.Precision)
		out["recall"] = append(out["recall"], s.Recall)
	}
	return out, nil
}

// ModelFormat is the format of a lifelong job's models, its knowledge
// bases (lifelong/codec.go; docs/WORKERS.md), as MODEL_FORMAT tells an
// external worker.
const ModelFormat = "sedna-kb"

var _ incremental.ExternalData = (*learner)(nil)

// ModelFormat is ModelFormat.
func (*learner) ModelFormat() string { return ModelFormat }

// WriteSet writes the data set of an external train or eval worker as a
// CSV file at dir/stem.csv: a header, then a line per sample of the
// Dataset's train (or eval) share, as the built-in learner reads them,
// and of the labelled examples. Its columns are the label, the
// attributes, then the features: the Dataset's names for them when the
// job names its columns, else label, attribute, x1, x2, ...
func (l *learner) WriteSet(dir, stem string, train bool, examples []incremental.Example) (string, error) {
	parse, names, attrs, err := l.reader()
	if err != nil {
		return "", err
	}
	samples, _, err := l.readSamples(parse, train)
	if err != nil {
		return "", err
	}
	more, err := labelled(examples)
	if err != nil {
		return "", err
	}
	samples = append(samples, more...)
	if names == nil {
		names = []string{"label", "attribute"}
		if len(samples) > 0 {
			for i := range samples[0].X {
				names = append(names, "x"+strconv.Itoa(i+1))
			}
		}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.Write(names); err != nil {
		return "", err
	}
	row := make([]string, 0, len(names))
	for _, s := range samples {
		if 1+attrs+len(s.X) != len(names) {
			return "", fmt.Errorf("lifelong: a sample of %d features, the data set's %d", len(s.X), len(names)-1-attrs)
		}
		row = append(row[:0], strconv.Itoa(s.Y))
		if attrs > 0 {
			vals := strings.Split(s.Attr, "|")
			if len(vals) != attrs { // an attribute a device sent whole
				vals = append([]string{s.Attr}, make([]string, attrs-1)...)
			}
			row = append(row, vals...)
		}
		for _, v := range s.X {
			row = append(row, strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		if err := w.Write(row); err != nil {
			return "", err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return "", err
	}
	path := filepath.Join(dir, stem+".csv")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

// Fits checks that model is a knowledge base of base's shape.
func (l *learner) Fits(base, model []byte, _ paradigm.ModelInfo) error {
	m, err := Unmarshal(model)
	if err != nil {
		return err
	}
	if base == nil {
		return nil
	}
	b, err := Unmarshal(base)
	if err != nil {
		return err
	}
	if m.Config.Dim != b.Config.Dim || m.Config.Classes != b.Config.Classes {
		return fmt.Errorf("it maps %d features to %d classes; the serving one %d to %d", m.Config.Dim, m.Config.Classes, b.Config.Dim, b.Config.Classes)
	}
	return nil
}

// Serve loads a knowledge base for the inference worker.
func (l *learner) Serve(model []byte, info paradigm.ModelInfo) (incremental.Served, error) {
	if info.Format == api.FormatONNX {
		return nil, errors.New("lifelong: a lifelong job's model is its knowledge base (tasks and a model each, learnt here): an ONNX Model cannot be one")
	}
	kb, err := Unmarshal(model)
	if err != nil {
		return nil, err
	}
	if len(kb.Tasks) == 0 {
		return nil, errors.New("lifelong: a knowledge base of no tasks")
	}
	return &served{kb: kb, streams: map[string][]judged{}}, nil
}

// maxStreams bounds the streams whose recent samples a served knowledge
// base keeps.
const maxStreams = 10_000

// served answers samples with a knowledge base: each with its task's
// model, judged with its stream's recent samples (a window). What the
// mixture said of a stream's earlier samples is kept, so a sample costs
// one density evaluation, not a window's.
type served struct {
	kb      *KB
	streams map[string][]judged
}

func (s *served) Answer(req jointinference.Request, x []float32, res *jointinference.Result) (plugins.Batch, bool, float64, error) {
	kb := s.kb
	if len(x) != kb.Config.Dim {
		return plugins.Batch{}, false, 0, fmt.Errorf("a sample of %d values does not fit a knowledge base of %d features", len(x), kb.Config.Dim)
	}
	j, err := kb.judge(x)
	if err != nil {
		return plugins.Batch{}, false, 0, err
	}
	win, ok := s.streams[req.Stream]
	if !ok && len(s.streams) >= maxStreams {
		for k := range s.streams { // forget one stream to make room
			delete(s.streams, k)
			break
		}
	}
	if len(win) == kb.Config.Window {
		win = append(win[:0], win[1:]...)
	}
	win = append(win, j)
	s.streams[req.Stream] = win
	// As Allocate judges the window's last sample.
	task, unseen := kb.decide(win)
	if kb.Config.Method == ByAttribute {
		if t := kb.task("attr:" + req.Attr); t != nil {
			task, unseen = slices.Index(kb.Tasks, t), false
		} else {
			unseen = true
		}
	}
	t := kb.Tasks[task]
	probs, err := t.Model.PredictProba(x)
	if err != nil {
		return plugins.Batch{}, false, 0, err
	}
	best := 0
	for i := range probs {
		if probs[i] > probs[best] {
			best = i
		}
	}
	res.Class, res.Score, res.Probs, res.Task, res.Unseen = best, probs[best], probs, t.ID, unseen
	return plugins.Batch{}, unseen, 1, nil
}

var _ incremental.Describer = (*learner)(nil)

// Describe is the knowledge base's part of the job's status, in Sedna's
// shape ({"knowledgeBase": ...}): each task's model with its precision
// (micro-averaged, on its held-out samples), its training samples and accuracy;
// the classes; the unseen samples labelled and waiting.
func (l *learner) Describe(model []byte, labelled, waiting int64) (json.RawMessage, error) {
	kb, err := Unmarshal(model)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		KnowledgeBase api.KnowledgeBase `json:"knowledgeBase"`
	}{Status(kb, labelled, waiting)})
}

// Status describes a knowledge base as a job's status shows it.
func Status(kb *KB, labelled, waiting int64) api.KnowledgeBase {
	out := api.KnowledgeBase{AIModels: api.AIModels{NumberOfAIModels: len(kb.Tasks), ListOfAIModels: []api.AIModel{}},
		AIClasses: api.AIClasses{NumberOfAIClasses: kb.Config.Classes},
		Samples:   api.KBSamples{NumberOfLabeledUnseenSample: labelled, NumberOfUnseenSample: waiting}}
	for c := range kb.Config.Classes {
		out.AIClasses.ListOfAIClasses = append(out.AIClasses.ListOfAIClasses, strconv.Itoa(c))
	}
	for _, t := range kb.Tasks {
		m := api.AIModel{ModelID: t.ID, NumberOfTrainSamples: t.Samples, Attribute: t.Attr}
		if !math.IsNaN(t.Accuracy) {
			a := t.Accuracy
			m.Accuracy = &a
		}
		if !math.IsNaN(t.Precision) {
			m.AveragePrecision = t.Precision
		}
		out.AIModels.ListOfAIModels = append(out.AIModels.ListOfAIModels, m)
	}
	return out
}
