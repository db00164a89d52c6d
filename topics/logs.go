package topics

import "time"

// Worker logs (`sedna logs`): a user asks the control plane (APIRequest,
// Op "logs", with a LogRequest); the control plane forwards the request,
// best effort, to the node that runs the worker (ToNodeJobLogs, seen on
// the node as JobLogs); the node answers with LogChunks, through its
// bridge, on NodeJobLogs, where the user subscribed before asking. A
// worker's log stays on its node: nothing is sent unless asked.

// Bounds of a log request.
const (
	// LogChunkSize bounds the data of one LogChunk.
	LogChunkSize = 64 << 10
	// DefaultLogBytes is how much of the end of a log a request gets
	// when it does not say.
	DefaultLogBytes = 1 << 20
	// MaxLogBytes bounds what one request gets of a log, and what a
	// follow sends at one check of the file.
	MaxLogBytes = 16 << 20
	// DefaultLogLease is how long a follow goes on without a renewal
	// when the request does not say; MaxLogLease bounds what it may say.
	DefaultLogLease = 15 * time.Second
	MaxLogLease     = time.Minute
)

// LogRequest asks a node for the log of one of its workers: the end of
// it, and with Follow what the worker writes after, for as long as the
// lease lasts. The requester renews a follow by sending the same request
// again (same Stream) before the lease ends; a node that has no follow
// of that Stream (it restarted, or the first request was lost) starts one,
// from From if set.
type LogRequest struct {
	// Stream names this stream of chunks: one topic level, unique per
	// request (the reply topic ends with it).
	Stream string `msgpack:"stream"`
	// Role is the worker's role in its job (the job is in the topic).
	Role string `msgpack:"role"`
	// Follow keeps sending what the worker writes until the lease ends.
	Follow bool `msgpack:"follow,omitempty"`
	// Lease is how long a follow goes on without a renewal, in
	// nanoseconds of the node's own clock (a duration, not a time: the
	// clocks of nodes are wrong); 0 is DefaultLogLease, at most
	// MaxLogLease.
	Lease time.Duration `msgpack:"lease,omitempty"`
	// Bytes bounds what is sent of the log's end (and, following, what is
	// sent at one check: a worker that writes faster is skipped over, and
	// the gap shows in the offsets); 0 is DefaultLogBytes, at most
	// MaxLogBytes.
	Bytes int64 `msgpack:"bytes,omitempty"`
	// Lines, if not negative, sends only the last Lines lines (within
	// Bytes); negative sends every whole line within Bytes.
	Lines int `msgpack:"lines"`
	// From, if Resume, is where to go on: the offset after the last byte
	// the requester received (a renewal that reaches a node which lost
	// the follow).
	From   int64 `msgpack:"from,omitempty"`
	Resume bool  `msgpack:"resume,omitempty"`
}

// LeaseOrDefault is the request's lease, bounded.
func (r LogRequest) LeaseOrDefault() time.Duration {
	switch {
	case r.Lease <= 0:
		return DefaultLogLease
	case r.Lease > MaxLogLease:
		return MaxLogLease
	}
	return r.Lease
}

// BytesOrDefault is the request's bound of bytes, bounded.
func (r LogRequest) BytesOrDefault() int64 {
	switch {
	case r.Bytes <= 0:
		return DefaultLogBytes
	case r.Bytes > MaxLogBytes:
		return MaxLogBytes
	}
	return r.Bytes
}

// LogChunk is a piece of a worker's log, in order: Data is the bytes of
// the log file from Offset, as the worker wrote them. The first chunk of
// a stream is sent even when it has no data, to say where the stream
// starts; an Offset beyond the end of the previous chunk is a gap (bytes
// skipped), one before it a repeat.
type LogChunk struct {
	Stream string `msgpack:"stream"`
	Offset int64  `msgpack:"off"`
	Data   []byte `msgpack:"data,omitempty"`
	// EOF: the end of the log as it was when read; the last chunk of a
	// request without Follow.
	EOF bool `msgpack:"eof,omitempty"`
	// Truncated: the file became shorter than what was sent (replaced);
	// Data starts again at Offset.
	Truncated bool `msgpack:"truncated,omitempty"`
	// Error, if set, ends the stream: the worker or its log is not there.
	Error string `msgpack:"error,omitempty"`
}

// logsLevel is the last level of a job's topics that carry logs.
const logsLevel = "logs"

// ToNodeJobLogs is where the control plane sends node a LogRequest for a
// worker of job r; the node sees it as JobLogs(r).
func ToNodeJobLogs(node string, r JobRef) string { return ToNodeJob(node, r, logsLevel) }

// JobLogs is the topic of log requests for job r on a node's broker.
func JobLogs(r JobRef) string { return JobPrefix(r) + logsLevel }

// JobLogsFilter matches the log requests of every job on a node's broker.
func JobLogsFilter() string { return join(Root, levelJob, "+", "+", "+", logsLevel) }

// NodeJobLogs is where node sends the LogChunks of stream, for the worker
// of job r with role.
func NodeJobLogs(node string, r JobRef, role, stream string) string {
	return NodeJob(node, r, join(logsLevel, role, stream))
}

// NodeJobLogsFilter matches the chunks of stream for job r from any node
// and any role ("+" for role matches any): a requester subscribes to it
// before it asks, not knowing yet which node will answer.
func NodeJobLogsFilter(r JobRef, role, stream string) string {
	return join(Root, levelNode, "+", nodeJob, r.Kind, r.Namespace, r.Name, logsLevel, role, stream)
}
