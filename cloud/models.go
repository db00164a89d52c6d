package cloud

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// The model registry: every version of a Model is a blob in the store,
// chunked, with a digest per chunk and for the whole. Nodes that run a
// worker using a Model get an offer (a spec: version, size, digests) in
// their outbox; they pull the chunks they lack, in a window, and say which
// version they hold. A chunk already on its way to a node is not sent again
// unless the node asks for it as a refetch (it was corrupt, or the
// transfer stalled), so a link drop or a restart costs no chunk twice.

// ModelChunkSize is the size of model chunks on the wire and in the store.
const ModelChunkSize = 256 << 10

type modelVersion struct {
	Version   uint64            `msgpack:"v"`
	SHA256    []byte            `msgpack:"sha"`
	Size      int64             `msgpack:"size"`
	ChunkSize int               `msgpack:"cs"`
	Chunks    [][]byte          `msgpack:"chunks"` // sha256 of each chunk
	Format    string            `msgpack:"format"`
	Source    string            `msgpack:"source"`
	Metrics   map[string]string `msgpack:"metrics,omitempty"`
	Created   int64             `msgpack:"created"`
	IO        []byte            `msgpack:"io,omitempty"` // api.ModelIO as JSON (ONNX)
}

func modelKey(ns, name string) string { return ns + "/" + name }

func registryKey(ns, name string) []byte { return []byte("mv/" + modelKey(ns, name)) }

func blobKey(ns, name string, v uint64) string { return fmt.Sprintf("mb/%s/%s/%d", ns, name, v) }

func offeredKey(node, ns, name string) []byte { return []byte("mo/" + node + "/" + modelKey(ns, name)) }

func queuedKey(node, ns, name string, v uint64) []byte {
	return []byte(fmt.Sprintf("mq/%s/%s/%d", node, modelKey(ns, name), v))
}

// versions returns the registry of a model, oldest first; none for a
// model never registered. A registry that cannot be read or decoded is an
// error, never "no versions": the next version would be numbered 1 again
// and the registry written over.
func (c *ControlPlane) versions(ns, name string) ([]modelVersion, error) {
	v, err := c.st.Get(registryKey(ns, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model registry of %s/%s: %w", ns, name, err)
	}
	var vs []modelVersion
	if err := msgpack.Unmarshal(v, &vs); err != nil {
		return nil, fmt.Errorf("model registry of %s/%s does not decode: %w", ns, name, err)
	}
	return vs, nil
}

// latest returns the newest version of a model; ok is false when it has
// none.
func (c *ControlPlane) latest(ns, name string) (mv modelVersion, ok bool, err error) {
	vs, err := c.versions(ns, name)
	if err != nil || len(vs) == 0 {
		return modelVersion{}, false, err
	}
	return vs[len(vs)-1], true, nil
}

// chunkHasher hashes each chunk of what is read through it, in step with
// store.PutBlob, which reads whole chunks.
type chunkHasher struct {
	r      io.Reader
	size   int
	n      int
	h      hash.Hash
	chunks [][]byte
}

func (ch *chunkHasher) Read(p []byte) (int, error) {
	if rest := ch.size - ch.n; len(p) > rest {
		p = p[:rest]
	}
	n, err := ch.r.Read(p)
	ch.h.Write(p[:n])
	ch.n += n
	if ch.n == ch.size {
		ch.flush()
	}
	if errors.Is(err, io.EOF) {
		ch.flush()
	}
	return n, err
}

func (ch *chunkHasher) flush() {
	if ch.n > 0 {
		ch.chunks = append(ch.chunks, ch.h.Sum(nil))
	}
	ch.h.Reset()
	ch.n = 0
}

// register stores r as the next version of a model unless it is the same
// as the latest one.
// decl is what the Model declares of an ONNX graph (ioOf); a change of
// the format or of decl with the same bytes is a new version too, since the
// nodes serve the bytes as declared.
func (c *ControlPlane) register(ns, name, format string, decl []byte, source string, metrics map[string]string, r io.Reader) (modelVersion, bool, error) {
	vs, err := c.versions(ns, name)
	if err != nil {
		return modelVersion{}, false, err
	}
	next := uint64(1)
	if len(vs) > 0 {
		next = vs[len(vs)-1].Version + 1
	}
	ch := &chunkHasher{r: r, size: ModelChunkSize, h: sha256.New()}
	info, err := store.PutBlob(c.st, blobKey(ns, name, next), ch, ModelChunkSize)
	if err != nil {
		return modelVersion{}, false, err
	}
	ch.flush()
	if len(ch.chunks) != info.Chunks {
		_ = store.DeleteBlob(c.st, blobKey(ns, name, next))
		return modelVersion{}, false, fmt.Errorf("model %s: %d chunk digests for %d chunks", name, len(ch.chunks), info.Chunks)
	}
	if last := len(vs) - 1; last >= 0 && bytes.Equal(vs[last].SHA256, info.SHA256[:]) && vs[last].Format == format && bytes.Equal(vs[last].IO, decl) {
		_ = store.DeleteBlob(c.st, blobKey(ns, name, next))
		return vs[len(vs)-1], false, nil
	}
	mv := modelVersion{Version: next, SHA256: info.SHA256[:], Size: info.Size, ChunkSize: ModelChunkSize, Chunks: ch.chunks,
		Format: format, Source: source, Metrics: metrics, Created: c.cfg.Now().UnixNano(), IO: decl}
	vs = append(vs, mv)
	raw, err := msgpack.Marshal(vs)
	if err != nil {
		return modelVersion{}, false, err
	}
	var b store.Batch
	b.Put(registryKey(ns, name), raw)
	if err := c.st.Write(&b); err != nil {
		return modelVersion{}, false, err
	}
	return mv, true, nil
}

// ioOf is what a Model of format declares of its ONNX graph, as JSON;
// nil for other formats and for a Model that declares nothing.
func ioOf(format string, spec *api.ModelSpec) []byte {
	if format != api.FormatONNX || !spec.Declared() {
		return nil
	}
	b, err := json.Marshal(spec.ModelIO)
	if err != nil {
		return nil
	}
	return b
}

func modelFile(url string) (string, bool) {
	switch {
	case strings.HasPrefix(url, "file://"):
		return strings.TrimPrefix(url, "file://"), true
	case strings.HasPrefix(url, "/"):
		return url, true
	}
	return "", false
}

// openConfined opens path if it lies in one of dirs, and never a file
// elsewhere: not through "..", not through a symbolic link that leads out
// of the directory (os.Root), not a relative path. The cloud reads the
// files resources name (a Model's url, a job's validation set) so.
func openConfined(path string, dirs []string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%q is not an absolute path", path)
	}
	clean := filepath.Clean(path)
	for _, d := range dirs {
		rel, err := filepath.Rel(filepath.Clean(d), clean)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue
		}
		root, err := os.OpenRoot(d)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		return root.Open(rel)
	}
	return nil, fmt.Errorf("%w: %s is outside the directories the cloud reads files from (%s)", errOutside, path, strings.Join(dirs, ", "))
}

var errOutside = errors.New("not in a directory the cloud reads from")

// importModel registers the file a Model's url names on this machine, when
// there is one in the model directories, and sets the Model's status from
// the registry.
func (c *ControlPlane) importModel(e *entry) {
	spec, ok := e.res.Spec.(*api.ModelSpec)
	if !ok {
		return
	}
	ns, name := e.res.Metadata.Namespace, e.res.Metadata.Name
	metrics := map[string]string{}
	for _, m := range spec.Metrics {
		metrics[m.Key] = m.Value
	}
	if path, ok := modelFile(spec.URL); ok {
		f, err := openConfined(path, c.cfg.Access.ModelDirs)
		switch {
		case err == nil:
			mv, added, err := c.register(ns, name, spec.Format, ioOf(spec.Format, spec), path, metrics, f)
			f.Close()
			if err != nil {
				c.log.Error("model not registered", "model", e.res.Key(), "error", err)
				break
			}
			if added {
				c.event(e, "Normal", "VersionRegistered", fmt.Sprintf("version %d from %s (%d bytes, sha256:%x)", mv.Version, path, mv.Size, mv.SHA256))
			}
		case errors.Is(err, os.ErrNotExist):
			// A push may register it instead.
		case errors.Is(err, errOutside):
			// Sedna's urls name paths on the nodes or in storage; the cloud
			// reads its own model directories only. A push registers it.
			c.log.Info("model url not read: outside the model directories", "model", e.res.Key(), "url", spec.URL)
		default:
			c.log.Warn("model file not read", "model", e.res.Key(), "error", err)
			c.event(e, "Warning", "ModelFileNotRead", err.Error())
		}
	}
	c.modelStatus(e)
}

// modelStatus copies the registry's latest version into the Model's status.
func (c *ControlPlane) modelStatus(e *entry) {
	ns, name := e.res.Metadata.Namespace, e.res.Metadata.Name
	mv, ok, err := c.latest(ns, name)
	if err != nil {
		c.log.Error("model status not updated", "model", e.res.Key(), "error", err)
		return
	}
	if !ok {
		return
	}
	nodes := map[string]uint64{}
	if e.status.Model != nil {
		nodes = e.status.Model.Nodes
	}
	e.status.Model = &api.ModelStatus{Version: mv.Version, Digest: "sha256:" + hex.EncodeToString(mv.SHA256), Size: mv.Size,
		Format: mv.Format, Source: mv.Source, Metrics: mv.Metrics, Nodes: nodes}
}

// modelWaits says what a Model waits for: a version to exist.
func (c *ControlPlane) modelWaits(e *entry) string {
	if e.res.Kind != api.KindModel {
		return ""
	}
	_, ok, err := c.latest(e.res.Metadata.Namespace, e.res.Metadata.Name)
	if err != nil {
		return "the model registry to be readable (" + err.Error() + ")"
	}
	if ok {
		return ""
	}
	spec := e.res.Spec.(*api.ModelSpec)
	if _, local := modelFile(spec.URL); !local {
		return fmt.Sprintf("a version of the model (push one: sedna model push %s FILE; a training job that names it registers its own)", e.res.Metadata.Name)
	}
	return fmt.Sprintf("a model file: %s is not in the cloud's model directories (%s; push one: sedna model push %s FILE; a training job that names it registers its own)",
		spec.URL, strings.Join(c.cfg.Access.ModelDirs, ", "), e.res.Metadata.Name)
}

// offerModels sends every node the latest version of each Model its
// workers use, unless it was offered already.
func (c *ControlPlane) offerModels() {
	for _, e := range c.sorted() {
		if !c.placesModels(e) {
			continue
		}
		ns := e.res.Metadata.Namespace
		for node, models := range e.res.NodeModels() {
			if node == c.cfg.Name {
				continue
			}
			for _, name := range models {
				c.offer(node, ns, name)
			}
		}
	}
}

func (c *ControlPlane) offer(node, ns, name string) {
	mv, ok, err := c.latest(ns, name)
	if err != nil {
		c.log.Error("model not offered", "node", node, "model", modelKey(ns, name), "error", err)
		return
	}
	if !ok {
		return
	}
	v, err := c.st.Get(offeredKey(node, ns, name))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Error("model not offered: offer state unreadable", "node", node, "model", modelKey(ns, name), "error", err)
		return
	}
	if err == nil && len(v) == 8 && binary.BigEndian.Uint64(v) >= mv.Version {
		return
	}
	ref := topics.JobRef{Kind: api.KindModel, Namespace: ns, Name: name}
	offer := topics.ModelOffer{Key: ref.String(), Version: mv.Version, Format: mv.Format, Size: mv.Size, ChunkSize: mv.ChunkSize,
		SHA256: mv.SHA256, ChunkSHA256s: mv.Chunks, IO: mv.IO}
	data, err := msgpack.Marshal(&offer)
	if err != nil {
		return
	}
	// Versions never go back (the registry outlives a deleted Model), so
	// the version alone orders a model's offers.
	if err := c.fx.sendSpec(node, ref, topics.Spec{Generation: mv.Version, Data: data}); err != nil {
		c.log.Error("model offer not queued", "node", node, "model", ref.String(), "error", err)
		return
	}
	var b store.Batch
	b.Put(offeredKey(node, ns, name), binary.BigEndian.AppendUint64(nil, mv.Version))
	if err := c.st.Write(&b); err != nil {
		c.log.Error("model offer not recorded", "error", err)
	}
	if e, ok := c.res[ref.String()]; ok && e.status.Model != nil {
		if _, known := e.status.Model.Nodes[node]; !known {
			e.status.Model.Nodes[node] = 0
			c.publishStatus(e)
		}
	}
}

// fetch sends a node the chunks it asks for, skipping those already on
// their way unless they are refetches.
func (c *ControlPlane) fetch(node string, ref topics.JobRef, f topics.ModelFetch) {
	if !c.needs(node, ref.Namespace, ref.Name) {
		c.log.Warn("model fetch refused: no job places this model on the node", "node", node, "model", ref.String())
		return
	}
	vs, err := c.versions(ref.Namespace, ref.Name)
	if err != nil {
		c.log.Error("model fetch not served", "node", node, "model", ref.String(), "error", err)
		return
	}
	var mv *modelVersion
	for _, v := range vs {
		if v.Version == f.Version {
			mv = &v
		}
	}
	if mv == nil {
		c.log.Warn("fetch of an unknown model version", "node", node, "model", ref.String(), "version", f.Version)
		return
	}
	info, err := store.StatBlob(c.st, blobKey(ref.Namespace, ref.Name, mv.Version))
	if err != nil {
		c.log.Error("model blob missing", "model", ref.String(), "version", mv.Version, "error", err)
		return
	}
	qk := queuedKey(node, ref.Namespace, ref.Name, mv.Version)
	queued, err := c.st.Get(qk)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Error("model fetch not served: queue state unreadable", "node", node, "model", ref.String(), "error", err)
		return
	}
	queued = append([]byte(nil), queued...)
	if need := (info.Chunks + 7) / 8; len(queued) < need {
		queued = append(queued, make([]byte, need-len(queued))...)
	}
	send := func(i int, again bool) {
		if i < 0 || i >= info.Chunks || !again && queued[i/8]&(1<<(i%8)) != 0 {
			return
		}
		data, err := store.ReadChunk(c.st, info, i)
		if err != nil {
			c.log.Error("model chunk not read", "model", ref.String(), "chunk", i, "error", err)
			return
		}
		env, err := topics.NewEnvelope(topics.KindModelChunk, "cloud/models", topics.ModelChunk{Key: ref.String(), Version: mv.Version, Index: i, Data: data})
		if err != nil {
			return
		}
		raw, err := env.Marshal()
		if err != nil {
			return
		}
		if _, err := c.cfg.Downlink.Send(node, topics.ToNodeJob(node, ref, "chunk"), raw, false, 1, 0); err != nil {
			c.log.Error("model chunk not queued", "node", node, "chunk", i, "error", err)
			return
		}
		queued[i/8] |= 1 << (i % 8)
		c.chunksSent.Add(1)
	}
	for _, i := range f.Chunks {
		send(i, false)
	}
	for _, i := range f.Refetch {
		send(i, true)
	}
	var b store.Batch
	b.Put(qk, queued)
	if err := c.st.Write(&b); err != nil {
		c.log.Error("model queue state not stored", "error", err)
	}
}

// needs reports whether a job places the model ns/name on node: a node
// downloads only the models its own workers use.
func (c *ControlPlane) needs(node, ns, name string) bool {
	for _, e := range c.res {
		if e.res.Metadata.Namespace == ns && c.placesModels(e) && slices.Contains(e.res.NodeModels()[node], name) {
			return true
		}
	}
	return false
}

// placesModels reports whether e is a job whose models its nodes get now:
// not a Model or Dataset, and not waiting for a resource it names.
func (c *ControlPlane) placesModels(e *entry) bool {
	return e.res.Kind != api.KindModel && e.res.Kind != api.KindDataset && !c.waitsForResources(e)
}

// held records the version a node holds.
func (c *ControlPlane) held(node string, ref topics.JobRef, h topics.ModelHeld) {
	e, ok := c.res[ref.String()]
	if !ok || e.status.Model == nil {
		return
	}
	if _, offered := e.status.Model.Nodes[node]; !offered && !c.needs(node, ref.Namespace, ref.Name) {
		c.log.Warn("a report of a model the node was never offered: ignored", "node", node, "model", ref.String())
		return
	}
	if e.status.Model.Nodes == nil {
		e.status.Model.Nodes = map[string]uint64{}
	}
	e.status.Model.Nodes[node] = h.Version
	c.event(e, "Normal", "ModelHeld", fmt.Sprintf("node %s holds version %d (sha256:%x)", node, h.Version, h.SHA256))
	if err := c.save(e); err != nil {
		c.log.Error("status not stored", "key", e.res.Key(), "error", err)
	}
	c.publishStatus(e)
}

// push takes one piece of a `sedna model push`.
func (c *ControlPlane) push(req topics.APIRequest) topics.APIReply {
	u := req.Upload
	if u == nil || u.ID == "" || topics.ValidateName("upload", u.ID) != nil {
		return topics.APIReply{Error: "model push: no valid upload id"}
	}
	ns := req.Namespace
	if ns == "" {
		ns = "default"
	}
	if err := topics.ValidateName("model", req.Name); err != nil {
		return topics.APIReply{Error: "model push: " + err.Error()}
	}
	if u.Last && u.Index == 0 && len(u.Data) == 0 {
		return topics.APIReply{Error: "model push: the file is empty"}
	}
	stage := fmt.Sprintf("up/%s/", u.ID)
	var b store.Batch
	b.Put([]byte(fmt.Sprintf("%s%08d", stage, u.Index)), u.Data)
	if err := c.st.Write(&b); err != nil {
		return topics.APIReply{Error: "model push: " + err.Error()}
	}
	if !u.Last {
		return topics.APIReply{}
	}
	// Read the pieces back one short read each: a scan held open across
	// the blob's writes would pin Badger's memtables and stall the writes.
	pieces := &stagedReader{st: c.st, stage: stage, n: u.Index + 1}
	mv, added, key, err := c.registerVersion(ns, req.Name, u.Format, "push", u.Metrics, pieces)
	_ = store.DeletePrefix(c.st, []byte(stage))
	if err != nil {
		return topics.APIReply{Error: "model push: " + err.Error()}
	}
	action := "unchanged"
	if added {
		action = "pushed"
	}
	return topics.APIReply{Results: []topics.APIResult{{Key: key, Action: action,
		Message: fmt.Sprintf("version %d, %d bytes, sha256:%x", mv.Version, mv.Size, mv.SHA256)}}}
}

// registerVersion registers r as a new version of a model (a Model
// resource is created for one that has none), announces it and offers it
// to the nodes that use it.
func (c *ControlPlane) registerVersion(ns, name, format, source string, metrics map[string]string, r io.Reader) (modelVersion, bool, string, error) {
	key := api.KindModel + "/" + ns + "/" + name
	e, exists := c.res[key]
	var decl []byte
	if exists {
		spec := e.res.Spec.(*api.ModelSpec)
		if format == "" {
			format = spec.Format
		}
		decl = ioOf(format, spec)
	}
	mv, added, err := c.register(ns, name, format, decl, source, metrics, r)
	if err != nil {
		return modelVersion{}, false, key, err
	}
	now := c.cfg.Now()
	if !exists {
		doc, _ := json.Marshal(map[string]any{"apiVersion": api.APIVersion, "kind": api.KindModel,
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec":     map[string]any{"url": "push://" + ns + "/" + name, "format": format}})
		r, err := api.ParseDocument(doc)
		if err != nil {
			return modelVersion{}, false, key, err
		}
		created := c.creationTime(key, now)
		e = &entry{res: r, rec: record{Generation: 1, Created: created, Updated: now.UnixNano(), Source: r.Source}}
		e.status.SetCondition(api.ConditionAccepted, api.StatusTrue, "Registered", "", now)
		c.res[key] = e
	}
	c.modelStatus(e)
	c.settle(e, now)
	if added {
		c.event(e, "Normal", "VersionRegistered", fmt.Sprintf("version %d from %s (%d bytes, sha256:%x)", mv.Version, source, mv.Size, mv.SHA256))
	}
	if err := c.save(e); err != nil {
		return modelVersion{}, false, key, err
	}
	c.publishSpec(e)
	c.publishStatus(e)
	c.reevaluate(now)
	c.offerModels()
	return mv, added, key, nil
}

// RegisterModel registers data as the next version of the Model
// namespace/name (unless it equals the latest), with its metrics, as a
// training stage's output; source says where it comes from. It returns
// the version.
// It gives up when ctx ends: a worker being stopped by the control plane
// must not wait for it.
func (c *ControlPlane) RegisterModel(ctx context.Context, namespace, name, format, source string, metrics map[string]string, data []byte) (uint64, error) {
	type result struct {
		v   uint64
		err error
	}
	done := make(chan result, 1)
	c.do(func() {
		if ctx.Err() != nil {
			done <- result{0, ctx.Err()}
			return
		}
		mv, _, _, err := c.registerVersion(namespace, name, format, source, metrics, bytes.NewReader(data))
		done <- result{mv.Version, err}
	})
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.owner.Stopped():
		return 0, errors.New("cloud: the control plane is closed")
	}
}

// stagedReader reads the pieces of an upload in order.
type stagedReader struct {
	st    store.Store
	stage string
	n, i  int
	cur   []byte
}

func (r *stagedReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.i == r.n {
			return 0, io.EOF
		}
		v, err := r.st.Get([]byte(fmt.Sprintf("%s%08d", r.stage, r.i)))
		if err != nil {
			return 0, fmt.Errorf("upload piece %d: %w", r.i, err)
		}
		r.cur = v
		r.i++
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// DescribeModel returns the format and declarations version of a model
// was registered with.
func (c *ControlPlane) DescribeModel(ns, name string, version uint64) (paradigm.ModelInfo, error) {
	vs, err := c.versions(ns, name)
	if err != nil {
		return paradigm.ModelInfo{}, err
	}
	for _, mv := range vs {
		if mv.Version == version {
			return paradigm.ModelInfoOf(mv.Format, mv.IO)
		}
	}
	return paradigm.ModelInfo{}, fmt.Errorf("cloud: model %s/%s has no version %d", ns, name, version)
}

// LatestModel returns the newest registered version of a model and, unless
// it is version have, its bytes, for the cloud's built-in workers.
func (c *ControlPlane) LatestModel(ns, name string, have uint64) (uint64, []byte, error) {
	mv, ok, err := c.latest(ns, name)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, fmt.Errorf("cloud: model %s/%s has no version yet", ns, name)
	}
	if mv.Version == have {
		return have, nil, nil
	}
	r, err := store.OpenBlob(c.st, blobKey(ns, name, mv.Version))
	if err != nil {
		return 0, nil, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, nil, err
	}
	return mv.Version, data, nil
}
