package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Record is one message in a Queue.
type Record struct {
	// Seq is assigned by the queue, per stream, from 1.
	Seq     uint64
	Topic   string
	Payload []byte
	Retain  bool
	QoS     byte
	// Time is when the message entered the queue.
	Time time.Time
	// Expires, if not zero, is when the message stops being worth sending.
	Expires time.Time
	// Origin is the identity the message had before it entered this queue
	// (the cloud's ingress and a node's inbox keep the sender's ID).
	Origin topics.ID
}

func (r *Record) size() int { return len(r.Payload) + len(r.Topic) + 48 }

// FullPolicy says what a full queue does with a new message.
type FullPolicy string

// The policies of a full queue.
const (
	// RefuseNew refuses the new message: the publisher gets no PUBACK
	// (MQTT 3.1.1, and it is disconnected to retry later) or a "quota
	// exceeded" reason code (MQTT 5).
	RefuseNew FullPolicy = "refuse"
	// DropOldest drops the oldest waiting messages to make room.
	DropOldest FullPolicy = "drop-oldest"
)

// ErrFull is returned by Append when the queue is full and its policy
// is RefuseNew.
var ErrFull = errors.New("broker: queue full")

// Options bound a queue.
type Options struct {
	// MaxBytes bounds the bytes waiting in all streams; 0 means no bound.
	MaxBytes int64
	// MaxAge drops messages older than this instead of sending them; 0
	// means no bound.
	MaxAge time.Duration
	// Policy is what a full queue does; default RefuseNew.
	Policy FullPolicy
	// CacheBytes bounds the in-memory copy of the newest waiting messages,
	// which spares the sender a read from disk; default 1 MiB.
	CacheBytes int
	// OnDrop is told about messages dropped by the policy or by age.
	OnDrop func(stream string, n int, reason string)
	// Metrics, if set, get the queue's backlog under Name.
	Metrics *metrics.Set
	// Name names the queue in metrics, logs and errors ("uplink").
	Name string
	// Node labels the queue's metrics with the node it is of (a node's
	// own queues); StreamsAreNodes says its streams are nodes (the cloud's
	// outbox of each), which its metrics label node, not stream.
	Node            string
	StreamsAreNodes bool
	// Logger receives the queue's warnings; default slog.Default().
	Logger *slog.Logger
	// Clock stamps appended records that have no time; nil: the system's.
	Clock func() time.Time
}

// Queue is a durable, bounded log of messages in streams, kept in a store.
// Append returns once the messages are written (with the store's write
// mode); the consumer reads them in order, and Ack marks them done; done
// messages are deleted from the store in the background. A restarted queue
// resumes with everything not yet acknowledged.
//
// Each Append is written by its caller, so concurrent appends reach the
// store together (the store group-commits them); readers see a stream only
// up to the highest seq below which every append completed, so a record is
// never read before every earlier one is on disk. A trimmer goroutine
// deletes done records, in lazy batches.
type Queue struct {
	s      store.Store // the queue's view, for reads
	root   store.Store // the store the view is of, for writes
	prefix string      // the view's prefix in root
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	streams map[string]*stream
	total   int64         // bytes waiting in all streams
	changed chan struct{} // closed and replaced when records become readable or done
	closed  bool
	async   []*asyncAppend // waiting for the async writer
	// dropNotes wait to be reported once the lock is released.
	dropNotes []dropNote

	kick      chan struct{} // the trimmer's
	asyncKick chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
}

type stream struct {
	name      string
	next      uint64              // next seq to assign
	durable   uint64              // every seq <= durable is written
	cursor    uint64              // every seq <= cursor is done
	done      map[uint64]struct{} // done seqs above cursor
	persisted uint64              // cursor value in the store
	sizes     []uint32            // sizes of seqs cursor+1 .. next-1
	bytes     int64               // bytes of seqs not done
	count     int64               // seqs not done
	cache     []Record            // contiguous records cacheFrom .. cacheFrom+len-1
	cacheFrom uint64
	cacheSize int
	writing   []*pendingAppend // appends being written, in seq order
}

// pendingAppend is the seqs first..last of an append being written.
type pendingAppend struct {
	first, last uint64
	done        bool
}

// Keys in the queue's store view.
func msgPrefix(stream string) []byte { return []byte("m/" + stream + "/") }
func msgKey(stream string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(msgPrefix(stream), seq)
}
func cursorKey(stream string) []byte { return []byte("c/" + stream) }

// Open opens the queue kept in s (give it a Sub view of its own) and
// loads what is waiting.
func Open(s store.Store, o Options) (*Queue, error) {
	if o.Policy == "" {
		o.Policy = RefuseNew
	}
	if o.Policy != RefuseNew && o.Policy != DropOldest {
		return nil, fmt.Errorf("broker: queue %s: unknown full policy %q (want refuse or drop-oldest)", o.Name, o.Policy)
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	root, prefix := store.Split(s)
	q := &Queue{s: s, root: root, prefix: prefix, opts: o, log: o.Logger, streams: map[string]*stream{},
		changed: make(chan struct{}), kick: make(chan struct{}, 1), asyncKick: make(chan struct{}, 1), stop: make(chan struct{})}
	if err := q.load(); err != nil {
		return nil, fmt.Errorf("broker: queue %s: load: %w", o.Name, err)
	}
	q.wg.Add(2)
	go q.trimmer()
	go q.asyncWriter()
	o.Metrics.WatchQueue(o.Name, q.backlog)
	return q, nil
}

func (q *Queue) load() error {
	err := q.s.Scan([]byte("c/"), nil, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("cursor %q is %d bytes", k, len(v))
		}
		st := q.streamLocked(string(k[2:]))
		st.cursor = binary.BigEndian.Uint64(v)
		st.persisted, st.durable, st.next = st.cursor, st.cursor, st.cursor+1
		return nil
	})
	if err != nil {
		return err
	}
	return q.s.Scan([]byte("m/"), nil, func(k, v []byte) error {
		rest := k[2:]
		if len(rest) < 9 || rest[len(rest)-9] != '/' {
			return fmt.Errorf("bad message key %q", k)
		}
		st := q.streamLocked(string(rest[:len(rest)-9]))
		seq := binary.BigEndian.Uint64(rest[len(rest)-8:])
		if seq <= st.cursor {
			// Done but not yet deleted when the process stopped.
			return nil
		}
		for st.next < seq {
			// A hole (a deleted record); count it as done.
			st.sizes = append(st.sizes, 0)
			st.done[st.next] = struct{}{}
			st.next++
		}
		sz := uint32(len(v))
		st.sizes = append(st.sizes, sz)
		st.bytes += int64(sz)
		st.count++
		q.total += int64(sz)
		st.next, st.durable = seq+1, seq
		return nil
	})
}

func (q *Queue) streamLocked(name string) *stream {
	st, ok := q.streams[name]
	if !ok {
		st = &stream{name: name, next: 1, done: map[uint64]struct{}{}}
		q.streams[name] = st
	}
	return st
}

// Append writes recs at the end of stream, with extra (if not nil) in the
// same atomic write, and returns the seq of the first record. The keys of
// extra are keys of the store the queue's view was made from (see
// store.Split), so other parts can commit their state with the records. It returns
// once they are in the store, or ErrFull, or the store's error.
func (q *Queue) Append(streamName string, recs []Record, extra *store.Batch) (uint64, error) {
	if len(recs) == 0 && extra == nil {
		return 0, nil
	}
	st, first, pa, err := q.reserve(streamName, recs)
	if err != nil {
		return 0, err
	}
	err = q.write(st, recs, extra)
	q.finish(st, pa, err)
	if err != nil {
		return 0, err
	}
	return first, nil
}

// AppendIfRoom is Append that never evicts: when the queue is full it
// returns ErrFull whatever the policy. For the queue's own reports (a
// report of dropped messages must not drop more of them).
func (q *Queue) AppendIfRoom(streamName string, recs []Record) (uint64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	st, first, pa, err := q.reserveEvicting(streamName, recs, false)
	if err != nil {
		return 0, err
	}
	err = q.write(st, recs, nil)
	q.finish(st, pa, err)
	if err != nil {
		return 0, err
	}
	return first, nil
}

// AppendAsync is Append for callers that must not wait: the limits are
// checked and the seqs assigned now (ErrFull is returned now), the
// records are written by the queue's writer goroutine together with every
// other asynchronous append waiting, and done is called with the result.
func (q *Queue) AppendAsync(streamName string, recs []Record, done func(error)) (uint64, error) {
	st, first, pa, err := q.reserve(streamName, recs)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	q.async = append(q.async, &asyncAppend{st: st, pa: pa, recs: recs, done: done})
	q.mu.Unlock()
	select {
	case q.asyncKick <- struct{}{}:
	default:
	}
	return first, nil
}

// SetMaxBytes changes the byte limit (0: none) from now on: a disk that
// filled up, or was freed. What is queued stays; new messages meet the
// queue's full policy.
func (q *Queue) SetMaxBytes(n int64) {
	q.mu.Lock()
	q.opts.MaxBytes = n
	q.mu.Unlock()
}

// MaxAge is the age past which a waiting message is dropped instead of
// sent (0: none), for the queue's reader to apply.
func (q *Queue) MaxAge() time.Duration { return q.opts.MaxAge }

// now is the queue's clock.
func (q *Queue) now() time.Time {
	if q.opts.Clock == nil {
		return time.Now()
	}
	return q.opts.Clock()
}

// Bytes is what the queue holds, in bytes.
func (q *Queue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// MaxBytes is the byte limit in force (0: none).
func (q *Queue) MaxBytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.opts.MaxBytes
}

type asyncAppend struct {
	st   *stream
	pa   *pendingAppend
	recs []Record
	done func(error)
}

// reserve checks the limits, assigns seqs, caches the records and marks
// them as being written. Drops it made to keep the limit are reported after
// the lock is released: the report may append to this very queue (the
// bridge sends an error event), which would otherwise deadlock.
func (q *Queue) reserve(streamName string, recs []Record) (*stream, uint64, *pendingAppend, error) {
	return q.reserveEvicting(streamName, recs, true)
}

func (q *Queue) reserveEvicting(streamName string, recs []Record, evict bool) (*stream, uint64, *pendingAppend, error) {
	st, first, pa, err := q.reserveLocked(streamName, recs, evict)
	q.mu.Lock()
	notes := q.dropNotes
	q.dropNotes = nil
	q.mu.Unlock()
	if q.opts.OnDrop != nil {
		for _, n := range notes {
			q.opts.OnDrop(n.stream, n.n, n.reason)
		}
	}
	return st, first, pa, err
}

type dropNote struct {
	stream, reason string
	n              int
}

func (q *Queue) reserveLocked(streamName string, recs []Record, evict bool) (*stream, uint64, *pendingAppend, error) {
	size := int64(0)
	for i := range recs {
		size += int64(recs[i].size())
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, 0, nil, store.ErrClosed
	}
	if len(recs) == 0 {
		return nil, 0, nil, nil
	}
	st := q.streamLocked(streamName)
	if q.opts.MaxBytes > 0 && q.total+size > q.opts.MaxBytes {
		if q.opts.Policy == RefuseNew || !evict || !q.dropOldestLocked(st, q.total+size-q.opts.MaxBytes) {
			return nil, 0, nil, fmt.Errorf("%w: %s holds %d bytes, limit %d", ErrFull, q.opts.Name, q.total, q.opts.MaxBytes)
		}
	}
	first := st.next
	now := q.now()
	for i := range recs {
		r := &recs[i]
		r.Seq = st.next
		if r.Time.IsZero() {
			r.Time = now
		}
		st.next++
		sz := r.size()
		st.sizes = append(st.sizes, uint32(sz))
		st.bytes += int64(sz)
		st.count++
		q.total += int64(sz)
		if st.cacheFrom+uint64(len(st.cache)) == r.Seq && st.cacheSize+sz <= q.opts.CacheBytes {
			if len(st.cache) == 0 {
				st.cacheFrom = r.Seq
			}
			st.cache = append(st.cache, *r)
			st.cacheSize += sz
		}
	}
	pa := &pendingAppend{first: first, last: st.next - 1}
	st.writing = append(st.writing, pa)
	return st, first, pa, nil
}

// finish records the result of writing an append.
func (q *Queue) finish(st *stream, pa *pendingAppend, err error) {
	if pa == nil {
		return
	}
	q.mu.Lock()
	if err != nil {
		q.failLocked(st, pa)
	}
	pa.done = true
	q.advanceLocked(st)
	q.mu.Unlock()
}

// asyncWriter writes the asynchronous appends waiting, many in one store
// write, and calls their done functions.
func (q *Queue) asyncWriter() {
	defer q.wg.Done()
	for {
		select {
		case <-q.asyncKick:
		case <-q.stop:
			q.writeAsync()
			return
		}
		q.writeAsync()
	}
}

func (q *Queue) writeAsync() {
	limit := q.batchLimit()
	for {
		q.mu.Lock()
		reqs := q.async
		q.async = nil
		q.mu.Unlock()
		if len(reqs) == 0 {
			return
		}
		for len(reqs) > 0 {
			var b store.Batch
			n := 0
			for n < len(reqs) {
				r := reqs[n]
				size := 0
				for i := range r.recs {
					size += r.recs[i].size() + 16 + store.RecordOverhead
				}
				if n > 0 && b.Size()+store.RecordOverhead*b.Len()+size > limit {
					break
				}
				for i := range r.recs {
					b.Put(q.abs(msgKey(r.st.name, r.recs[i].Seq)), encodeRecord(&r.recs[i]))
				}
				n++
			}
			err := q.root.Write(&b)
			for _, r := range reqs[:n] {
				q.finish(r.st, r.pa, err)
				r.done(err)
			}
			reqs = reqs[n:]
		}
	}
}

func (q *Queue) batchLimit() int {
	if m, ok := q.root.(interface{ MaxBatchBytes() int }); ok {
		return m.MaxBatchBytes() * 3 / 4
	}
	return 512 << 10
}

// write puts an append's records and extra ops in the store: one atomic
// write if it fits a transaction, else several, the extra ops last (so a
// crash in between repeats records rather than losing them).
func (q *Queue) write(st *stream, recs []Record, extra *store.Batch) error {
	limit := q.batchLimit()
	var b store.Batch
	for i := range recs {
		v := encodeRecord(&recs[i])
		k := q.abs(msgKey(st.name, recs[i].Seq))
		if b.Len() > 0 && b.Size()+store.RecordOverhead*(b.Len()+1)+len(k)+len(v) > limit {
			if err := q.root.Write(&b); err != nil {
				return err
			}
			b = store.Batch{}
		}
		b.Put(k, v)
	}
	if extra != nil {
		if b.Len() > 0 && b.Size()+extra.Size()+store.RecordOverhead*(b.Len()+extra.Len()) > limit {
			if err := q.root.Write(&b); err != nil {
				return err
			}
			b = store.Batch{}
		}
		for _, op := range extra.Ops() {
			if op.Delete {
				b.Delete(op.Key)
			} else {
				b.Put(op.Key, op.Value)
			}
		}
	}
	return q.root.Write(&b)
}

// advanceLocked moves a stream's durable mark over the appends that
// completed in order, and wakes readers.
func (q *Queue) advanceLocked(st *stream) {
	moved := false
	for len(st.writing) > 0 && st.writing[0].done {
		if st.writing[0].last > st.durable {
			st.durable = st.writing[0].last
		}
		st.writing[0] = nil
		st.writing = st.writing[1:]
		moved = true
	}
	if len(st.writing) == 0 {
		st.writing = nil
	}
	if moved {
		// Seqs marked done while still being written can now count.
		for {
			if _, ok := st.done[st.cursor+1]; !ok || st.cursor+1 > st.durable {
				break
			}
			delete(st.done, st.cursor+1)
			st.cursor++
			st.sizes = st.sizes[1:]
		}
		q.trimCacheLocked(st)
		q.signalLocked()
	}
}

// failLocked forgets the records of a failed append: they were never
// written, so they count as done (holes the sender skips and the far side
// learns about from the frame's floor).
func (q *Queue) failLocked(st *stream, pa *pendingAppend) {
	for seq := pa.first; seq <= pa.last; seq++ {
		if _, ok := st.done[seq]; ok {
			continue
		}
		sz := int64(st.sizes[seq-st.cursor-1])
		st.bytes -= sz
		st.count--
		q.total -= sz
		st.done[seq] = struct{}{}
	}
	for seq := pa.first; seq <= pa.last; seq++ {
		if seq >= st.cacheFrom && seq < st.cacheFrom+uint64(len(st.cache)) {
			// Cut the cache before the failed records.
			n := int(seq - st.cacheFrom)
			for _, r := range st.cache[n:] {
				st.cacheSize -= r.size()
			}
			st.cache = st.cache[:n]
			break
		}
	}
}

func (q *Queue) poke() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// dropOldestLocked marks the oldest waiting records done until need bytes
// are free: first of st, then of the other streams. It reports whether it
// freed enough.
func (q *Queue) dropOldestLocked(st *stream, need int64) bool {
	order := []*stream{st}
	for _, o := range q.sortedStreamsLocked() {
		if o != st {
			order = append(order, o)
		}
	}
	freed, dropped := int64(0), map[string]int{}
	for _, s := range order {
		for seq := s.cursor + 1; seq <= s.durable && freed < need; seq++ {
			if _, ok := s.done[seq]; ok {
				continue
			}
			freed += int64(s.sizes[seq-s.cursor-1])
			q.markDoneLocked(s, seq)
			dropped[s.name]++
		}
	}
	for name, n := range dropped {
		if q.opts.Metrics != nil {
			q.opts.Metrics.Dropped.WithLabelValues(q.opts.Name, "full").Add(float64(n))
		}
		q.dropNotes = append(q.dropNotes, dropNote{stream: name, n: n, reason: "full"})
		q.log.Warn("queue full: dropped the oldest messages", "queue", q.opts.Name, "stream", name, "messages", n)
	}
	if len(dropped) > 0 {
		q.signalLocked()
		q.poke()
	}
	return freed >= need
}

func (q *Queue) sortedStreamsLocked() []*stream {
	out := make([]*stream, 0, len(q.streams))
	for _, s := range q.streams {
		out = append(out, s)
	}
	// Lowest priority first: drop bulk before control.
	sort.Slice(out, func(i, j int) bool {
		pi, pj := topics.Stream(out[i].name).Priority(), topics.Stream(out[j].name).Priority()
		if pi != pj {
			return pi > pj
		}
		return out[i].name < out[j].name
	})
	return out
}

// markDoneLocked marks seq of s done and advances the cursor.
func (q *Queue) markDoneLocked(s *stream, seq uint64) bool {
	if seq <= s.cursor || seq >= s.next {
		return false
	}
	if _, ok := s.done[seq]; ok {
		return false
	}
	sz := int64(s.sizes[seq-s.cursor-1])
	s.bytes -= sz
	s.count--
	q.total -= sz
	s.done[seq] = struct{}{}
	for {
		if _, ok := s.done[s.cursor+1]; !ok || s.cursor+1 > s.durable {
			break
		}
		delete(s.done, s.cursor+1)
		s.cursor++
		s.sizes = s.sizes[1:]
	}
	q.trimCacheLocked(s)
	return true
}

func (q *Queue) trimCacheLocked(s *stream) {
	for len(s.cache) > 0 && s.cacheFrom <= s.cursor {
		s.cacheSize -= s.cache[0].size()
		s.cache[0] = Record{}
		s.cache = s.cache[1:]
		s.cacheFrom++
	}
	if len(s.cache) == 0 && len(s.writing) == 0 {
		s.cache, s.cacheSize, s.cacheFrom = nil, 0, s.next
	}
}

// Ack marks seqs of stream done (sent and acknowledged, expired, or given
// up); it returns how many were newly done.
func (q *Queue) Ack(streamName string, seqs ...uint64) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	st, ok := q.streams[streamName]
	if !ok {
		return 0
	}
	n := 0
	for _, seq := range seqs {
		if q.markDoneLocked(st, seq) {
			n++
		}
	}
	if n > 0 {
		q.signalLocked()
		if st.cursor-st.persisted >= 256 {
			q.poke()
		}
	}
	return n
}

// AckThrough marks every seq of stream up to and including seq done.
func (q *Queue) AckThrough(streamName string, seq uint64) int {
	q.mu.Lock()
	st, ok := q.streams[streamName]
	var seqs []uint64
	if ok {
		for s := st.cursor + 1; s <= seq && s <= st.durable; s++ {
			if _, d := st.done[s]; !d {
				seqs = append(seqs, s)
			}
		}
	}
	q.mu.Unlock()
	return q.Ack(streamName, seqs...)
}

func (q *Queue) signalLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change: records became
// readable, or records were done.
func (q *Queue) Changed() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.changed
}

// Read returns up to maxMsgs written, not-done records of stream with
// seq >= from, in order, stopping before maxBytes is exceeded (at least
// one record is returned if any is waiting). next is the seq to read from
// afterwards.
func (q *Queue) Read(streamName string, from uint64, maxMsgs, maxBytes int) (recs []Record, next uint64, err error) {
	q.mu.Lock()
	st, ok := q.streams[streamName]
	if !ok {
		q.mu.Unlock()
		return nil, from, nil
	}
	if from <= st.cursor {
		from = st.cursor + 1
	}
	durable := st.durable
	size := 0
	seq := from
	for ; seq <= durable && len(recs) < maxMsgs; seq++ {
		if _, d := st.done[seq]; d {
			continue
		}
		if seq < st.cacheFrom || seq >= st.cacheFrom+uint64(len(st.cache)) {
			break // not cached: read from the store below
		}
		r := st.cache[seq-st.cacheFrom]
		if len(recs) > 0 && size+r.size() > maxBytes {
			q.mu.Unlock()
			return recs, seq, nil
		}
		size += r.size()
		recs = append(recs, r)
	}
	if seq > durable || len(recs) >= maxMsgs {
		q.mu.Unlock()
		return recs, seq, nil
	}
	done := make(map[uint64]struct{}, len(st.done))
	for k := range st.done {
		done[k] = struct{}{}
	}
	q.mu.Unlock()
	// Read the rest from the store.
	next = seq
	err = q.s.Scan(msgPrefix(streamName), msgKey(streamName, seq), func(k, v []byte) error {
		s := binary.BigEndian.Uint64(k[len(k)-8:])
		if s > durable || len(recs) >= maxMsgs {
			return store.ErrStop
		}
		next = s + 1
		if _, d := done[s]; d {
			return nil
		}
		r, err := decodeRecord(v)
		if err != nil {
			q.log.Error("queue: unreadable record skipped", "queue", q.opts.Name, "stream", streamName, "seq", s, "error", err)
			return nil
		}
		if len(recs) > 0 && size+r.size() > maxBytes {
			next = s
			return store.ErrStop
		}
		r.Seq = s
		size += r.size()
		recs = append(recs, r)
		return nil
	})
	return recs, next, err
}

// Cursor returns the seq up to which stream is done, and the highest seq
// written.
func (q *Queue) Cursor(streamName string) (done, written uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if st, ok := q.streams[streamName]; ok {
		return st.cursor, st.durable
	}
	return 0, 0
}

// Streams returns the names of the streams that hold or held messages.
func (q *Queue) Streams() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, 0, len(q.streams))
	for name := range q.streams {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// StreamStats is the backlog of one stream.
type StreamStats struct {
	Stream   string
	Messages int64
	Bytes    int64
	Oldest   time.Time // of the oldest waiting message, zero if none
}

// Stats returns the backlog of every stream.
func (q *Queue) Stats() []StreamStats {
	q.mu.Lock()
	type probe struct {
		st     StreamStats
		oldest uint64
	}
	var ps []probe
	for _, st := range q.streams {
		p := probe{st: StreamStats{Stream: st.name, Messages: st.count, Bytes: st.bytes}}
		for seq := st.cursor + 1; seq <= st.durable; seq++ {
			if _, d := st.done[seq]; d {
				continue
			}
			if seq >= st.cacheFrom && seq < st.cacheFrom+uint64(len(st.cache)) {
				p.st.Oldest = st.cache[seq-st.cacheFrom].Time
			} else {
				p.oldest = seq
			}
			break
		}
		ps = append(ps, p)
	}
	q.mu.Unlock()
	out := make([]StreamStats, len(ps))
	for i, p := range ps {
		if p.oldest != 0 {
			if v, err := q.s.Get(msgKey(p.st.Stream, p.oldest)); err == nil {
				if r, err := decodeRecord(v); err == nil {
					p.st.Oldest = r.Time
				}
			}
		}
		out[i] = p.st
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

// backlog is Stats as the metrics show it.
func (q *Queue) backlog() []metrics.Backlog {
	stats := q.Stats()
	out := make([]metrics.Backlog, len(stats))
	for i, st := range stats {
		out[i] = metrics.Backlog{Stream: st.Stream, Node: q.opts.Node, Messages: st.Messages, Bytes: st.Bytes, Oldest: st.Oldest}
		if q.opts.StreamsAreNodes {
			out[i].Stream, out[i].Node = "", st.Stream
		}
	}
	return out
}

// trimmer deletes done records and stores the cursors, lazily: at a tick,
// when many records are done (Ack pokes it), and at Close.
func (q *Queue) trimmer() {
	defer q.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-q.kick:
		case <-tick.C:
		case <-q.stop:
			q.trim()
			return
		}
		q.trim()
	}
}

func (q *Queue) trim() {
	type span struct {
		name     string
		from, to uint64
	}
	q.mu.Lock()
	var spans []span
	for _, st := range q.streams {
		if st.cursor > st.persisted {
			spans = append(spans, span{st.name, st.persisted + 1, st.cursor})
		}
	}
	q.mu.Unlock()
	limit := q.batchLimit()
	for _, sp := range spans {
		var b store.Batch
		b.SetLazy()
		for seq := sp.from; seq <= sp.to; seq++ {
			b.Delete(q.abs(msgKey(sp.name, seq)))
			if b.Size()+store.RecordOverhead*(b.Len()+1) > limit {
				if err := q.root.Write(&b); err != nil {
					q.log.Warn("queue: trim failed", "queue", q.opts.Name, "error", err)
					return
				}
				b = store.Batch{}
				b.SetLazy()
			}
		}
		b.Put(q.abs(cursorKey(sp.name)), binary.BigEndian.AppendUint64(nil, sp.to))
		if err := q.root.Write(&b); err != nil {
			q.log.Warn("queue: trim failed", "queue", q.opts.Name, "error", err)
			return
		}
		q.mu.Lock()
		if st := q.streams[sp.name]; st != nil && sp.to > st.persisted {
			st.persisted = sp.to
		}
		q.mu.Unlock()
	}
}

func (q *Queue) abs(key []byte) []byte { return append([]byte(q.prefix), key...) }

// Close stores what is done and stops the trimmer. Appends in progress
// finish; later ones fail with store.ErrClosed. It does not close the store.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
	return nil
}

// Record encoding: version, flags (bit 0 retain, bits 1-2 QoS, bit 3
// origin present), time, expires, topic, origin, payload.
func encodeRecord(r *Record) []byte {
	b := make([]byte, 0, r.size()+len(r.Origin.Node)+16)
	flags := byte(r.QoS&3) << 1
	if r.Retain {
		flags |= 1
	}
	if !r.Origin.IsZero() {
		flags |= 8
	}
	b = append(b, 1, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(unixNanos(r.Time)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNanos(r.Expires)))
	b = binary.AppendUvarint(b, uint64(len(r.Topic)))
	b = append(b, r.Topic...)
	if !r.Origin.IsZero() {
		b = binary.AppendUvarint(b, uint64(len(r.Origin.Node)))
		b = append(b, r.Origin.Node...)
		b = binary.AppendUvarint(b, uint64(len(r.Origin.Stream)))
		b = append(b, r.Origin.Stream...)
		b = binary.BigEndian.AppendUint64(b, r.Origin.Epoch)
		b = binary.BigEndian.AppendUint64(b, r.Origin.Seq)
	}
	return append(b, r.Payload...)
}

func decodeRecord(b []byte) (Record, error) {
	var r Record
	bad := func(what string) (Record, error) { return Record{}, fmt.Errorf("record: bad %s", what) }
	if len(b) < 18 || b[0] != 1 {
		return bad("header")
	}
	flags := b[1]
	r.Retain, r.QoS = flags&1 != 0, (flags>>1)&3
	r.Time = fromUnixNanos(int64(binary.BigEndian.Uint64(b[2:])))
	r.Expires = fromUnixNanos(int64(binary.BigEndian.Uint64(b[10:])))
	b = b[18:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	var ok bool
	if r.Topic, ok = str(); !ok {
		return bad("topic")
	}
	if flags&8 != 0 {
		if r.Origin.Node, ok = str(); !ok {
			return bad("origin node")
		}
		s, ok := str()
		if !ok || len(b) < 16 {
			return bad("origin")
		}
		r.Origin.Stream = topics.Stream(s)
		r.Origin.Epoch = binary.BigEndian.Uint64(b)
		r.Origin.Seq = binary.BigEndian.Uint64(b[8:])
		b = b[16:]
	}
	r.Payload = append([]byte{}, b...)
	return r, nil
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
