package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Model is one version of a model, whole and checked against its digest.
// Its Data never changes: a newer version is a new Model.
type Model struct {
	Key     string // Model/namespace/name
	Version uint64
	SHA256  []byte
	Format  string
	// IO is what the Model declares of an ONNX graph (api.ModelIO as
	// JSON), nil for other formats.
	IO   []byte
	Data []byte
}

// Models is the node's model cache: it fetches the versions the cloud
// offers, chunk by chunk in a window, checks every chunk and the whole,
// keeps them in the store across restarts, and swaps the current version
// atomically, so an inference that took a Model never sees half of one or a
// mix of two.
type Models struct {
	node   string
	st     store.Store
	srv    *broker.Server
	bridge *bridge.Bridge
	log    *slog.Logger
	window int
	stall  time.Duration

	mu       sync.Mutex
	fetching map[string]*modelFetch
	current  map[string]*atomic.Pointer[Model]
	wanted   map[string]bool // someone asked for it: load new versions eagerly

	corrupt  atomic.Uint64
	watchers map[chan ModelProgress]struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	// closing is set (under mu) once close has begun: nothing more is
	// started for wg then.
	closing bool
}

// ModelProgress is a step of a model transfer on the node.
type ModelProgress struct {
	Key     string
	Version uint64
	Have    int  // chunks held
	Total   int  // chunks in all
	Done    bool // whole, checked and swapped in
}

// Watch returns a channel of transfer progress (steps are dropped when the
// channel is full) and a function that ends the watch.
func (m *Models) Watch() (<-chan ModelProgress, func()) {
	ch := make(chan ModelProgress, 256)
	m.mu.Lock()
	m.watchers[ch] = struct{}{}
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		delete(m.watchers, ch)
		m.mu.Unlock()
	}
}

// notify tells the watchers; m.mu is held.
func (m *Models) notify(p ModelProgress) {
	for ch := range m.watchers {
		select {
		case ch <- p:
		default:
		}
	}
}

type modelFetch struct {
	offer     topics.ModelOffer
	have      []bool
	missing   int
	requested map[int]bool
	progress  time.Time
}

type heldModel struct {
	Version uint64 `msgpack:"v"`
	SHA256  []byte `msgpack:"sha"`
	Format  string `msgpack:"format"`
	Chunks  int    `msgpack:"chunks"`
	IO      []byte `msgpack:"io,omitempty"`
}

func newModels(node string, st store.Store, srv *broker.Server, bridge *bridge.Bridge, log *slog.Logger) *Models {
	return &Models{node: node, st: st, srv: srv, bridge: bridge, log: log.With("component", "models"), window: 8,
		stall: 30 * time.Second, fetching: map[string]*modelFetch{}, current: map[string]*atomic.Pointer[Model]{},
		wanted: map[string]bool{}, watchers: map[chan ModelProgress]struct{}{}, stop: make(chan struct{})}
}

func chunkKeyOf(key string, v uint64, i int) []byte {
	return binary.BigEndian.AppendUint32([]byte(fmt.Sprintf("c/%s/%d/", key, v)), uint32(i))
}
func chunkPrefixOf(key string, v uint64) []byte { return []byte(fmt.Sprintf("c/%s/%d/", key, v)) }
func heldKey(key string) []byte                 { return []byte("h/" + key) }
func offerKey(key string) []byte                { return []byte("o/" + key) }

// start resumes unfinished fetches and listens for chunks; it runs before
// the broker serves.
func (m *Models) start() error {
	err := m.st.Scan([]byte("o/"), nil, func(k, v []byte) error {
		var o topics.ModelOffer
		if msgpack.Unmarshal(v, &o) == nil {
			m.mu.Lock()
			m.begin(o)
			m.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	filter := topics.JobTopic(topics.JobRef{Kind: api.KindModel, Namespace: "+", Name: "+"}, "chunk")
	if _, err := m.srv.Watch(filter, func(_ string, payload []byte, _ bool) { m.onChunk(payload) }); err != nil {
		return err
	}
	m.wg.Add(1)
	go m.watchdog()
	return nil
}

func (m *Models) close() {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	close(m.stop)
	m.wg.Wait()
}

// CorruptChunks counts chunks refused for a bad digest.
func (m *Models) CorruptChunks() uint64 { return m.corrupt.Load() }

// Current returns the newest whole version of a model the node holds.
func (m *Models) Current(namespace, name string) (*Model, error) {
	key := api.KindModel + "/" + namespace + "/" + name
	m.mu.Lock()
	m.wanted[key] = true
	p := m.current[key]
	m.mu.Unlock()
	if p != nil {
		if mdl := p.Load(); mdl != nil {
			return mdl, nil
		}
	}
	mdl, err := m.loadHeld(key)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current[key] == nil {
		m.current[key] = &atomic.Pointer[Model]{}
	}
	if cur := m.current[key].Load(); cur != nil && cur.Version >= mdl.Version {
		return cur, nil
	}
	m.current[key].Store(mdl)
	return mdl, nil
}

// ErrNoModel: the node holds no whole version of the model yet.
var ErrNoModel = errors.New("edge: model not on this node yet")

func (m *Models) loadHeld(key string) (*Model, error) {
	v, err := m.st.Get(heldKey(key))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoModel, key)
	}
	var h heldModel
	if err := msgpack.Unmarshal(v, &h); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for i := 0; i < h.Chunks; i++ {
		c, err := m.st.Get(chunkKeyOf(key, h.Version, i))
		if err != nil {
			return nil, fmt.Errorf("edge: model %s v%d chunk %d: %w", key, h.Version, i, err)
		}
		buf.Write(c)
	}
	sum := sha256.Sum256(buf.Bytes())
	if !bytes.Equal(sum[:], h.SHA256) {
		return nil, fmt.Errorf("edge: model %s v%d does not match its digest", key, h.Version)
	}
	return &Model{Key: key, Version: h.Version, SHA256: h.SHA256, Format: h.Format, IO: h.IO, Data: buf.Bytes()}, nil
}

// onOffer takes the cloud's offer of a version (or its withdrawal).
func (m *Models) onOffer(key string, data []byte, deleted bool) {
	if deleted {
		m.mu.Lock()
		delete(m.fetching, key)
		m.mu.Unlock()
		var b store.Batch
		b.Delete(offerKey(key))
		_ = m.st.Write(&b)
		return
	}
	var o topics.ModelOffer
	if err := topics.Unmarshal("model offer", data, &o); err != nil || o.Key != key || o.ChunkSize <= 0 {
		m.log.Error("model offer refused", "key", key, "error", err)
		return
	}
	if v, err := m.st.Get(heldKey(key)); err == nil {
		var h heldModel
		if msgpack.Unmarshal(v, &h) == nil && h.Version >= o.Version {
			m.report(key, h.Version, h.SHA256)
			return
		}
	}
	raw, _ := msgpack.Marshal(&o)
	var b store.Batch
	b.Put(offerKey(key), raw)
	if err := m.st.Write(&b); err != nil {
		m.log.Error("model offer not kept", "key", key, "error", err)
	}
	m.mu.Lock()
	m.begin(o)
	m.mu.Unlock()
}

// begin sets up the fetch of an offer, counting the chunks already kept,
// and asks for the first window. m.mu is held.
func (m *Models) begin(o topics.ModelOffer) {
	if f, ok := m.fetching[o.Key]; ok && f.offer.Version >= o.Version {
		return
	}
	f := &modelFetch{offer: o, have: make([]bool, len(o.ChunkSHA256s)), requested: map[int]bool{}, progress: time.Now()}
	prefix := chunkPrefixOf(o.Key, o.Version)
	_ = m.st.Scan(prefix, nil, func(k, _ []byte) error {
		if len(k) == len(prefix)+4 {
			if i := int(binary.BigEndian.Uint32(k[len(prefix):])); i < len(f.have) {
				f.have[i] = true
			}
		}
		return nil
	})
	for _, h := range f.have {
		if !h {
			f.missing++
		}
	}
	m.fetching[o.Key] = f
	m.progressed(f, o.Key, o.Version)
}

// progressed tells of a fetch's progress, and completes it or asks for
// what it misses.
func (m *Models) progressed(f *modelFetch, key string, version uint64) {
	m.notify(ModelProgress{Key: key, Version: version, Have: len(f.have) - f.missing, Total: len(f.have)})
	if f.missing == 0 {
		m.completeLater(key, version)
		return
	}
	m.request(f, nil)
}

// completeLater runs complete on its own goroutine (it reads the whole
// model; the caller holds m.mu or runs on the inbox's goroutine).
func (m *Models) completeLater(key string, version uint64) {
	// A chunk the bridge delivers while the agent closes: close has
	// begun to wait, and a goroutine started now would not be waited for
	// (the node completes the fetch at its next start).
	if m.closing {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.complete(key, version)
	}()
}

// request asks for missing chunks up to the window, plus refetches.
// m.mu is held.
func (m *Models) request(f *modelFetch, refetch []int) {
	var ask []int
	for i, h := range f.have {
		if len(f.requested) >= m.window {
			break
		}
		if !h && !f.requested[i] {
			f.requested[i] = true
			ask = append(ask, i)
		}
	}
	if len(ask) == 0 && len(refetch) == 0 {
		return
	}
	ref, err := topics.ParseJobRef(f.offer.Key)
	if err != nil {
		return
	}
	env, err := topics.NewEnvelope(topics.KindModelFetch, "edge/models", topics.ModelFetch{Key: f.offer.Key, Version: f.offer.Version, Chunks: ask, Refetch: refetch})
	if err != nil {
		return
	}
	raw, err := env.Marshal()
	if err != nil {
		return
	}
	if err := m.bridge.Send(topics.StreamControl, topics.NodeJob(m.node, ref, "fetch"), raw, false); err != nil {
		m.log.Warn("model fetch not queued", "model", f.offer.Key, "error", err)
	}
}

// onChunk runs on the publisher's goroutine (the bridge's inbox), so a
// chunk is in the store before the inbox counts it delivered.
func (m *Models) onChunk(payload []byte) {
	env, err := topics.UnmarshalEnvelope(payload, topics.Limits{MaxBody: 4 << 20})
	if err != nil {
		return
	}
	var c topics.ModelChunk
	if env.DecodeBody(&c) != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.fetching[c.Key]
	if f == nil || f.offer.Version != c.Version || c.Index < 0 || c.Index >= len(f.have) || f.have[c.Index] {
		return
	}
	sum := sha256.Sum256(c.Data)
	if !bytes.Equal(sum[:], f.offer.ChunkSHA256s[c.Index]) {
		m.corrupt.Add(1)
		m.log.Warn("corrupt model chunk refused; fetching it again", "model", c.Key, "version", c.Version, "chunk", c.Index)
		m.request(f, []int{c.Index})
		return
	}
	var b store.Batch
	b.Put(chunkKeyOf(c.Key, c.Version, c.Index), c.Data)
	if err := m.st.Write(&b); err != nil {
		m.log.Error("model chunk not stored", "model", c.Key, "error", err)
		delete(f.requested, c.Index)
		return
	}
	f.have[c.Index] = true
	f.missing--
	delete(f.requested, c.Index)
	f.progress = time.Now()
	m.progressed(f, c.Key, c.Version)
}

// complete checks a fully fetched version, makes it the one held, swaps it
// in, tells the cloud and drops older versions.
func (m *Models) complete(key string, version uint64) {
	m.mu.Lock()
	f := m.fetching[key]
	if f == nil || f.offer.Version != version {
		m.mu.Unlock()
		return
	}
	o := f.offer
	m.mu.Unlock()
	h := heldModel{Version: o.Version, SHA256: o.SHA256, Format: o.Format, Chunks: len(o.ChunkSHA256s), IO: o.IO}
	whole := sha256.New()
	for i := range h.Chunks {
		c, err := m.st.Get(chunkKeyOf(key, version, i))
		if err != nil {
			m.log.Error("model chunk lost", "model", key, "chunk", i, "error", err)
			return
		}
		whole.Write(c)
	}
	if !bytes.Equal(whole.Sum(nil), o.SHA256) {
		m.log.Error("model does not match its digest; fetching it again", "model", key, "version", version)
		_ = store.DeletePrefix(m.st, chunkPrefixOf(key, version))
		m.mu.Lock()
		delete(m.fetching, key)
		m.begin(o)
		m.mu.Unlock()
		return
	}
	old, _ := m.st.Get(heldKey(key))
	raw, _ := msgpack.Marshal(&h)
	var b store.Batch
	b.Put(heldKey(key), raw)
	b.Delete(offerKey(key))
	if err := m.st.Write(&b); err != nil {
		m.log.Error("model not kept", "model", key, "error", err)
		return
	}
	m.mu.Lock()
	delete(m.fetching, key)
	wanted := m.wanted[key]
	m.mu.Unlock()
	if wanted {
		if mdl, err := m.loadHeld(key); err == nil {
			m.mu.Lock()
			if m.current[key] == nil {
				m.current[key] = &atomic.Pointer[Model]{}
			}
			m.current[key].Store(mdl) // the swap: whole versions only
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	m.notify(ModelProgress{Key: key, Version: version, Have: h.Chunks, Total: h.Chunks, Done: true})
	m.mu.Unlock()
	var prev heldModel
	if old != nil && msgpack.Unmarshal(old, &prev) == nil && prev.Version != version {
		_ = store.DeletePrefix(m.st, chunkPrefixOf(key, prev.Version))
	}
	m.log.Info("model version held", "model", key, "version", version, "size", o.Size)
	m.report(key, version, o.SHA256)
}

func (m *Models) report(key string, version uint64, sum []byte) {
	ref, err := topics.ParseJobRef(key)
	if err != nil {
		return
	}
	env, err := topics.NewEnvelope(topics.KindModelHeld, "edge/models", topics.ModelHeld{Key: key, Version: version, SHA256: sum})
	if err != nil {
		return
	}
	raw, err := env.Marshal()
	if err != nil {
		return
	}
	if err := m.bridge.Send(topics.StreamEvents, topics.NodeJob(m.node, ref, "model"), raw, false); err != nil {
		m.log.Warn("model report not queued", "model", key, "error", err)
	}
}

// watchdog asks again for chunks of a transfer that made no progress for
// the stall time (a message dropped from a full outbox, say).
func (m *Models) watchdog() {
	defer m.wg.Done()
	t := time.NewTicker(m.stall / 2)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		keys := make([]string, 0, len(m.fetching))
		for k := range m.fetching {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f := m.fetching[k]
			if f.missing == 0 || time.Since(f.progress) < m.stall {
				continue
			}
			var again []int
			for i := range f.requested {
				again = append(again, i)
			}
			sort.Ints(again)
			m.log.Warn("model transfer stalled; asking again", "model", k, "chunks", again)
			f.progress = time.Now()
			m.request(f, again)
		}
		m.mu.Unlock()
	}
}
