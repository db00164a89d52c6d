package jointinference

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
	"github.com/sedna-go/sedna/paradigm"
)

// Tasks a service's models do.
const (
	TaskClassification = "classification"
	TaskDetection      = "detection"
)

// Parameters of the task, in both workers' template env.
const (
	ParamTask     = "SEDNA_JI_TASK"      // classification (default) or detection
	ParamWindow   = "SEDNA_JI_WINDOW"    // detection: the window the model classifies; default 8
	ParamStride   = "SEDNA_JI_STRIDE"    // detection: default 2
	ParamMinScore = "SEDNA_JI_MIN_SCORE" // detection: boxes below are dropped; default 0.5
	ParamNMS      = "SEDNA_JI_NMS"       // detection: non-maximum suppression IoU; default 0.3
)

// task says what the models do and, for detection, how windows are taken.
type task struct {
	kind     string
	window   int
	stride   int
	minScore float32
	nms      float32
}

func taskOf(p map[string]string) (task, error) {
	t := task{kind: TaskClassification, window: 8, stride: 2, minScore: 0.5, nms: 0.3}
	if v := p[ParamTask]; v != "" {
		if v != TaskClassification && v != TaskDetection {
			return t, fmt.Errorf("jointinference: %s=%q: want %s or %s", ParamTask, v, TaskClassification, TaskDetection)
		}
		t.kind = v
	}
	for k, dst := range map[string]*int{ParamWindow: &t.window, ParamStride: &t.stride} {
		if v := p[k]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1024 {
				return t, fmt.Errorf("jointinference: %s=%q: want 1 to 1024", k, v)
			}
			*dst = n
		}
	}
	for k, dst := range map[string]*float32{ParamMinScore: &t.minScore, ParamNMS: &t.nms} {
		if v := p[k]; v != "" {
			f, err := strconv.ParseFloat(v, 32)
			if err != nil || f < 0 || f > 1 {
				return t, fmt.Errorf("jointinference: %s=%q: want 0 to 1", k, v)
			}
			*dst = float32(f)
		}
	}
	return t, nil
}

// Task is a worker's task as its template's env says it (the Param*
// names), for the workers of other paradigms that serve the same models.
type Task struct {
	Detection bool
	// Window, Stride, MinScore and NMS are the detector's (Detection).
	Window, Stride int
	MinScore, NMS  float32
}

// TaskOf reads a Task from a template's env values (the Param* names).
func TaskOf(p map[string]string) (Task, error) {
	t, err := taskOf(p)
	return Task{Detection: t.kind == TaskDetection, Window: t.window, Stride: t.stride, MinScore: t.minScore, NMS: t.nms}, err
}

// Detector is the task's detector over m, a window classifier whose last
// class is the background.
func (t Task) Detector(m ml.Predictor) *detect.Detector {
	return &detect.Detector{Model: m, Window: t.Window, Stride: t.Stride, MinScore: t.MinScore, NMS: t.NMS}
}

// model is a model of the learning substrate doing the service's task.
// A classification sample with k² times the model's inputs, square and
// divisible by k, is average-pooled k×k first (the edge model of the
// example sees 7×7 what the cloud model sees 14×14); a detection sample is
// a scene the detector's window slides over.
type model struct {
	net     ml.Predictor // the learning substrate's *ml.Network, or an ONNX model
	version uint64
	format  string
	det     *detect.Detector
}

// answer is a model's answer to one sample.
type answer struct {
	probs []float32
	boxes [][6]float32
}

// loadModel loads a version as info says (the learning substrate's format
// or ONNX, paradigm.LoadPredictor) for task t.
func loadModel(data []byte, info paradigm.ModelInfo, version uint64, t task) (*model, error) {
	n, err := paradigm.LoadPredictor(data, info)
	if err != nil {
		return nil, fmt.Errorf("version %d: %w", version, err)
	}
	format := paradigm.FormatOf(data, info)
	if format == api.FormatSednaML {
		format = api.FormatSedna
	}
	m := &model{net: n, version: version, format: format}
	if t.kind == TaskDetection {
		if n.Inputs() != t.window*t.window {
			return nil, fmt.Errorf("model version %d takes %d inputs, not a %d×%d window", version, n.Inputs(), t.window, t.window)
		}
		m.det = &detect.Detector{Model: n, Window: t.window, Stride: t.stride, MinScore: t.minScore, NMS: t.nms}
	}
	return m, nil
}

// classes is the number of classes of a classifier's answers.
func (m *model) classes() int { return m.net.Classes() }

// features fits sample x (of shape) to the model.
func (m *model) features(x []float32, shape []int) ([]float32, error) {
	if m.det != nil {
		if len(shape) != 2 || shape[0]*shape[1] != len(x) || shape[0] < m.det.Window || shape[1] < m.det.Window {
			return nil, fmt.Errorf("a detection sample is a [height, width] scene of at least the %d×%d window; got shape %v", m.det.Window, m.det.Window, shape)
		}
		return x, nil
	}
	in := m.net.Inputs()
	if len(x) == in {
		return x, nil
	}
	if len(shape) == 2 && len(x) > in && len(x)%in == 0 {
		k := int(math.Round(math.Sqrt(float64(len(x) / in))))
		h, w := shape[0], shape[1]
		if k > 1 && k*k*in == len(x) && h%k == 0 && w%k == 0 {
			out := make([]float32, 0, in)
			inv := 1 / float32(k*k)
			for r := 0; r < h; r += k {
				for col := 0; col < w; col += k {
					var s float32
					for i := range k {
						for j := range k {
							s += x[(r+i)*w+col+j]
						}
					}
					out = append(out, s*inv)
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("a sample of %d values (shape %v) does not fit a model of %d inputs", len(x), shape, in)
}

// infer answers rows (fitted by features; shapes are the samples').
func (m *model) infer(rows [][]float32, shapes [][]int) ([]answer, error) {
	out := make([]answer, len(rows))
	if m.det != nil {
		for i, r := range rows {
			boxes, err := m.det.Detect(detect.Scene{Width: shapes[i][1], Height: shapes[i][0], Pixels: r})
			if err != nil {
				return nil, err
			}
			out[i].boxes = make([][6]float32, len(boxes))
			for j, b := range boxes {
				out[i].boxes[j] = b.Array()
			}
		}
		return out, nil
	}
	in := m.net.Inputs()
	x := make([]float32, 0, len(rows)*in)
	for _, r := range rows {
		x = append(x, r...)
	}
	probs, err := m.net.PredictProba(x)
	if err != nil {
		return nil, err
	}
	k := m.net.Classes()
	for i := range out {
		out[i].probs = probs[i*k : (i+1)*k]
	}
	return out, nil
}

// result is an answer as a device reads it: for a classifier the most
// probable class; for a detector the label and score of the best box
// (class -1 when there is none).
func (a answer) result(id, source string) Result {
	r := Result{ID: id, Source: source, Probs: a.probs, Boxes: a.boxes, Class: -1}
	if a.probs != nil {
		r.Class, r.Score = argmax(a.probs)
	}
	for _, b := range a.boxes {
		if b[4] > r.Score || r.Class < 0 {
			r.Class, r.Score = int(b[5]), b[4]
		}
	}
	return r
}

func argmax(p []float32) (int, float32) {
	best, score := 0, float32(-1)
	for i, v := range p {
		if v > score {
			best, score = i, v
		}
	}
	return best, score
}

// unusable is a worker's status message for a model version it cannot
// serve: one line, saying which version it serves instead (have, 0 for
// none).
func unusable(side, name string, have uint64, err error) string {
	serving := "nothing to serve until a usable version comes"
	if have > 0 {
		serving = fmt.Sprintf("still serving version %d", have)
	}
	msg := fmt.Sprintf("%s model %s not usable (%s): %v", side, name, serving, err)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
