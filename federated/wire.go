package federated

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sedna-go/sedna/topics"
)

// Message kinds of federated rounds (envelope kinds).
const (
	// KindGlobal carries a piece of the global model of a round (the
	// model's binary format, in chunks), cloud to node, or says the job is
	// done.
	KindGlobal = topics.KindFLGlobal
	// KindUpdate carries a piece of a client's weights (raw little-endian
	// float32) with its sample count, node to cloud.
	KindUpdate = topics.KindFLUpdate
	// KindJoin asks for the current round's global model (a training
	// worker that starts, or whose link came back), node to cloud, and
	// tells the shape of the worker's Dataset (never a sample).
	KindJoin = topics.KindFLJoin
)

// Topics of a job on a node: globals come down on GlobalTopic, updates and
// joins go up on UpdateTopic and JoinTopic.
func GlobalTopic(node string, job topics.JobRef) string { return topics.ToNodeJob(node, job, "global") }

// UpdateTopic is where a node's training workers send their updates.
func UpdateTopic(node string, job topics.JobRef) string { return topics.NodeJob(node, job, "update") }

// JoinTopic is where a node's training workers ask for the current round.
func JoinTopic(node string, job topics.JobRef) string { return topics.NodeJob(node, job, "join") }

// KindRound is a round's record (Record), published by the aggregation
// worker on RoundTopic as each round closes.
const KindRound = topics.KindFLRound

// RoundTopic is where a job's round records are published on the cloud
// broker.
func RoundTopic(job topics.JobRef) string { return topics.JobTopic(job, "rounds") }

// global is a piece of a round's global model. Keys are short: a piece
// goes to every client every round.
type global struct {
	Gen    uint64 `msgpack:"g"` // the job's generation: workers of a newer one ignore it
	Run    uint64 `msgpack:"u"` // the job's run: a re-applied job starts a new one
	Round  int64  `msgpack:"r"`
	Rounds int64  `msgpack:"rs"`
	Chunk  int    `msgpack:"c"`
	Chunks int    `msgpack:"n"`
	Size   int    `msgpack:"s"` // the whole model's bytes
	Data   []byte `msgpack:"d"`
	Done   bool   `msgpack:"x,omitempty"` // the job is over: the worker ends
}

// update is a piece of a client's weights for a round.
type update struct {
	Run     uint64  `msgpack:"u"`
	Round   int64   `msgpack:"r"`
	Role    string  `msgpack:"w"`
	Chunk   int     `msgpack:"c"`
	Chunks  int     `msgpack:"n"`
	Params  int     `msgpack:"p"` // float32s in the whole update
	Samples int64   `msgpack:"k"`
	Loss    float64 `msgpack:"l"`
	Train   float64 `msgpack:"t"` // seconds spent training
	Data    []byte  `msgpack:"d"`
}

// join asks for the current round.
type join struct {
	Gen   uint64 `msgpack:"g"`
	Role  string `msgpack:"w"`
	Run   uint64 `msgpack:"u"`
	Round int64  `msgpack:"r"` // the last round the worker trained
	// Data is the shape of the worker's Dataset so far, for an
	// aggregation worker with nothing else to size a new model by; nil in
	// the join of a worker older than it.
	Data *datasetReport `msgpack:"ds,omitempty"`
}

// f32le encodes weights as little-endian float32s.
func f32le(w []float32) []byte {
	out := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// fromF32le decodes little-endian float32s.
func fromF32le(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of float32s", len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}
