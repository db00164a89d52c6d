package incremental

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// External train and eval workers. A train or eval template with a
// command runs that command once per attempt of its stage, where the
// template places it, as Sedna runs a pod per stage. The attempt's inputs
// are files in a directory made for it, named by the environment Sedna's
// workers read; the command writes its outputs in the directory's "out"
// (docs/WORKERS.md):
//
//	train: BASE_MODEL_URL (the serving model), TRAIN_DATASET_URL (the
//	       examples labelled since the last training), ORIGINAL_DATASET_URL
//	       (the earlier ones, to replay), MODEL_URL (where the new model goes)
//	eval:  MODEL_URLS (the candidate, then the serving model, split by ";"),
//	       TEST_DATASET_URL, RESULT_URL (where the metrics go, as JSON)
//
// A dataset is an index file (Sedna's txt format): a line per example,
// "samples/NAME.npy LABEL", paths relative to the index file, each input a
// NumPy array (uint8 or float32, the shape the device sent). A detection
// example's label is a file instead, a line per object: "xmin ymin xmax
// ymax class". A flavour's learner may write its own data sets and name
// its models' format (ExternalData: a lifelong job's CSV files and
// knowledge bases). Before a job's first model there is no
// BASE_MODEL_URL, and MODEL_URLS names the candidate alone.

// Environment variables of an external train or eval worker, beside those
// of every worker (workers.Environment) and its template's env.
const (
	EnvBaseModel       = "BASE_MODEL_URL"
	EnvModel           = "MODEL_URL"
	EnvModels          = "MODEL_URLS"
	EnvTrainDataset    = "TRAIN_DATASET_URL"
	EnvOriginalDataset = "ORIGINAL_DATASET_URL"
	EnvTestDataset     = "TEST_DATASET_URL"
	EnvResult          = "RESULT_URL"
	// EnvTask is "classification" or "detection".
	EnvTask = "SEDNA_TASK"
	// EnvAttempt is the stage attempt's id.
	EnvAttempt = "SEDNA_ATTEMPT"
)

// Bounds on what an external worker gives back.
const (
	maxExternalModel  = 256 << 20
	maxExternalResult = 1 << 20
)

// ModelMetrics is one model's numbers in an eval worker's result file
// (RESULT_URL): a JSON list of them, one per model of MODEL_URLS, as
// Sedna's eval workers report (format, url, metrics). A metric is a
// number, or a list with one number per class.
type ModelMetrics struct {
	Format  string                     `json:"format,omitempty"`
	URL     string                     `json:"url"`
	Metrics map[string]json.RawMessage `json:"metrics"`
}

// NewModelMetrics gives m as a result's entry for the model at url.
func NewModelMetrics(url string, m Metrics) ModelMetrics {
	out := ModelMetrics{Format: "sedna", URL: url, Metrics: map[string]json.RawMessage{}}
	for name, vs := range m {
		var raw []byte
		if len(vs) == 1 && name != "precision" && name != "recall" && name != "ap" {
			raw, _ = json.Marshal(vs[0])
		} else {
			raw, _ = json.Marshal(vs)
		}
		out.Metrics[name] = raw
	}
	return out
}

// values reads the entry's metrics.
func (mm ModelMetrics) values() (Metrics, error) {
	if len(mm.Metrics) == 0 {
		return nil, fmt.Errorf("no metrics for %s", mm.URL)
	}
	out := Metrics{}
	for name, raw := range mm.Metrics {
		var one float64
		var many []float64
		switch {
		case json.Unmarshal(raw, &one) == nil:
			many = []float64{one}
		case json.Unmarshal(raw, &many) == nil && len(many) > 0:
		default:
			return nil, fmt.Errorf("metric %q of %s: want a number or a list of numbers, got %s", name, mm.URL, trim(raw))
		}
		for _, v := range many {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("metric %q of %s is not a finite number", name, mm.URL)
			}
		}
		out[name] = many
	}
	return out, nil
}

func trim(raw []byte) string {
	if len(raw) > 64 {
		return string(raw[:64]) + "..."
	}
	return string(raw)
}

// external does a work order by running the template's command once;
// learner (the job's) may shape its data sets (ExternalData).
func external(ctx context.Context, cmd *workers.Command, ref topics.JobRef, learner Learner, o workOrder) workResult {
	res := workResult{Attempt: o.Attempt}
	fail := func(err error) workResult { res.Error = err.Error(); return res }
	dir, err := os.MkdirTemp("", "sedna-il-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	role := strings.ToLower(string(o.Stage))
	format := paradigm.FormatOf(o.Base, o.BaseInfo)
	data, shaped := learner.(ExternalData)
	if shaped {
		format = data.ModelFormat()
	}
	// writeSet writes a data set: the learner's, or the engine's index file.
	writeSet := func(stem string, train bool, examples []Example) (string, error) {
		if shaped {
			return data.WriteSet(dir, stem, train, examples)
		}
		path := filepath.Join(dir, stem+".txt")
		return path, WriteSet(path, o.Task, examples)
	}
	env := []string{EnvAttempt + "=" + o.Attempt, EnvTask + "=" + taskName(o.Task),
		"NAMESPACE=" + ref.Namespace, "JOB_NAME=" + ref.Name, "WORKER_NAME=" + role + "-" + o.Attempt, "MODEL_FORMAT=" + format}
	// Before a job's first model (a lifelong job's first training), there
	// is no serving model: no BASE_MODEL_URL, and MODEL_URLS names the
	// candidate alone.
	base, cand := "", filepath.Join(dir, "candidate.model")
	if o.Base != nil {
		base = filepath.Join(dir, "base.model")
		if err := os.WriteFile(base, o.Base, 0o644); err != nil {
			return fail(err)
		}
	}
	switch o.Stage {
	case Train:
		if shaped { // the learner's set holds every example it learns from
			path, err := writeSet("train", true, append(slices.Clip(o.Set.Old), o.Set.New...))
			if err != nil {
				return fail(err)
			}
			env = append(env, EnvTrainDataset+"="+path)
		} else {
			train, err := writeSet("train", true, o.Set.New)
			if err != nil {
				return fail(err)
			}
			original, err := writeSet("original", true, o.Set.Old)
			if err != nil {
				return fail(err)
			}
			env = append(env, EnvTrainDataset+"="+train, EnvOriginalDataset+"="+original)
		}
		if base != "" {
			env = append(env, EnvBaseModel+"="+base)
		}
		env = append(env, EnvModel+"="+filepath.Join(dir, workers.OutDir, "model"))
	case Eval:
		if err := os.WriteFile(cand, o.Candidate, 0o644); err != nil {
			return fail(err)
		}
		path, err := writeSet("eval", false, o.Eval)
		if err != nil {
			return fail(err)
		}
		urls := cand
		if base != "" {
			urls += ";" + base
		}
		env = append(env, EnvModels+"="+urls, EnvTestDataset+"="+path, EnvResult+"="+filepath.Join(dir, workers.OutDir, "result.json"))
	default:
		return fail(errors.New("no work for stage " + string(o.Stage)))
	}
	if _, err := cmd.Run(ctx, dir, env); err != nil {
		return fail(fmt.Errorf("the %s command: %w", role, err))
	}
	switch o.Stage {
	case Train:
		model, err := cmd.Output(dir, "model", maxExternalModel)
		if err != nil {
			return fail(fmt.Errorf("the %s command exited 0 but left no model at %s: %w", role, EnvModel, err))
		}
		// A model of the learning substrate is checked here; one of
		// another format (ONNX) by the learner, which loads it as its
		// Model declares (the cloud's Fits).
		if ml.IsSedna(o.Base) || ml.IsSedna(model) {
			if err := sameShape(o.Base, model); err != nil {
				return fail(fmt.Errorf("the model the %s command wrote: %w", role, err))
			}
		}
		res.Model = model
	case Eval:
		result, err := cmd.Output(dir, "result.json", maxExternalResult)
		if err != nil {
			return fail(fmt.Errorf("the %s command exited 0 but left no result at %s: %w", role, EnvResult, err))
		}
		if res.Eval, res.Base, err = readResult(result, cand, base); err != nil {
			return fail(fmt.Errorf("the result the %s command wrote: %w", role, err))
		}
	}
	return res
}

// sameShape checks that a trained model can stand in for base: a model of
// the project's format with base's inputs and classes.
func sameShape(base, data []byte) error {
	m, err := ml.Unmarshal(data)
	if err != nil {
		return err
	}
	b, err := ml.Unmarshal(base)
	if err != nil {
		return err
	}
	if m.Inputs() != b.Inputs() || m.Classes() != b.Classes() {
		return fmt.Errorf("it takes %d inputs to %d classes; the serving model %d to %d", m.Inputs(), m.Classes(), b.Inputs(), b.Classes())
	}
	return nil
}

// readResult reads an eval worker's result: the metrics of the candidate
// (at cand) and of the serving model (at base; "" when there is none, and
// its metrics are then empty).
func readResult(data []byte, cand, base string) (Metrics, Metrics, error) {
	var list []ModelMetrics
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, nil, fmt.Errorf("want a JSON list of {\"url\", \"metrics\"}: %w", err)
	}
	var got, was Metrics
	for _, mm := range list {
		m, err := mm.values()
		if err != nil {
			return nil, nil, err
		}
		switch mm.URL {
		case cand:
			got = m
		case base:
			if base == "" {
				return nil, nil, fmt.Errorf("metrics for %q, which is not one of %s", mm.URL, EnvModels)
			}
			was = m
		default:
			return nil, nil, fmt.Errorf("metrics for %q, which is not one of %s", mm.URL, EnvModels)
		}
	}
	if base == "" && got != nil {
		return got, Metrics{}, nil
	}
	if got == nil || was == nil {
		return nil, nil, fmt.Errorf("want the metrics of both models of %s (the candidate and the serving model)", EnvModels)
	}
	return got, was, nil
}

func taskName(t jointinference.Task) string {
	if t.Detection {
		return "detection"
	}
	return "classification"
}

// WriteSet writes examples of a job of task as a dataset for an external
// worker: the index file at path, the inputs (and a detection example's
// objects) in a directory "samples" beside it.
func WriteSet(path string, task jointinference.Task, examples []Example) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(filepath.Join(dir, "samples"), 0o755); err != nil {
		return err
	}
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var index bytes.Buffer
	for i, e := range examples {
		name := fmt.Sprintf("samples/%s-%06d", stem, i)
		raw, err := npy(e)
		if err != nil {
			return fmt.Errorf("incremental: example %s: %w", e.Key, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".npy"), raw, 0o644); err != nil {
			return err
		}
		label := strconv.Itoa(e.Label)
		if task.Detection {
			var b bytes.Buffer
			for _, o := range e.Boxes {
				fmt.Fprintf(&b, "%g %g %g %g %d\n", o[0], o[1], o[2], o[3], int(o[5]))
			}
			if err := os.WriteFile(filepath.Join(dir, name+".txt"), b.Bytes(), 0o644); err != nil {
				return err
			}
			label = name + ".txt"
		}
		fmt.Fprintf(&index, "%s.npy %s\n", name, label)
	}
	return os.WriteFile(path, index.Bytes(), 0o644)
}

// ReadSet reads a dataset WriteSet wrote (what an external worker written
// in Go reads at TRAIN_DATASET_URL, say). A label that is not a number is
// a detection example's objects file.
func ReadSet(path string) ([]Example, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	var out []Example
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("incremental: %s line %d: want \"INPUT LABEL\"", path, n)
		}
		data, err := os.ReadFile(filepath.Join(dir, f[0]))
		if err != nil {
			return nil, err
		}
		e, err := fromNPY(data)
		if err != nil {
			return nil, fmt.Errorf("incremental: %s: %w", f[0], err)
		}
		e.Key = f[0]
		if e.Label, err = strconv.Atoi(f[1]); err != nil {
			if e.Boxes, err = readBoxes(filepath.Join(dir, f[1])); err != nil {
				return nil, fmt.Errorf("incremental: %s line %d: %w", path, n, err)
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func readBoxes(path string) ([][6]float32, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	boxes := [][6]float32{}
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("%s: want \"xmin ymin xmax ymax class\", got %q", path, strings.TrimSpace(line))
		}
		var b [6]float32
		for i, s := range f {
			v, err := strconv.ParseFloat(s, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			b[i] = float32(v)
		}
		b[5], b[4] = b[4], 1
		boxes = append(boxes, b)
	}
	return boxes, nil
}

// npy encodes an example's input as a NumPy array file (format 1.0).
func npy(e Example) ([]byte, error) {
	descr, size := "|u1", 1
	switch e.DType {
	case "", jointinference.DTypeU8:
	case jointinference.DTypeF32:
		descr, size = "<f4", 4
	default:
		return nil, fmt.Errorf("unknown dtype %q", e.DType)
	}
	shape := e.Shape
	if len(shape) == 0 {
		shape = []int{len(e.Data) / size}
	}
	n := 1
	dims := make([]string, len(shape))
	for i, d := range shape {
		n *= d
		dims[i] = strconv.Itoa(d)
	}
	if n*size != len(e.Data) {
		return nil, fmt.Errorf("shape %v of %s needs %d bytes, has %d", shape, e.DType, n*size, len(e.Data))
	}
	tuple := strings.Join(dims, ", ")
	if len(dims) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	_ = binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	b.Write(e.Data)
	return b.Bytes(), nil
}

// fromNPY reads a NumPy array file of uint8 or little-endian float32 (C
// order, format 1.0 to 3.0) as an example's input.
func fromNPY(raw []byte) (Example, error) {
	var e Example
	if len(raw) < 10 || string(raw[:6]) != "\x93NUMPY" {
		return e, errors.New("not a NumPy array file")
	}
	var hlen, at int
	switch raw[6] {
	case 1:
		hlen, at = int(binary.LittleEndian.Uint16(raw[8:10])), 10
	case 2, 3:
		if len(raw) < 12 {
			return e, errors.New("a truncated NumPy header")
		}
		hlen, at = int(binary.LittleEndian.Uint32(raw[8:12])), 12
	default:
		return e, fmt.Errorf("NumPy format %d is not known", raw[6])
	}
	if at+hlen > len(raw) {
		return e, errors.New("a truncated NumPy header")
	}
	header := string(raw[at : at+hlen])
	field := func(name string) string {
		i := strings.Index(header, "'"+name+"'")
		if i < 0 {
			return ""
		}
		rest := strings.TrimLeft(header[i+len(name)+2:], " :")
		if strings.HasPrefix(rest, "(") {
			return rest[1:strings.IndexByte(rest, ')')]
		}
		return strings.Trim(strings.SplitN(rest, ",", 2)[0], " '")
	}
	size := 1
	switch d := field("descr"); d {
	case "|u1", "<u1", "u1":
		e.DType = jointinference.DTypeU8
	case "<f4":
		e.DType, size = jointinference.DTypeF32, 4
	default:
		return e, fmt.Errorf("dtype %q: want uint8 or little-endian float32", d)
	}
	if field("fortran_order") == "True" {
		return e, errors.New("a Fortran-order array: want C order")
	}
	n := 1
	for _, s := range strings.Split(field("shape"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 {
			return e, fmt.Errorf("a shape of %q", field("shape"))
		}
		e.Shape, n = append(e.Shape, d), n*d
	}
	e.Data = raw[at+hlen:]
	if len(e.Data) != n*size {
		return e, fmt.Errorf("shape %v needs %d bytes, the file has %d", e.Shape, n*size, len(e.Data))
	}
	return e, nil
}
