package paradigm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/onnx"
)

// ModelInfo is how a model version is to be served: the format its Model
// gives (api.ModelSpec.Format; "" for the learning substrate's or ONNX,
// told apart by the bytes) and what the Model declares of an ONNX graph.
type ModelInfo struct {
	Format string
	IO     api.ModelIO
}

// Describer is what a side's Models may also do: describe a version it
// holds. A side without it serves every version as Format "" (the bytes
// tell).
type Describer interface {
	Describe(namespace, name string, version uint64) (ModelInfo, error)
}

// DescribeModel describes version of a model through models when it can,
// else returns the zero ModelInfo.
func DescribeModel(models Models, namespace, name string, version uint64) (ModelInfo, error) {
	d, ok := models.(Describer)
	if !ok {
		return ModelInfo{}, nil
	}
	return d.Describe(namespace, name, version)
}

// ModelInfoOf decodes a version's format and declarations as the
// registry keeps them (IO: api.ModelIO as JSON, or nothing).
func ModelInfoOf(format string, io []byte) (ModelInfo, error) {
	info := ModelInfo{Format: format}
	if len(io) > 0 {
		if err := json.Unmarshal(io, &info.IO); err != nil {
			return info, fmt.Errorf("the model's declarations do not decode: %w", err)
		}
	}
	return info, nil
}

// FormatOf is the format of a model version: its Model's, or, when the
// Model gives none, the learning substrate's (its magic, or no bytes) or
// else ONNX; what MODEL_FORMAT tells a worker.
func FormatOf(data []byte, info ModelInfo) string {
	switch {
	case info.Format != "":
		return info.Format
	case data == nil || ml.IsSedna(data):
		return api.FormatSedna
	}
	return api.FormatONNX
}

// ErrFormat: a model of a format built-in workers do not serve.
var ErrFormat = errors.New("not a format built-in workers serve")

// LoadPredictor loads a model version's bytes as its info says, for
// serving: the learning substrate's format (ml.Unmarshal) or ONNX (package
// ml/onnx, which this binary may lack: onnx.ErrNoRuntime). Any other
// format is refused with ErrFormat: an external worker serves it. Every
// error says in one line what is wrong.
func LoadPredictor(data []byte, info ModelInfo) (ml.Predictor, error) {
	switch info.Format {
	case api.FormatSedna, api.FormatSednaML:
		return ml.Unmarshal(data)
	case api.FormatONNX:
		return onnx.Load(data, ONNXOptions(info.IO))
	case "":
		if ml.IsSedna(data) {
			return ml.Unmarshal(data)
		}
		m, err := onnx.Load(data, ONNXOptions(info.IO))
		if err != nil {
			return nil, fmt.Errorf("not a sedna model (no SDML magic), and as ONNX: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("format %q: %w (onnx, sedna); give the template a command that serves it, or export the model to ONNX", info.Format, ErrFormat)
}

// ONNXOptions turns a Model's declarations into ml/onnx's options: the
// input's shape without its batch axis.
func ONNXOptions(io api.ModelIO) onnx.Options {
	var o onnx.Options
	if len(io.Inputs) > 0 {
		o.Input = io.Inputs[0].Name
		if s := io.Inputs[0].Shape; len(s) > 1 {
			o.Shape = append([]int64(nil), s[1:]...)
		}
	}
	if len(io.Outputs) > 0 {
		o.Output = io.Outputs[0].Name
	}
	if p := io.Preprocess; p != nil {
		o.Pre = onnx.Preprocess{Scale: p.Scale, Mean: p.Mean, Std: p.Std, Layout: p.Layout}
	}
	switch io.Postprocess {
	case "none":
		f := false
		o.Softmax = &f
	case "softmax":
		t := true
		o.Softmax = &t
	}
	return o
}
