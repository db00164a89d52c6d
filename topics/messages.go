package topics

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Kinds of envelope bodies. Every message type of the project is listed here.
const (
	// KindNodeStatus: NodeStatus on NodeStatusTopic(node), retained; also the will.
	KindNodeStatus = "node.status"
	// KindStatusRequest: StatusRequest on StatusRequestTopic(node), from
	// the cloud to each node.
	KindStatusRequest = "node.status.request"
	// KindDownAck: DownAck on DownAckTopic(node).
	KindDownAck = "bridge.downack"
	// KindError: ErrorEvent on NodeEvents(node, "error") or the cloud's own.
	KindError = "error"
	// KindSpec: Spec, the desired state of a job for one node.
	KindSpec = "spec"
	// KindTensor: Tensor, raw little-endian numbers with a shape.
	KindTensor = "tensor"
	// KindBytes: the body is opaque bytes (a blob chunk, an image).
	KindBytes = "bytes"
	// KindTest: a body used by tests and benchmarks (TestBody).
	KindTest = "test"
	// KindAPIRequest: APIRequest on APIRequestTopic(user).
	KindAPIRequest = "api.request"
	// KindAPIReply: APIReply on APIReplyTopic(user, client).
	KindAPIReply = "api.reply"
	// KindStatus: a resource's status (api.Status) on JobStatus(ref),
	// retained.
	KindStatus = "status"
	// KindJobEvent: JobEvent on JobEvents(ref).
	KindJobEvent = "job.event"
	// KindWorkerStatus: a worker's state (api.WorkerStatus) on
	// NodeJob(node, ref, "workers/"+role), from the agent that runs it.
	KindWorkerStatus = "worker.status"
	// KindWorkerMetrics: WorkerMetrics on NodeJob(node, ref,
	// "metrics/"+role): a worker's own numbers, merged into the job's
	// status without an event.
	KindWorkerMetrics = "worker.metrics"
	// KindStageCondition: a learning job's StageCondition, from the
	// controller on the node of the job's Dataset, on NodeJob(node, ref,
	// "conditions").
	KindStageCondition = "job.stage"
	// Incremental learning's messages (package incremental has their
	// bodies): a node's hard examples, one waiting for a label, a label,
	// a controller's stage request, an attempt's report, the labelled
	// count.
	KindILExamples = "il.examples"
	KindILWaiting  = "il.waiting"
	KindILLabel    = "il.label"
	KindILRun      = "il.run"
	KindILStage    = "il.stage"
	KindILLabelled = "il.labelled"
	KindILAttempt  = "il.attempt"
	KindILWork     = "il.work"
	// KindDatasetStatus: DatasetStatus on NodeJob(node, ref, "status").
	KindDatasetStatus = "dataset.status"
	// KindModelChunk: ModelChunk on ToNodeJob(node, modelRef, "chunk").
	KindModelChunk = "model.chunk"
	// KindModelFetch: ModelFetch on NodeJob(node, modelRef, "fetch").
	KindModelFetch = "model.fetch"
	// KindModelHeld: ModelHeld on NodeJob(node, modelRef, "model").
	KindModelHeld = "model.held"
	// KindLogRequest: LogRequest on ToNodeJobLogs(node, ref), from the
	// control plane, best effort (Downlink.SendNow).
	KindLogRequest = "log.request"
	// KindLogChunk: LogChunk on NodeJobLogs(node, ref, role, stream),
	// from the node that runs the worker (or the cloud's control plane
	// for its own workers).
	KindLogChunk = "log.chunk"
)

// ModelOffer is the desired state of a Model on a node (the Data of its
// Spec): which version to hold, its size and digests, so the node fetches
// what it lacks and checks every chunk.
type ModelOffer struct {
	Key          string   `msgpack:"key"`
	Version      uint64   `msgpack:"version"`
	Format       string   `msgpack:"format"`
	Size         int64    `msgpack:"size"`
	ChunkSize    int      `msgpack:"chunkSize"`
	SHA256       []byte   `msgpack:"sha256"`
	ChunkSHA256s [][]byte `msgpack:"chunks"`
	// IO is what the Model declares about an ONNX graph (api.ModelIO as
	// JSON), absent for other formats.
	IO []byte `msgpack:"io,omitempty"`
}

// ModelFetch asks the cloud for chunks of a model version. Chunks already
// on their way are not sent again; Refetch ones are (a corrupt chunk, or a
// transfer that stalled).
type ModelFetch struct {
	Key     string `msgpack:"key"`
	Version uint64 `msgpack:"version"`
	Chunks  []int  `msgpack:"chunks,omitempty"`
	Refetch []int  `msgpack:"refetch,omitempty"`
}

// ModelChunk carries one chunk of a model version to a node.
type ModelChunk struct {
	Key     string `msgpack:"key"`
	Version uint64 `msgpack:"version"`
	Index   int    `msgpack:"i"`
	Data    []byte `msgpack:"data"`
}

// ModelHeld tells the cloud which version of a model a node holds, whole
// and checked.
type ModelHeld struct {
	Key     string `msgpack:"key"`
	Version uint64 `msgpack:"version"`
	SHA256  []byte `msgpack:"sha256"`
}

// ModelUpload is one piece of a `sedna model push`: pieces go in order, one
// request each; the last one makes the new version.
type ModelUpload struct {
	ID      string            `msgpack:"id"`
	Index   int               `msgpack:"i"`
	Data    []byte            `msgpack:"data"`
	Last    bool              `msgpack:"last,omitempty"`
	Format  string            `msgpack:"format,omitempty"`
	Metrics map[string]string `msgpack:"metrics,omitempty"`
}

// APIRequest asks the control plane to act. Apply carries documents as JSON
// (the cloud manager parses and validates them itself); the reply goes to
// APIReplyTopic(user, Client) with the same ID, user being the one whose
// request topic it came on.
type APIRequest struct {
	ID        string   `msgpack:"id"`
	Client    string   `msgpack:"client"`
	Op        string   `msgpack:"op"` // apply, delete, get, describe, nodes, model.push, logs, examples.waiting, examples.label, kb.describe
	Kind      string   `msgpack:"kind,omitempty"`
	Namespace string   `msgpack:"ns,omitempty"`
	Name      string   `msgpack:"name,omitempty"`
	Documents [][]byte `msgpack:"docs,omitempty"`
	Origins   []string `msgpack:"origins,omitempty"` // file#doc of each document, for messages
	// Upload is a piece of a model push (Op "model.push").
	Upload *ModelUpload `msgpack:"upload,omitempty"`
	// Strict (apply) refuses a document with a field Sedna's CRDs do
	// not define, instead of warning about it.
	Strict bool `msgpack:"strict,omitempty"`
	// Logs (Op "logs") asks for a worker's log, streamed as LogChunks on
	// NodeJobLogsFilter(job, "+", Logs.Stream); the reply's Nodes names
	// the node that answers.
	Logs *LogRequest `msgpack:"logs,omitempty"`
	// Body is the JSON of an operation a paradigm serves about the job
	// Kind/Namespace/Name (Op "examples.waiting", "examples.label").
	Body []byte `msgpack:"body,omitempty"`
}

// APIReply answers an APIRequest.
type APIReply struct {
	ID      string      `msgpack:"id"`
	Error   string      `msgpack:"error,omitempty"` // the request as a whole failed
	Results []APIResult `msgpack:"results,omitempty"`
	Objects []APIObject `msgpack:"objects,omitempty"`
	// Nodes answers Op "nodes".
	Nodes []NodeInfo `msgpack:"nodes,omitempty"`
	// Body is the JSON answer of an operation a paradigm serves.
	Body []byte `msgpack:"body,omitempty"`
}

// APIResult is what became of one document of an apply or of a delete.
type APIResult struct {
	Key     string `msgpack:"key"`    // kind/namespace/name
	Action  string `msgpack:"action"` // created, configured, unchanged, deleted, rejected
	Message string `msgpack:"msg,omitempty"`
	Pending string `msgpack:"pending,omitempty"` // what an accepted resource waits for
	// Warnings are said about an accepted document: each field Sedna's
	// CRDs do not define (as kubectl warns of unknown fields).
	Warnings []string `msgpack:"warnings,omitempty"`
}

// APIObject is one resource as stored: its document, status and what the
// control plane made of it.
type APIObject struct {
	Key        string   `msgpack:"key"`
	Generation uint64   `msgpack:"gen"`
	Created    int64    `msgpack:"created"` // unix nanoseconds
	Updated    int64    `msgpack:"updated"`
	Source     []byte   `msgpack:"source"` // the document as JSON
	Status     []byte   `msgpack:"status"` // api.Status as JSON
	Ignored    []string `msgpack:"ignored,omitempty"`
}

// JobEvent is one thing that happened to a resource, for `sedna watch`.
type JobEvent struct {
	Key     string `msgpack:"key"`
	Time    int64  `msgpack:"t"`
	Type    string `msgpack:"type"` // Normal, Warning
	Reason  string `msgpack:"reason"`
	Message string `msgpack:"msg"`
}

// WorkerMetrics are a worker's numbers at a time: counts, ratios,
// latencies, accuracy. Each report replaces the worker's previous one.
type WorkerMetrics struct {
	Role    string             `msgpack:"role"`
	Metrics map[string]float64 `msgpack:"metrics"`
	Updated int64              `msgpack:"t"`
}

// StageCondition is a learning job's move, from the controller on the
// node of its Dataset: the condition in Sedna's stage shape (Type is the
// stage's phase: Waiting, Ready, Starting, Running, Completed, Failed;
// Data the stage's input or output as JSON) and where the job's cycles
// are.
type StageCondition struct {
	Type    string `msgpack:"type"`
	Status  string `msgpack:"status"`
	Stage   string `msgpack:"stage"`
	Reason  string `msgpack:"reason,omitempty"`
	Message string `msgpack:"msg,omitempty"`
	Data    string `msgpack:"data,omitempty"`
	Time    int64  `msgpack:"t"` // unix nanoseconds
	// Revision is the job's spec the controller runs (a report of a job
	// deleted and applied again since is not the new one's).
	Revision Revision `msgpack:"rev"`
	// Cycle, the serving model's version and the cycles deployed, after
	// the move; Done and DoneReason once a stop condition held.
	Cycle      int64  `msgpack:"cycle"`
	Serving    uint64 `msgpack:"serving"`
	Deployed   int64  `msgpack:"deployed"`
	Done       bool   `msgpack:"done,omitempty"`
	DoneReason string `msgpack:"doneReason,omitempty"`
}

// DatasetStatus is what a node reports of a dataset it holds.
type DatasetStatus struct {
	Key             string `msgpack:"key"`
	NumberOfSamples int64  `msgpack:"samples"`
	Updated         int64  `msgpack:"t"`
	// Problem says why the node cannot read the dataset's file (it does
	// not exist there, or a read failed); empty when it reads it.
	Problem string `msgpack:"problem,omitempty"`
}

// Node states in NodeStatus.
const (
	NodeOnline  = "online"
	NodeOffline = "offline"
)

// NodeStatus is the retained last-known state of a node. The bridge sets an
// "offline" will when it connects and publishes "online" once connected,
// both with the number of that connection (its session), so that a will
// of an older connection that lands late (a half-open link the broker
// notices after the new one is up) is known for what it is.
type NodeStatus struct {
	Node    string `msgpack:"node"`
	State   string `msgpack:"state"`         // NodeOnline or NodeOffline
	Version string `msgpack:"ver,omitempty"` // software version of the node
	Epoch   uint64 `msgpack:"epoch"`         // the node's store epoch
	Since   int64  `msgpack:"since"`         // unix nanoseconds of the change (0 in a will)
	Reason  string `msgpack:"reason,omitempty"`
	// Session numbers the bridge's connections, from 1, increasing
	// across restarts of the node (it is kept in its store); 0 from a
	// node that does not number them.
	Session uint64 `msgpack:"session,omitempty"`
	// OS and Arch are the node's (Go's GOOS and GOARCH).
	OS   string `msgpack:"os,omitempty"`
	Arch string `msgpack:"arch,omitempty"`
}

// NodeInfo is what the control plane knows of a node (`sedna get nodes`).
type NodeInfo struct {
	Name string `msgpack:"name"`
	// State is NodeOnline, NodeOffline, or "unknown" for a node jobs
	// name that never joined.
	State string `msgpack:"state"`
	// Since is when the control plane learnt the state; LastSeen when it
	// last heard from the node (unix nanoseconds; 0: never).
	Since    int64 `msgpack:"since,omitempty"`
	LastSeen int64 `msgpack:"seen,omitempty"`
	// Reason says why the node is offline, when the cloud knows.
	Reason  string `msgpack:"reason,omitempty"`
	Version string `msgpack:"ver,omitempty"`
	OS      string `msgpack:"os,omitempty"`
	Arch    string `msgpack:"arch,omitempty"`
	// Backlog is what the cloud holds for the node, not yet acknowledged
	// by it: messages, bytes, and when the oldest was queued.
	Backlog      int64 `msgpack:"backlog,omitempty"`
	BacklogBytes int64 `msgpack:"backlogBytes,omitempty"`
	Oldest       int64 `msgpack:"oldest,omitempty"`
	// Workers are the workers jobs place on the node, as
	// "Kind/namespace/name/role Phase".
	Workers []string `msgpack:"workers,omitempty"`
}

// Supersedes reports whether s is newer news of its node than old: a later
// session, or the end (offline) of the same one. A status of another store
// epoch (a wiped node) or without a session always supersedes, as the
// node's latest word.
func (s NodeStatus) Supersedes(old NodeStatus) bool {
	if s.Session == 0 || old.Session == 0 || s.Epoch != old.Epoch {
		return true
	}
	if s.Session != old.Session {
		return s.Session > old.Session
	}
	return s.State == NodeOffline || old.State != NodeOffline
}

// StatusRequest asks a connected node to publish its status again (not
// retained delivery: a clustered broker such as RabbitMQ gives a wildcard
// subscription no retained message, and keeps them per broker node). The
// cloud sends one to every node it knows, on StatusRequestTopic(node),
// when it starts and then periodically; a node that does not answer
// within the grace the cloud gives is taken to be offline. Each node
// answers after a random delay below Spread, so that a large fleet's
// answers do not arrive at once.
type StatusRequest struct {
	// Asked is when the cloud asked (unix nanoseconds).
	Asked int64 `msgpack:"asked"`
	// Spread is the longest a node waits before it answers (nanoseconds).
	Spread int64 `msgpack:"spread,omitempty"`
}

// DownAck tells the cloud how far a node has durably received its downlink:
// every message of Epoch up to and including Seq. With Replay set, it also
// asks the cloud to resend everything after Seq (sent after a reconnect).
type DownAck struct {
	Epoch  uint64 `msgpack:"epoch"`
	Seq    uint64 `msgpack:"seq"`
	Replay bool   `msgpack:"replay,omitempty"`
}

// ErrorEvent reports a message that was refused or dead-lettered, or any
// other error a component wants the operator to see.
type ErrorEvent struct {
	Component string `msgpack:"component"`        // e.g. "edge/capture", "cloud/ingress"
	Reason    string `msgpack:"reason"`           // short machine word: "malformed", "too-large", ...
	Detail    string `msgpack:"detail"`           // one line for a human
	Topic     string `msgpack:"topic,omitempty"`  // where the message was published
	Client    string `msgpack:"client,omitempty"` // the MQTT client that published it
	Message   string `msgpack:"msg,omitempty"`    // its ID, if it had one
	Size      int    `msgpack:"size,omitempty"`   // its size in bytes
}

// Spec is the desired state of one resource for one node. The node keeps
// the latest Revision it has seen per Key and ignores older ones, so specs
// can be resent or reordered safely; a delete is a Spec with Deleted set (a
// tombstone) so it also reaches a node that was offline.
type Spec struct {
	Key        string `msgpack:"key"` // e.g. JobRef.String()
	Generation uint64 `msgpack:"gen"`
	Deleted    bool   `msgpack:"del,omitempty"`
	Data       []byte `msgpack:"data,omitempty"`
	// Created is when this incarnation of the resource was created (unix
	// nanoseconds): a resource deleted and applied again under the same
	// name starts again at generation 1, later.
	Created int64 `msgpack:"created,omitempty"`
	// Secrets are the secrets the resource's workers on the node get (its
	// credentialName, its Datasets' and Models'), by name, each sealed for
	// the node's key (pki.Seal): only the node opens them.
	Secrets map[string][]byte `msgpack:"secrets,omitempty"`
}

// Revision returns the spec's place in its resource's history.
func (s Spec) Revision() Revision { return Revision{Created: s.Created, Generation: s.Generation} }

// Revision orders the states of one resource across deletes: by the
// creation of its incarnation, then by generation within it. Generations
// alone go back when a name is deleted and created again (a tombstone of
// generation 3, then a new object of generation 1), which once made nodes
// ignore the new object forever.
type Revision struct {
	Created    int64  `msgpack:"created,omitempty"`
	Generation uint64 `msgpack:"gen"`
}

// After reports whether r is later than o.
func (r Revision) After(o Revision) bool {
	if r.Created != o.Created {
		return r.Created > o.Created
	}
	return r.Generation > o.Generation
}

// TestBody is the body of KindTest messages: a counter and padding.
type TestBody struct {
	Run     string `msgpack:"run"`
	Counter uint64 `msgpack:"n"`
	Sent    int64  `msgpack:"sent"` // unix nanoseconds when published
	Pad     []byte `msgpack:"pad,omitempty"`
}

// DType names the element type of a Tensor.
type DType string

// Element types of tensors.
const (
	Float32 DType = "f32"
	Float64 DType = "f64"
	Uint8   DType = "u8"
	Int64   DType = "i64"
)

// Size returns the bytes per element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Float64, Int64:
		return 8
	case Uint8:
		return 1
	}
	return 0
}

// Tensor is an n-dimensional array as raw little-endian bytes with a shape,
// so images and weights never travel as lists of numbers.
type Tensor struct {
	DType DType  `msgpack:"dt"`
	Shape []int  `msgpack:"shape"`
	Data  []byte `msgpack:"data"`
}

// Validate checks that the data length matches the shape and type.
func (t *Tensor) Validate() error {
	es := t.DType.Size()
	if es == 0 {
		return fmt.Errorf("topics: tensor: unknown dtype %q", t.DType)
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 || (d > 0 && n > math.MaxInt/es/d) {
			return fmt.Errorf("topics: tensor: bad shape %v", t.Shape)
		}
		n *= d
	}
	if len(t.Data) != n*es {
		return fmt.Errorf("topics: tensor: shape %v of %s needs %d bytes, have %d", t.Shape, t.DType, n*es, len(t.Data))
	}
	return nil
}

// Float32Tensor makes a float32 tensor of the given shape from v.
func Float32Tensor(v []float32, shape ...int) Tensor {
	if shape == nil {
		shape = []int{len(v)}
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: Float32, Shape: shape, Data: b}
}

// Float32s returns the elements of a float32 tensor.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.DType != Float32 {
		return nil, fmt.Errorf("topics: tensor is %s, not f32", t.DType)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}
