package edge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// datasets ingests the Datasets held on this node: the lines of each one's
// file (a txt index or a csv), followed as they are appended, and the
// samples local apps publish on its topic (topics.NodeDataset). Samples go
// into the store and stay on the node; the count goes to the cloud as the
// Dataset's numberOfSamples.
type datasets struct {
	node    string
	st      store.Store
	srv     *broker.Server
	bridge  *bridge.Bridge
	poll    time.Duration
	log     *slog.Logger
	mu      sync.Mutex
	active  map[string]*dataset
	byTopic map[string]*dataset
	wg      sync.WaitGroup
	// emit, if set, takes each status instead of the broker and the
	// bridge (the unit tests').
	emit func(ds *dataset, st topics.DatasetStatus)
}

// dataset is one Dataset being ingested; its goroutine owns the file offset
// and the count.
type dataset struct {
	key     string
	ref     topics.JobRef
	spec    api.DatasetSpec
	topic   string
	samples chan []byte
	stop    chan struct{}
	done    chan struct{}
}

func newDatasets(node string, st store.Store, srv *broker.Server, bridge *bridge.Bridge, poll time.Duration, log *slog.Logger) *datasets {
	if poll <= 0 {
		poll = time.Second
	}
	return &datasets{node: node, st: st, srv: srv, bridge: bridge, poll: poll, log: log.With("component", "datasets"),
		active: map[string]*dataset{}, byTopic: map[string]*dataset{}}
}

// onSpec follows the node's job specs: Datasets placed here start, deleted
// or moved ones stop.
func (d *datasets) onSpec(key string, r *api.Resource, deleted bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.active[key]
	var spec *api.DatasetSpec
	if r != nil {
		spec, _ = r.Spec.(*api.DatasetSpec)
	}
	if old != nil && (deleted || spec == nil || spec.NodeName != d.node || *spec != old.spec) {
		d.stopLocked(key)
		old = nil
	}
	if deleted || spec == nil || spec.NodeName != d.node || old != nil {
		return
	}
	ref, err := topics.ParseJobRef(key)
	if err != nil {
		return
	}
	ds := &dataset{key: key, ref: ref, spec: *spec, topic: topics.NodeDataset(d.node, ref.Namespace, ref.Name),
		samples: make(chan []byte, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	d.active[key] = ds
	d.byTopic[ds.topic] = ds
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(ds.done)
		d.run(ds)
	}()
}

func (d *datasets) stopLocked(key string) {
	if ds, ok := d.active[key]; ok {
		close(ds.stop)
		delete(d.active, key)
		delete(d.byTopic, ds.topic)
	}
}

// subscribe takes the samples local apps publish for any of the node's
// datasets; one subscription made before the broker serves.
func (d *datasets) subscribe() error {
	_, err := d.srv.Watch(topics.NodeDataset(d.node, "+", "+"), func(topic string, payload []byte, _ bool) {
		d.mu.Lock()
		ds := d.byTopic[topic]
		d.mu.Unlock()
		if ds == nil {
			d.log.Warn("sample for a dataset this node does not hold", "topic", topic)
			return
		}
		select {
		case ds.samples <- append([]byte(nil), payload...):
		case <-ds.stop:
		}
	})
	return err
}

func (d *datasets) close() {
	d.mu.Lock()
	for k := range d.active {
		d.stopLocked(k)
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func counterKey(key string) []byte { return []byte("c/" + key) }
func offsetKey(key string) []byte  { return []byte("o/" + key) }
func headerKey(key string) []byte  { return []byte("h/" + key) }
func sampleKey(key string, n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("s/"+key+"/"), n)
}

func (d *datasets) load(key []byte) uint64 {
	v, err := d.st.Get(key)
	if err != nil || len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (d *datasets) run(ds *dataset) {
	count := d.load(counterKey(ds.key))
	offset := int64(d.load(offsetKey(ds.key)))
	log := d.log.With("dataset", ds.key)
	reported, reportedProblem := int64(-1), ""
	problem := ""
	report := func() {
		if int64(count) == reported && problem == reportedProblem {
			return
		}
		reported, reportedProblem = int64(count), problem
		d.report(ds, count, problem)
	}
	// readFile takes the file's new lines, a store write's worth at a
	// time, until it is read to its end; false: the dataset was stopped.
	readFile := func() bool {
		for {
			got, newOffset, err := readLines(fileOf(ds.spec.URL), offset, ds.spec.Format == "csv", d.budget(), perSample(ds))
			if err != nil {
				was := problem
				if errors.Is(err, os.ErrNotExist) {
					problem = fmt.Sprintf("no file %s on node %s (waiting for it; samples published on the dataset's topic are kept meanwhile)", fileOf(ds.spec.URL), d.node)
				} else {
					problem = fmt.Sprintf("file %s not read on node %s: %v", fileOf(ds.spec.URL), d.node, err)
				}
				if problem != was {
					log.Warn("dataset file not read", "error", err)
				}
				break
			}
			problem = ""
			if newOffset == offset {
				break
			}
			var next uint64
			if len(got) == 1 && len(got[0]) > maxSample {
				// A line larger than any message: it is skipped rather
				// than kept (or retried for ever).
				log.Error("a sample larger than a message may be: skipped", "bytes", len(got[0]), "limit", maxSample, "offset", offset)
				got = nil
			}
			var header []byte
			if offset == 0 && ds.spec.Format == "csv" {
				// The columns' names, kept beside the samples.
				header, _ = readHeader(fileOf(ds.spec.URL))
			}
			next, err = d.keep(ds, count, got, newOffset, header)
			if errors.Is(err, store.ErrTooLarge) && len(got) == 1 {
				log.Error("a sample larger than the store takes in one write: skipped", "bytes", len(got[0]), "offset", offset)
				next, err = d.keep(ds, count, nil, newOffset, header)
			}
			if err != nil {
				log.Error("samples not stored", "samples", len(got), "error", err)
				break
			}
			count, offset = next, newOffset
			select {
			case <-ds.stop:
				return false
			default:
			}
		}
		return true
	}
	// The file is tried before the first report: a status saying Ready
	// with 0 samples before anyone looked would be a lie when the file is
	// missing.
	if !readFile() {
		return
	}
	report()
	tick := time.NewTicker(d.poll)
	defer tick.Stop()
	for {
		var lines [][]byte
		select {
		case <-ds.stop:
			return
		case s := <-ds.samples:
			lines = append(lines, s)
			budget, per := d.budget(), perSample(ds)
			size := len(s) + per
			for more := true; more && len(lines) < 512 && size < budget; {
				select {
				case s := <-ds.samples:
					lines = append(lines, s)
					size += len(s) + per
				default:
					more = false
				}
			}
			next, err := d.keep(ds, count, lines, offset, nil)
			if err != nil {
				log.Error("samples not stored", "samples", len(lines), "error", err)
				continue
			}
			count = next
		case <-tick.C:
			if !readFile() {
				return
			}
		}
		report()
	}
}

// budget bounds the samples of one store write, each counted with its
// key (perSample): at most 192 KiB, less where the node's store takes less
// in one write (store.BatchBudget; the sample count, offset and a csv's
// header go in the same write, in the quarter left over).
func (d *datasets) budget() int { return store.BatchBudget(d.st, 192<<10) * 3 / 4 }

// perSample is what a sample of ds costs in a store write beside its bytes.
func perSample(ds *dataset) int { return len(sampleKey(ds.key, math.MaxUint64)) + store.RecordOverhead }

// maxSample bounds one sample: a message of the project's largest, as a
// sample published on the dataset's topic may be.
var maxSample = topics.DefaultLimits.MaxBody

// keep stores samples and the new count and offset in one batch, and a
// csv file's header when given.
func (d *datasets) keep(ds *dataset, count uint64, lines [][]byte, offset int64, header []byte) (uint64, error) {
	var b store.Batch
	if header != nil {
		b.Put(headerKey(ds.key), header)
	}
	for _, l := range lines {
		count++
		b.Put(sampleKey(ds.key, count), l)
	}
	b.Put(counterKey(ds.key), binary.BigEndian.AppendUint64(nil, count))
	b.Put(offsetKey(ds.key), binary.BigEndian.AppendUint64(nil, uint64(offset)))
	return count, d.st.Write(&b)
}

func (d *datasets) report(ds *dataset, count uint64, problem string) {
	st := topics.DatasetStatus{Key: ds.key, NumberOfSamples: int64(count), Updated: time.Now().UnixNano(), Problem: problem}
	if d.emit != nil {
		d.emit(ds, st)
		return
	}
	env, err := topics.NewEnvelope(topics.KindDatasetStatus, "edge/datasets", st)
	if err != nil {
		return
	}
	raw, err := env.Marshal()
	if err != nil {
		return
	}
	topic := topics.NodeJob(d.node, ds.ref, "status")
	_ = d.srv.Publish(access.SystemPrincipal("edge/datasets"), topic, raw, true, 1)
	if err := d.bridge.Send(topics.StreamEvents, topic, raw, false); err != nil {
		d.log.Warn("dataset status not queued", "dataset", ds.key, "error", err)
	}
}

func fileOf(url string) string { return strings.TrimPrefix(url, "file://") }

// readLines reads the complete lines after offset (a last line without its
// newline waits for it), as many as fit in maxBytes, each counted with
// perLine bytes more (a first line is taken whatever its size). A csv's header (its first line)
// is not a sample. A file shorter than offset was replaced: it is read from
// the start.
func readLines(path string, offset int64, csv bool, maxBytes, perLine int) ([][]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, offset, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, offset, err
	}
	if st.Size() < offset {
		offset = 0
	}
	if st.Size() == offset {
		return nil, offset, nil
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, offset, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var lines [][]byte
	size := 0
	for len(lines) < 100_000 && size < maxBytes {
		line, err := r.ReadBytes('\n')
		if err != nil {
			break // EOF, or a partial last line: it waits for its newline
		}
		if len(lines) > 0 && size+len(line)+perLine > maxBytes {
			break // it starts the next read
		}
		start := offset
		offset += int64(len(line))
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 || csv && start == 0 {
			continue
		}
		lines = append(lines, line)
		size += len(line) + perLine // the sample's key and the store's overhead
	}
	return lines, offset, nil
}

// readHeader reads a csv file's first line, once it is whole (nil before).
func readHeader(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 64<<10).ReadBytes('\n')
	if err != nil || len(line) > maxSample {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// workerEnv is what an external worker gets from what the node knows, in
// Sedna's names: a federated training worker's Dataset file
// (TRAIN_DATASET_URL, as Sedna's controller sets it, and its format).
func (a *Agent) workerEnv(spec workers.Spec) []string {
	return append(a.secretEnv(spec), a.datasetEnv(spec)...)
}

// secretEnv opens the secrets of a worker's job that the cloud sealed for
// this node into environment entries; one that does not open is left out
// and logged (its name only).
func (a *Agent) secretEnv(spec workers.Spec) []string {
	var env []string
	for _, name := range slices.Sorted(maps.Keys(spec.Secrets)) {
		if a.identity == nil {
			a.log.Warn("a worker's secret left out: this node has no identity to open it with", "job", spec.Job.String(), "secret", name)
			continue
		}
		kv, err := a.identity.SecretEnv(spec.Job.Namespace, name, spec.Secrets[name])
		if err != nil {
			a.log.Warn("a worker's secret left out", "job", spec.Job.String(), "secret", name, "error", err)
			continue
		}
		env = append(env, kv...)
	}
	return env
}

// datasetEnv is a federated training worker's Dataset file.
func (a *Agent) datasetEnv(spec workers.Spec) []string {
	if spec.Job.Kind != api.KindFederatedLearningJob || !strings.HasPrefix(spec.Role, "train-") || len(spec.Document) == 0 {
		return nil
	}
	i, err := strconv.Atoi(strings.TrimPrefix(spec.Role, "train-"))
	if err != nil {
		return nil
	}
	r, err := api.ParseDocument(spec.Document)
	if err != nil || r == nil {
		return nil
	}
	js, ok := r.Spec.(*api.FederatedLearningJobSpec)
	if !ok || i < 0 || i >= len(js.TrainingWorkers) {
		return nil
	}
	key := api.KindDataset + "/" + spec.Job.Namespace + "/" + js.TrainingWorkers[i].Dataset.Name
	a.datasets.mu.Lock()
	ds := a.datasets.active[key]
	a.datasets.mu.Unlock()
	if ds == nil {
		return nil
	}
	return []string{"TRAIN_DATASET_URL=" + fileOf(ds.spec.URL), "SEDNA_DATASET_FORMAT=" + ds.spec.Format}
}

// Columns names the columns of a csv Dataset the node holds, from its
// file's header (its first line); an error wrapping store.ErrNotFound
// before the node has read one.
func (a *Agent) Columns(namespace, name string) ([]string, error) {
	h, err := a.datasets.st.Get(headerKey(api.KindDataset + "/" + namespace + "/" + name))
	if err != nil {
		return nil, fmt.Errorf("the header of Dataset %s/%s: %w", namespace, name, err)
	}
	cols := strings.Split(string(h), ",")
	for i, c := range cols {
		cols[i] = strings.TrimSpace(c)
	}
	return cols, nil
}

// Samples calls fn with each sample the node holds of the Dataset
// namespace/name, in the order they were taken (i counts from 1): the lines
// of its file and what local apps published on its topic. It is how the
// node's built-in workers read their local data, which never leaves the
// node. fn may return store.ErrStop to end early.
func (a *Agent) Samples(namespace, name string, fn func(i uint64, sample []byte) error) error {
	return a.SamplesAfter(namespace, name, 0, fn)
}

// SamplesAfter is Samples from the sample after number after on: a worker
// that keeps what it read reads only what is new.
func (a *Agent) SamplesAfter(namespace, name string, after uint64, fn func(i uint64, sample []byte) error) error {
	prefix := []byte("s/" + api.KindDataset + "/" + namespace + "/" + name + "/")
	start := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), after+1)
	return a.datasets.st.Scan(prefix, start, func(key, value []byte) error {
		if len(key) != len(prefix)+8 {
			return nil
		}
		return fn(binary.BigEndian.Uint64(key[len(prefix):]), value)
	})
}
