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

// chunks cuts data into pieces of at most size bytes (at least one piece).
func chunks(data []byte, size int) [][]byte {
	if len(data) == 0 {
		return [][]byte{nil}
	}
	var out [][]byte
	for len(data) > 0 {
		n := min(size, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// assembly puts the pieces of one model or update back together.
type assembly struct {
	parts [][]byte
	have  int
	size  int
	// max bounds the whole (0: 1 GiB), so a sender cannot make the
	// receiver hold more than the model's size.
	max int
}

// add keeps piece i of n and reports whether the whole has arrived.
// Pieces that do not agree with the first one's count, or that would make
// the whole larger than max, are an error.
func (a *assembly) add(i, n int, data []byte) (bool, error) {
	limit := a.max
	if limit <= 0 {
		limit = 1 << 30
	}
	if n < 1 || n > 1<<16 || i < 0 || i >= n || n > limit/minChunkBytes+1 {
		return false, fmt.Errorf("piece %d of %d", i, n)
	}
	if a.parts == nil {
		a.parts = make([][]byte, n)
	}
	if len(a.parts) != n {
		return false, fmt.Errorf("piece %d of %d, earlier pieces said %d", i, n, len(a.parts))
	}
	if a.parts[i] == nil {
		if a.size+len(data) > limit {
			return false, fmt.Errorf("pieces of more than %d bytes", limit)
		}
		a.parts[i] = append([]byte{}, data...)
		a.have++
		a.size += len(data)
	}
	return a.have == n, nil
}

func (a *assembly) bytes() []byte {
	out := make([]byte, 0, a.size)
	for _, p := range a.parts {
		out = append(out, p...)
	}
	return out
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
