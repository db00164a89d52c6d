package api

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Admission is what validation needs to know beyond the document.
type Admission struct {
	// MinerParams returns the parameter keys of the hard-example miner
	// plugin called name, or ok=false when no such miner is loaded.
	MinerParams func(name string) (keys []string, ok bool)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,252}$`)

type checker struct {
	errs FieldErrors
	adm  Admission
}

func (c *checker) fail(field, format string, args ...any) {
	c.errs = append(c.errs, FieldError{field, fmt.Sprintf(format, args...)})
}

func (c *checker) name(field, v string) {
	switch {
	case v == "":
		c.fail(field, "required")
	case !nameRE.MatchString(v):
		c.fail(field, "%q is not a valid name (letters, digits, '-', '_', '.'; at most 253; not starting with '.')", v)
	}
}

// Validate checks the fields Sedna-Go uses, and only those, returning every
// problem with its field path. References to other resources and nodes are
// not checked here: they may resolve later (the cloud manager marks the job
// Pending until they do).
func Validate(r *Resource, adm Admission) error {
	c := &checker{adm: adm}
	c.name("metadata.name", r.Metadata.Name)
	c.name("metadata.namespace", r.Metadata.Namespace)
	switch s := r.Spec.(type) {
	case *DatasetSpec:
		if s.URL == "" {
			c.fail("spec.url", "required")
		}
		if s.Format != "txt" && s.Format != "csv" {
			c.fail("spec.format", "%q: want txt or csv", s.Format)
		}
		c.name("spec.nodeName", s.NodeName)
	case *ModelSpec:
		if s.URL == "" {
			c.fail("spec.url", "required")
		}
		for i, m := range s.Metrics {
			if m.Key == "" {
				c.fail(fmt.Sprintf("spec.metrics[%d].key", i), "required")
			}
		}
		c.modelIO(s)
	case *JointInferenceServiceSpec:
		c.name("spec.edgeWorker.model.name", s.EdgeWorker.Model.Name)
		c.name("spec.cloudWorker.model.name", s.CloudWorker.Model.Name)
		c.mining("spec.edgeWorker.hardExampleMining", &s.EdgeWorker.HardExampleMining, true)
		c.template("spec.edgeWorker.template", s.EdgeWorker.Template)
		c.template("spec.cloudWorker.template", s.CloudWorker.Template)
	case *IncrementalLearningJobSpec:
		c.dataset("spec.dataset", s.Dataset)
		c.name("spec.initialModel.name", s.InitialModel.Name)
		c.template("spec.trainSpec.template", s.TrainSpec.Template)
		c.trigger("spec.trainSpec.trigger", &s.TrainSpec.Trigger)
		c.template("spec.evalSpec.template", s.EvalSpec.Template)
		c.name("spec.deploySpec.model.name", s.DeploySpec.Model.Name)
		if s.DeploySpec.Model.PollPeriodSeconds < 0 {
			c.fail("spec.deploySpec.model.pollPeriodSeconds", "negative")
		}
		if s.DeploySpec.Trigger != nil {
			c.trigger("spec.deploySpec.trigger", s.DeploySpec.Trigger)
		}
		if s.DeploySpec.HardExampleMining != nil {
			c.mining("spec.deploySpec.hardExampleMining", s.DeploySpec.HardExampleMining, false)
		}
		c.template("spec.deploySpec.template", s.DeploySpec.Template)
		if sc := s.StopCondition; sc != nil {
			if sc.MaxCycles < 0 {
				c.fail("spec.stopCondition.maxCycles", "negative")
			}
			if sc.Target != nil {
				c.condition("spec.stopCondition.target", sc.Target)
			}
			if sc.MaxCycles == 0 && sc.Target == nil {
				c.fail("spec.stopCondition", "give maxCycles, a target, or both (without a stopCondition the job runs until deleted)")
			}
		}
	case *FederatedLearningJobSpec:
		c.template("spec.aggregationWorker.template", s.AggregationWorker.Template)
		if s.AggregationWorker.Model.Name != "" {
			c.name("spec.aggregationWorker.model.name", s.AggregationWorker.Model.Name)
		}
		if s.PretrainedModel.Name != "" {
			c.name("spec.pretrainedModel.name", s.PretrainedModel.Name)
		}
		if len(s.TrainingWorkers) == 0 {
			c.fail("spec.trainingWorkers", "at least one training worker is required")
		}
		for i, w := range s.TrainingWorkers {
			p := fmt.Sprintf("spec.trainingWorkers[%d]", i)
			c.name(p+".dataset.name", w.Dataset.Name)
			c.template(p+".template", w.Template)
		}
	case *LifelongLearningJobSpec:
		c.dataset("spec.dataset", s.Dataset)
		c.template("spec.trainSpec.template", s.TrainSpec.Template)
		c.trigger("spec.trainSpec.trigger", &s.TrainSpec.Trigger)
		c.template("spec.evalSpec.template", s.EvalSpec.Template)
		c.template("spec.deploySpec.template", s.DeploySpec.Template)
	default:
		c.fail("kind", "unknown kind %q", r.Kind)
	}
	if len(c.errs) > 0 {
		return fmt.Errorf("%w: %s %s: %w", ErrInvalid, r.Kind, r.Metadata.Name, c.errs)
	}
	return nil
}

// modelIO checks a Model's format and what an ONNX Model declares.
func (c *checker) modelIO(s *ModelSpec) {
	if s.Format != "" && !formatWord.MatchString(s.Format) {
		c.fail("spec.format", "%q: a lower-case word (%s, %s, or a format an external worker serves)", s.Format, FormatONNX, FormatSedna)
	}
	if !s.Declared() {
		return
	}
	if s.Format != FormatONNX {
		c.fail("spec.format", "%q: inputs, outputs, preprocess and postprocess describe an ONNX graph: set format %s", s.Format, FormatONNX)
		return
	}
	for field, ts := range map[string][]TensorSpec{"spec.inputs": s.Inputs, "spec.outputs": s.Outputs} {
		if len(ts) > 1 {
			c.fail(field, "%d entries: a classifier is fed one input and read from one output (name the one to use)", len(ts))
		}
		for i, t := range ts {
			if len(t.Shape) == 1 || len(t.Shape) > 8 {
				c.fail(fmt.Sprintf("%s[%d].shape", field, i), "%v: the batch axis, then 1 to 7 dimensions of a sample", t.Shape)
			}
			for j, d := range t.Shape {
				if d < 1 && (j > 0 || d < -1) {
					c.fail(fmt.Sprintf("%s[%d].shape", field, i), "%v: a sample's dimensions are at least 1 (only the batch axis, first, may be -1)", t.Shape)
					break
				}
			}
		}
	}
	if p := s.Preprocess; p != nil {
		if p.Layout != "" && p.Layout != "NCHW" && p.Layout != "NHWC" {
			c.fail("spec.preprocess.layout", "%q: want NCHW or NHWC", p.Layout)
		}
		if math.IsNaN(float64(p.Scale)) || math.IsInf(float64(p.Scale), 0) {
			c.fail("spec.preprocess.scale", "not finite")
		}
		for _, v := range p.Std {
			if v == 0 || math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				c.fail("spec.preprocess.std", "%v: each finite and not 0", p.Std)
				break
			}
		}
		for _, v := range p.Mean {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				c.fail("spec.preprocess.mean", "%v: each finite", p.Mean)
				break
			}
		}
	}
	if p := s.Postprocess; p != "" && p != "softmax" && p != "none" {
		c.fail("spec.postprocess", "%q: want softmax (the output is logits) or none (probabilities)", p)
	}
}

var formatWord = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

func (c *checker) dataset(field string, d DatasetRef) {
	c.name(field+".name", d.Name)
	if d.TrainProb < 0 || d.TrainProb > 1 {
		c.fail(field+".trainProb", "%v: want a share in [0, 1] (0 means the default, 0.8)", d.TrainProb)
	}
}

func (c *checker) mining(field string, m *HardExampleMining, required bool) {
	if m.Name == "" {
		if required {
			c.fail(field+".name", "required")
		}
		return
	}
	var keys []string
	if c.adm.MinerParams != nil {
		var ok bool
		if keys, ok = c.adm.MinerParams(m.Name); !ok {
			c.fail(field+".name", "unknown hard-example miner %q (see `sedna plugin list`)", m.Name)
			return
		}
	}
	for i, p := range m.Parameters {
		f := fmt.Sprintf("%s.parameters[%d].key", field, i)
		if p.Key == "" {
			c.fail(f, "required")
			continue
		}
		if c.adm.MinerParams != nil && !contains(keys, p.Key) {
			c.fail(f, "%s has no parameter %q (it has: %s)", m.Name, p.Key, strings.Join(keys, ", "))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *checker) trigger(field string, t *Trigger) {
	if t.CheckPeriodSeconds < 0 {
		c.fail(field+".checkPeriodSeconds", "negative")
	}
	if t.Timer != nil {
		_, ok1 := clock(t.Timer.Start, false)
		if !ok1 {
			c.fail(field+".timer.start", "%q: want HH:MM, 00:00 to 23:59", t.Timer.Start)
		}
		_, ok2 := clock(t.Timer.End, true)
		if !ok2 {
			c.fail(field+".timer.end", "%q: want HH:MM, 00:00 to 24:00", t.Timer.End)
		}
		// A start after the end wraps around midnight ("22:30" to
		// "05:00"); start equal to end is that one minute, as in Sedna.
	}
	if t.Condition != nil {
		c.condition(field+".condition", t.Condition)
	}
}

func (c *checker) condition(field string, tc *TriggerCondition) {
	if !contains(Operators, tc.Operator) {
		c.fail(field+".operator", "%q: want one of %s", tc.Operator, strings.Join(Operators, " "))
	}
	if tc.Metric == "" {
		c.fail(field+".metric", "required")
	} else if _, err := ParseMetric(tc.Metric); err != nil {
		c.fail(field+".metric", "%v", err)
	}
}

// clock parses "HH:MM" into minutes after midnight; "24:00" only as an end.
func clock(s string, end bool) (int, bool) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 {
		return 0, false
	}
	if hh == 24 && mm == 0 && end {
		return 24 * 60, true
	}
	if hh > 23 {
		return 0, false
	}
	return hh*60 + mm, true
}

// Minutes parses a timer time ("HH:MM"; "24:00" is the end of the day) into
// minutes after midnight.
func Minutes(s string) (int, bool) { return clock(s, true) }

func (c *checker) template(field string, t PodTemplate) {
	if strings.HasPrefix(t.Spec.NodeName, "$") {
		c.fail(field+".spec.nodeName", "%q is a placeholder: put the node's name", t.Spec.NodeName)
	} else {
		c.name(field+".spec.nodeName", t.Spec.NodeName)
	}
	for i, ct := range t.Spec.Containers {
		p := fmt.Sprintf("%s.spec.containers[%d]", field, i)
		if len(ct.Command) > 0 && strings.TrimSpace(ct.Command[0]) == "" {
			c.fail(p+".command[0]", "empty program")
		}
		for j, e := range ct.Env {
			if e.Name == "" {
				c.fail(fmt.Sprintf("%s.env[%d].name", p, j), "required")
			}
		}
	}
}
