package federated

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// The size of a new model comes from the strongest source that tells it:
// SEDNA_FL_INPUTS and SEDNA_FL_CLASSES, then the validation set, then the
// aggregationWorker.model, then the training workers' Datasets, which
// must agree on their width; it waits while a Dataset it needs has not
// reported, and says plainly why when nothing can tell.
func TestDecideSize(t *testing.T) {
	clients := []client{{Role: "train-0", Node: "a", Dataset: "d0"}, {Role: "train-1", Node: "b", Dataset: "d1"}, {Role: "train-2", Node: "b", Dataset: "d2"}}
	settled := func(inputs, classes int) *datasetReport {
		return &datasetReport{Inputs: inputs, Classes: classes, Rows: 100, Settled: true}
	}
	params := func(inputs, classes int) []sizeSource {
		return []sizeSource{{Name: ParamInputs, Inputs: inputs}, {Name: ParamClasses, Classes: classes}}
	}
	validation := sizeSource{Name: "the validation set", Inputs: 8, Classes: 3}
	model := sizeSource{Name: "aggregationWorker.model", Inputs: 6, Classes: 5}
	three := map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(4, 7), "train-2": settled(4, 2)}
	for _, tc := range []struct {
		name      string
		src       sizeSources
		inputs    int
		classes   int
		from      string // in InputsFrom or ClassesFrom
		waiting   string // in waiting
		err       string // in the error
		errPrefix string // the error starts with it
	}{
		{name: "params", src: sizeSources{Given: params(64, 10), Clients: clients}, inputs: 64, classes: 10, from: ParamInputs},
		{name: "params win over a validation set and datasets", src: sizeSources{Given: append(params(64, 10), validation), Clients: clients, Reports: three},
			inputs: 64, classes: 10, from: ParamClasses},
		{name: "a validation set", src: sizeSources{Given: append(params(0, 0), validation), Clients: clients}, inputs: 8, classes: 3, from: "validation"},
		{name: "half from params, half from the validation set", src: sizeSources{Given: append(params(0, 12), validation), Clients: clients},
			inputs: 8, classes: 12, from: "validation"},
		{name: "the model file wins over the datasets", src: sizeSources{Given: append(params(0, 0), model), Clients: clients, Reports: three},
			inputs: 6, classes: 5, from: "aggregationWorker.model"},
		{name: "the datasets: agreeing width, largest label plus one", src: sizeSources{Given: params(0, 0), Clients: clients, Reports: three},
			inputs: 4, classes: 7, from: "the Datasets of train-0, train-1, train-2"},
		{name: "classes from the datasets, inputs from params", src: sizeSources{Given: params(9, 0), Clients: clients,
			Reports: map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(5, 7), "train-2": settled(4, 2)}},
			inputs: 9, classes: 7, from: "the Datasets of train-0, train-1, train-2"},
		{name: "at least two classes", src: sizeSources{Clients: clients[:1], Reports: map[string]*datasetReport{"train-0": settled(4, 1)}},
			inputs: 4, classes: 2},
		{name: "a worker not heard from yet", src: sizeSources{Clients: clients, MinClients: 2,
			Reports: map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(4, 7)}},
			waiting: "train-2 (Dataset d2 on b): not heard from"},
		{name: "a Dataset with no samples yet", src: sizeSources{Clients: clients,
			Reports: map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(4, 7), "train-2": {}}},
			waiting: "train-2 (Dataset d2 on b): no samples yet"},
		{name: "a Dataset being read", src: sizeSources{Clients: clients,
			Reports: map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(4, 7), "train-2": {Inputs: 4, Classes: 2, Rows: 30}}},
			waiting: "train-2 (Dataset d2 on b): being read (30 samples so far)"},
		{name: "past the deadline, the minimum of Datasets is enough", src: sizeSources{Clients: clients, MinClients: 2, PastDeadline: true,
			Reports: map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(4, 7)}},
			inputs: 4, classes: 7, from: "not of train-2 (Dataset d2 on b): not heard from"},
		{name: "past the deadline, fewer than the minimum wait", src: sizeSources{Clients: clients, MinClients: 2, PastDeadline: true,
			Reports: map[string]*datasetReport{"train-0": settled(4, 3)}},
			waiting: "train-1 (Dataset d1 on b): not heard from; train-2 (Dataset d2 on b): not heard from"},
		{name: "an unusable Dataset does not hold the others", src: sizeSources{Clients: clients,
			Reports: map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(4, 7), "train-2": {Bad: 12, Settled: true}}},
			inputs: 4, classes: 7, from: "none of its 12 lines is label,f1,f2,..."},
		{name: "the datasets disagree on the width", src: sizeSources{Clients: clients, Reports: map[string]*datasetReport{"train-0": settled(4, 3), "train-1": settled(5, 7)}},
			err: "the training workers' Datasets disagree on the number of features: d0 on a (train-0) has 4, d1 on b (train-1) has 5"},
		{name: "no Dataset usable", src: sizeSources{Clients: clients, Notes: []string{`aggregationWorker.model "out": no version yet`},
			Reports: map[string]*datasetReport{"train-0": {Bad: 3, Settled: true}, "train-1": {Bad: 5, Settled: true}, "train-2": nil}},
			errPrefix: "the model's size is unknown: give SEDNA_FL_INPUTS and SEDNA_FL_CLASSES",
			err:       `aggregationWorker.model "out": no version yet; train-0 (Dataset d0 on a): none of its 3 lines is label,f1,f2,...`},
		{name: "an older worker tells nothing", src: sizeSources{Clients: clients[:1], Reports: map[string]*datasetReport{"train-0": nil}},
			err: "train-0 (Dataset d0 on a): its worker is of a version that does not report its Dataset"},
		{name: "external workers report no Dataset", src: sizeSources{Given: params(0, 0), Clients: []client{{Role: "train-0", Node: "a", Dataset: "d0", External: true}}},
			errPrefix: "the model's size is unknown: give SEDNA_FL_INPUTS and SEDNA_FL_CLASSES",
			err:       "train-0 (Dataset d0 on a): runs its own program (a command), which reports no Dataset"},
		{name: "external workers are not waited for", src: sizeSources{Clients: []client{clients[0], {Role: "train-1", Node: "b", Dataset: "d1", External: true}},
			Reports: map[string]*datasetReport{"train-0": settled(3, 4)}}, inputs: 3, classes: 4},
		{name: "a label beyond the classes a model may have", src: sizeSources{Clients: clients[:1], Reports: map[string]*datasetReport{"train-0": settled(4, maxClasses+1)}},
			err: "train-0 (Dataset d0 on a): a label of 65536: at most 65536 classes"},
		{name: "too wide", src: sizeSources{Clients: clients[:1], Reports: map[string]*datasetReport{"train-0": settled(maxInputs+1, 2)}},
			err: "train-0 (Dataset d0 on a): samples of 16777217 features"},
		{name: "a report without its shape", src: sizeSources{Clients: clients[:1], Reports: map[string]*datasetReport{"train-0": {Rows: 5, Settled: true}}},
			err: "5 samples reported without their features or labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.src.Reports == nil {
				tc.src.Reports = map[string]*datasetReport{}
			}
			size, waiting, err := decideSize(tc.src)
			switch {
			case tc.err != "" || tc.errPrefix != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), tc.errPrefix) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.waiting != "":
				if !strings.Contains(waiting, tc.waiting) || size != (modelSize{}) {
					t.Fatalf("waiting %q, size %+v; want to wait for %q", waiting, size, tc.waiting)
				}
			case waiting != "" || size.Inputs != tc.inputs || size.Classes != tc.classes ||
				!strings.Contains(size.InputsFrom+" | "+size.ClassesFrom, tc.from):
				t.Fatalf("size %+v (waiting %q), want %d inputs and %d classes from %q", size, waiting, tc.inputs, tc.classes, tc.from)
			}
		})
	}
}

// A training worker's look at its Dataset keeps its width, its largest
// label and its counts, not its samples; it settles once a look finds
// nothing new.
func TestDatasetShape(t *testing.T) {
	lines := []string{"1,0.5,0.25", "", "image/1.jpg 3", "7,1,2", "2,1", "x,1,2", "3,NaN,1", "4,1,2"}
	var d datasetShape
	read := func(n int) func(uint64, func(uint64, []byte) error) error {
		return func(after uint64, fn func(uint64, []byte) error) error {
			for i := after; i < uint64(n); i++ {
				if err := fn(i+1, []byte(lines[i])); err != nil {
					return err
				}
			}
			return nil
		}
	}
	steps := []struct {
		have int
		want datasetReport
	}{
		{0, datasetReport{}}, // nothing yet: not settled, however often it looks
		{0, datasetReport{}},
		{4, datasetReport{Inputs: 2, Classes: 8, Rows: 2, Bad: 1}},
		{8, datasetReport{Inputs: 2, Classes: 8, Rows: 3, Bad: 4}},
		{8, datasetReport{Inputs: 2, Classes: 8, Rows: 3, Bad: 4, Settled: true}},
	}
	for i, s := range steps {
		if err := d.look(read(s.have)); err != nil {
			t.Fatal(err)
		}
		if got := d.report(); got != s.want {
			t.Fatalf("look %d: %+v, want %+v", i, got, s.want)
		}
	}
	if !d.report().usable() || steps[3].want.usable() {
		t.Fatal("usable: only a settled report with samples")
	}
	// Lines that are all unusable settle as such.
	var bad datasetShape
	lines = []string{"img/1.jpg 0", "img/2.jpg 1"}
	for range 2 {
		if err := bad.look(read(2)); err != nil {
			t.Fatal(err)
		}
	}
	if got := bad.report(); got != (datasetReport{Bad: 2, Settled: true}) || got.usable() {
		t.Fatalf("%+v", got)
	}
	// A Dataset that keeps growing settles after settleLooks looks.
	var growing datasetShape
	lines = nil
	for i := range settleLooks {
		lines = append(lines, "1,2,3")
		if err := growing.look(read(len(lines))); err != nil {
			t.Fatal(err)
		}
		if growing.report().Settled != (i == settleLooks-1) {
			t.Fatalf("look %d: %+v", i, growing.report())
		}
	}
}

// The join of an older worker (without the Dataset's shape) decodes with
// none, and an older cloud decodes a new join (it ignores the shape).
func TestJoinCarriesTheDatasetShapeCompatibly(t *testing.T) {
	type oldJoin struct {
		Gen   uint64 `msgpack:"g"`
		Role  string `msgpack:"w"`
		Run   uint64 `msgpack:"u"`
		Round int64  `msgpack:"r"`
	}
	raw, err := topics.Encode(KindJoin, "old", oldJoin{Gen: 2, Role: "train-1", Run: 7, Round: 3})
	if err != nil {
		t.Fatal(err)
	}
	env, err := topics.UnmarshalEnvelope(raw, msgLimits)
	if err != nil {
		t.Fatal(err)
	}
	var j join
	if err := env.DecodeBody(&j); err != nil || j != (join{Gen: 2, Role: "train-1", Run: 7, Round: 3}) {
		t.Fatalf("%+v %v", j, err)
	}
	rep := datasetReport{Inputs: 64, Classes: 10, Rows: 1797, Bad: 2, Settled: true}
	raw, err = topics.Encode(KindJoin, "new", join{Gen: 2, Role: "train-1", Run: 7, Round: 3, Data: &rep})
	if err != nil {
		t.Fatal(err)
	}
	if env, err = topics.UnmarshalEnvelope(raw, msgLimits); err != nil {
		t.Fatal(err)
	}
	var old oldJoin
	if err := env.DecodeBody(&old); err != nil || old != (oldJoin{Gen: 2, Role: "train-1", Run: 7, Round: 3}) {
		t.Fatalf("an older cloud: %+v %v", old, err)
	}
	j = join{}
	if err := env.DecodeBody(&j); err != nil || j.Data == nil || *j.Data != rep {
		t.Fatalf("%+v %v", j, err)
	}
	// The shape is a few numbers, no sample.
	body, _ := msgpack.Marshal(rep)
	if len(body) > 40 {
		t.Fatalf("a report of %d bytes", len(body))
	}
}

// The aggregation worker sizes a new model by the aggregationWorker.model's
// newest version when it has one of ours, without waiting; otherwise it
// waits for its training workers' joins (from their own nodes only) and
// sizes it by their Datasets; it stops waiting when it is stopped, and
// names what is missing when nothing can tell.
func TestInitialModelSize(t *testing.T) {
	softmax := func(inputs, classes int) []byte {
		m, err := ml.NewSoftmax(inputs, classes)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	newRun := func(t *testing.T, spec workers.Spec, model func(ns, name string, have uint64) (uint64, []byte, error)) (*run, *[]string) {
		cfg, err := parseAggConfig(spec)
		if err != nil {
			t.Fatal(err)
		}
		var events []string
		spec.ReportEvent = func(typ, reason, msg string) { events = append(events, reason+": "+msg) }
		env := CloudEnv{}
		if model != nil {
			env.Models = paradigm.LatestFunc(model)
		}
		return &run{c: &Cloud{env: env}, spec: spec, cfg: cfg, log: slog.New(slog.DiscardHandler)}, &events
	}
	noVersion := func(ns, name string, _ uint64) (uint64, []byte, error) {
		return 0, nil, fmt.Errorf("model %s/%s has no version yet", ns, name)
	}
	joinOf := func(node, role string, rep *datasetReport) message {
		return message{node: node, kind: KindJoin, join: join{Role: role, Data: rep}}
	}
	settled := func(inputs, classes int) *datasetReport {
		return &datasetReport{Inputs: inputs, Classes: classes, Rows: 10, Settled: true}
	}

	t.Run("the aggregationWorker.model's version, without waiting", func(t *testing.T) {
		r, _ := newRun(t, specFor(t, "aggregation", nil), func(_, name string, _ uint64) (uint64, []byte, error) {
			if name != "out" {
				return 0, nil, fmt.Errorf("model %s has no version yet", name)
			}
			return 3, softmax(6, 5), nil
		})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // nothing comes: a wait fails
		defer cancel()
		m, err := r.initialModel(ctx, make(chan message))
		if err != nil || m.Inputs() != 6 || m.Classes() != 5 || m.Kind() != ml.KindMLP {
			t.Fatalf("%v %v", m, err)
		}
	})
	t.Run("the Datasets, from their own nodes", func(t *testing.T) {
		r, events := newRun(t, specFor(t, "aggregation", map[string]string{ParamModel: "softmax"}), noVersion)
		inbox := make(chan message, 8)
		inbox <- joinOf("a", "train-1", settled(40, 40)) // train-1 is on b: ignored
		inbox <- message{node: "a", kind: KindUpdate, upd: update{Role: "train-0"}}
		inbox <- joinOf("a", "train-0", settled(3, 2))
		inbox <- joinOf("b", "train-1", settled(3, 4))
		inbox <- joinOf("b", "train-2", &datasetReport{Inputs: 3, Classes: 2, Rows: 5}) // being read
		inbox <- joinOf("b", "train-2", settled(3, 2))
		m, err := r.initialModel(t.Context(), inbox)
		if err != nil || m.Inputs() != 3 || m.Classes() != 4 || m.Kind() != ml.KindSoftmax || len(inbox) != 0 {
			t.Fatalf("%v %v (%d messages left)", m, err, len(inbox))
		}
		if len(*events) != 2 || !strings.Contains((*events)[0], "WaitingForDatasets: the model's size comes from the training workers' Datasets: waiting for train-0 (Dataset d0 on a): not heard from") ||
			(*events)[1] != "ModelSized: the model takes 3 features (from the Datasets of train-0, train-1, train-2) into 4 classes (from the Datasets of train-0, train-1, train-2)" {
			t.Fatalf("events: %q", *events)
		}
	})
	t.Run("Datasets that disagree", func(t *testing.T) {
		r, _ := newRun(t, specFor(t, "aggregation", nil), noVersion)
		inbox := make(chan message, 8)
		inbox <- joinOf("a", "train-0", settled(3, 2))
		inbox <- joinOf("b", "train-1", settled(4, 2))
		_, err := r.initialModel(t.Context(), inbox)
		if err == nil || !strings.HasPrefix(err.Error(), "federated: spec.aggregationWorker.template: the training workers' Datasets disagree on the number of features: d0 on a (train-0) has 3, d1 on b (train-1) has 4") {
			t.Fatal(err)
		}
	})
	t.Run("stopped while it waits", func(t *testing.T) {
		r, _ := newRun(t, specFor(t, "aggregation", nil), noVersion)
		ctx, cancel := context.WithCancel(t.Context())
		inbox := make(chan message, 1)
		inbox <- joinOf("a", "train-0", settled(3, 2))
		cancel()
		if _, err := r.initialModel(ctx, inbox); !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
	t.Run("external workers only, and no version of the model", func(t *testing.T) {
		doc := strings.Replace(jobYAML, "containers: [{name: t, image: x}]", `containers: [{name: t, image: x, command: ["/bin/train"]}]`, 3)
		rs, err := api.Parse([]byte(doc), "fl.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var spec workers.Spec
		for _, w := range rs[0].Workers() {
			if w.Role == "aggregation" {
				spec = workers.Spec{Job: topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl"}, Worker: w, Document: rs[0].Source}
			}
		}
		r, _ := newRun(t, spec, noVersion)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // nothing comes: a wait fails
		defer cancel()
		_, err = r.initialModel(ctx, make(chan message))
		for _, want := range []string{
			"federated: spec.aggregationWorker.template: the model's size is unknown: give SEDNA_FL_INPUTS and SEDNA_FL_CLASSES",
			`aggregationWorker.model "out": model default/out has no version yet`,
			"train-2 (Dataset d2 on b): runs its own program (a command), which reports no Dataset",
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%v; want %q", err, want)
			}
		}
	})
}

// A training worker whose Dataset has lines, none of which it can train
// on, says so once, naming the Dataset and its node; one whose Dataset
// cannot be read fails with the reason.
func TestTrainerSaysWhatIsWrongWithItsDataset(t *testing.T) {
	lines := []string{"img/1.jpg 0", "img/2.jpg 1"}
	var readErr error
	spec := specFor(t, "train-0", nil)
	var events []string
	spec.ReportEvent = func(typ, reason, msg string) { events = append(events, typ+" "+reason+": "+msg) }
	cfg, err := parseTrainConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	tr := &trainer{spec: spec, cfg: cfg, log: slog.New(slog.DiscardHandler), env: EdgeEnv{Node: "a",
		Data: paradigm.SamplesFunc(func(ns, name string, after uint64, fn func(uint64, []byte) error) error {
			if ns != "default" || name != "d0" {
				return fmt.Errorf("dataset %s/%s", ns, name)
			}
			for i := after; i < uint64(len(lines)); i++ {
				if err := fn(i+1, []byte(lines[i])); err != nil {
					return err
				}
			}
			return readErr
		})}}
	for range 3 {
		if err := tr.lookAtDataset(); err != nil {
			t.Fatal(err)
		}
	}
	want := "Warning DatasetUnusable: train-0: none of the 2 lines of Dataset d0 on a is a sample it can train on: label,f1,f2,..."
	if len(events) != 1 || !strings.HasPrefix(events[0], want) {
		t.Fatalf("events %q, want one %q", events, want)
	}
	if rep := tr.shape.report(); rep != (datasetReport{Bad: 2, Settled: true}) {
		t.Fatalf("%+v", rep)
	}
	readErr = errors.New("store: closed")
	if err := tr.lookAtDataset(); err == nil || err.Error() != "federated: dataset d0: not read: store: closed" {
		t.Fatal(err)
	}
}
