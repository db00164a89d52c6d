package jointinference

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sedna-go/sedna/topics"
)

// Envelope kinds of the service.
const (
	// KindRequest: a device's Request on the input topic.
	KindRequest = topics.KindJIRequest
	// KindResult: a Result to a device.
	KindResult = topics.KindJIResult
	// KindOffload: an offload batch, edge worker to cloud worker.
	KindOffload = topics.KindJIOffload
	// KindReply: the cloud worker's answer to an offload batch.
	KindReply = topics.KindJIReply
)

// Data types of a sample.
const (
	DTypeU8  = "u8"  // bytes, 0..255, normalised to [0, 1] by the workers
	DTypeF32 = "f32" // little-endian float32, taken as they are
)

// Request is one sample a device asks about. A JSON request may give the
// values as a list of numbers (Values) instead of Data.
type Request struct {
	// ID is the device's name for the sample, echoed in the Result.
	ID string `msgpack:"id" json:"id"`
	// Shape is the sample's shape: [height, width] for an image.
	Shape []int `msgpack:"shape" json:"shape"`
	// DType is DTypeU8 (the default) or DTypeF32.
	DType string `msgpack:"dtype,omitempty" json:"dtype,omitempty"`
	// Data holds the values (base64 in JSON).
	Data []byte `msgpack:"data,omitempty" json:"data,omitempty"`
	// Values are the values as numbers (JSON clients).
	Values []float32 `msgpack:"values,omitempty" json:"values,omitempty"`
	// Label, when the device knows it, counts toward the accuracy metric.
	Label *int `msgpack:"label,omitempty" json:"label,omitempty"`
	// Attr is the sample's task attribute, for lifelong jobs that define
	// tasks by attribute (the values of the job's attribute columns).
	Attr string `msgpack:"attr,omitempty" json:"attr,omitempty"`
	// Stream names the device or sensor the sample comes from: a
	// lifelong job judges a stream's recent samples together.
	Stream string `msgpack:"stream,omitempty" json:"stream,omitempty"`
	// ReplyTo is where a JSON client wants its result; msgpack clients use
	// the envelope's.
	ReplyTo string `msgpack:"-" json:"replyTo,omitempty"`
}

// Result answers one Request.
type Result struct {
	ID    string    `msgpack:"id" json:"id"`
	Class int       `msgpack:"class" json:"class"`
	Score float32   `msgpack:"score" json:"score"` // the class's probability
	Probs []float32 `msgpack:"probs,omitempty" json:"probs,omitempty"`
	// Boxes are a detector's: xmin, ymin, xmax, ymax, score, label.
	Boxes [][6]float32 `msgpack:"boxes,omitempty" json:"boxes,omitempty"`
	// Source is "edge" or "cloud": whose model gave the answer.
	Source string `msgpack:"source" json:"source"`
	// Hard says the miner judged the sample hard.
	Hard bool `msgpack:"hard" json:"hard"`
	// Fallback, when set, says why a hard sample got the edge's answer:
	// "timeout", "link-down", "cloud-error", "not-sent".
	Fallback string `msgpack:"fallback,omitempty" json:"fallback,omitempty"`
	// Error, when set, says why the sample has no answer (bad input).
	Error string `msgpack:"error,omitempty" json:"error,omitempty"`
	// Task is the lifelong task whose model answered; Unseen says the
	// sample is of a task the knowledge base has not seen (answered by
	// the nearest task's model, kept for labelling).
	Task   string `msgpack:"task,omitempty" json:"task,omitempty"`
	Unseen bool   `msgpack:"unseen,omitempty" json:"unseen,omitempty"`
	// LatencyMicros is the time from the request's arrival at the edge
	// worker to its answer.
	LatencyMicros int64 `msgpack:"latencyUs" json:"latencyUs"`
}

// offloadBatch is what the edge worker sends up: the hard samples of one
// batch, as the device sent them (an 8-bit image stays 8-bit). Keys are
// one letter and the device's IDs stay on the edge (answers come in the
// batch's order): every byte counts on a slow uplink.
type offloadBatch struct {
	Samples []offloadSample `msgpack:"s"`
}

type offloadSample struct {
	ID    string `msgpack:"i,omitempty"`
	Shape []int  `msgpack:"h"`
	DType string `msgpack:"t,omitempty"` // "" is u8
	Data  []byte `msgpack:"d"`
}

// offloadReply answers an offload batch, in the batch's order.
type offloadReply struct {
	Results []cloudResult `msgpack:"r"`
	Error   string        `msgpack:"e,omitempty"`
}

type cloudResult struct {
	ID    string       `msgpack:"i,omitempty"`
	Probs []float32    `msgpack:"p,omitempty"`
	Boxes [][6]float32 `msgpack:"b"` // nil for a classifier; empty: a detector found none
	Error string       `msgpack:"e,omitempty"`
}

// DecodeRequest reads a device's message: JSON if it starts with '{',
// else an envelope of KindRequest. replyTo is where the result goes ("" for
// the service's result topic); asJSON says to answer in JSON.
func DecodeRequest(payload []byte, lim topics.Limits) (req Request, replyTo, corr string, asJSON bool, err error) {
	if len(payload) > 0 && payload[0] == '{' {
		if err := json.Unmarshal(payload, &req); err != nil {
			return req, "", "", true, fmt.Errorf("request: %w", err)
		}
		return req, req.ReplyTo, "", true, nil
	}
	env, err := topics.UnmarshalEnvelope(payload, lim)
	if err != nil {
		return req, "", "", false, err
	}
	if env.Kind != KindRequest {
		return req, env.ReplyTo, env.CorrelationID, false, fmt.Errorf("request: an envelope of kind %q, want %q", env.Kind, KindRequest)
	}
	if err := env.DecodeBody(&req); err != nil {
		return req, env.ReplyTo, env.CorrelationID, false, fmt.Errorf("request: %w", err)
	}
	return req, env.ReplyTo, env.CorrelationID, false, nil
}

// EncodeResult writes a Result as the request came: JSON, or an envelope
// carrying the request's correlation ID.
func EncodeResult(r Result, corr string, asJSON bool) ([]byte, error) {
	if asJSON {
		return json.Marshal(r)
	}
	env, err := topics.NewEnvelope(KindResult, "jointinference/edge", r)
	if err != nil {
		return nil, err
	}
	env.CorrelationID = corr
	return env.Marshal()
}

// EncodeRequest makes the message a device publishes for r (an envelope;
// replyTo and corr may be empty).
func EncodeRequest(r Request, replyTo, corr string) ([]byte, error) {
	env, err := topics.NewEnvelope(KindRequest, "device", r)
	if err != nil {
		return nil, err
	}
	env.ReplyTo, env.CorrelationID = replyTo, corr
	return env.Marshal()
}

// DecodeResult reads a Result a worker published, JSON or envelope, and
// the correlation ID of the request it answers (envelopes only).
func DecodeResult(payload []byte) (Result, string, error) {
	var r Result
	if len(payload) > 0 && payload[0] == '{' {
		err := json.Unmarshal(payload, &r)
		return r, "", err
	}
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
	if err != nil {
		return r, "", err
	}
	if env.Kind != KindResult {
		return r, "", fmt.Errorf("result: an envelope of kind %q", env.Kind)
	}
	err = env.DecodeBody(&r)
	return r, env.CorrelationID, err
}

var errNoValues = errors.New("no values: give data or values")

// Floats returns the sample as floats: bytes normalised to [0, 1].
func (r *Request) Floats() ([]float32, error) {
	n := 1
	for _, d := range r.Shape {
		if d < 1 || d > 1<<16 {
			return nil, fmt.Errorf("shape %v", r.Shape)
		}
		n *= d
	}
	if len(r.Shape) == 0 {
		n = -1
	}
	var out []float32
	switch {
	case len(r.Values) > 0:
		out = r.Values
	case r.DType == "" || r.DType == DTypeU8:
		if len(r.Data) == 0 {
			return nil, errNoValues
		}
		out = make([]float32, len(r.Data))
		for i, b := range r.Data {
			out[i] = float32(b) / 255
		}
	case r.DType == DTypeF32:
		if len(r.Data)%4 != 0 || len(r.Data) == 0 {
			return nil, fmt.Errorf("%d bytes of f32 data", len(r.Data))
		}
		out = make([]float32, len(r.Data)/4)
		unpackF32(r.Data, out)
	default:
		return nil, fmt.Errorf("dtype %q: want u8 or f32", r.DType)
	}
	if n >= 0 && len(out) != n {
		return nil, fmt.Errorf("%d values for shape %v", len(out), r.Shape)
	}
	for _, v := range out {
		if v != v || v > 1e30 || v < -1e30 {
			return nil, errors.New("a value is not finite")
		}
	}
	return out, nil
}

// Packed is the sample as bytes, for sending or keeping: 8-bit data as it
// came (dtype ""); floats as raw little-endian f32 (JSON values packed).
func (r *Request) Packed() (dtype string, data []byte) {
	if len(r.Values) > 0 {
		return DTypeF32, packF32(r.Values)
	}
	if r.DType == DTypeU8 {
		return "", r.Data
	}
	return r.DType, r.Data
}

// compact is the sample as it goes up, without its ID.
func (r *Request) compact() offloadSample {
	dtype, data := r.Packed()
	return offloadSample{Shape: r.Shape, DType: dtype, Data: data}
}

func (s *offloadSample) request() Request {
	return Request{ID: s.ID, Shape: s.Shape, DType: s.DType, Data: s.Data}
}
