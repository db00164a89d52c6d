package incremental

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
)

func f32(vs ...float32) []byte {
	out := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

// A dataset written for an external worker reads back as it was: inputs
// of both dtypes with their shape (a flat one given its length), labels,
// a detection example's objects (none too); NumPy itself (Debian's
// python3-numpy) reads each input file as the same array.
func TestSetsRoundTripAndNumPyReadsThem(t *testing.T) {
	classes := []Example{
		{Shape: []int{2, 3}, DType: jointinference.DTypeU8, Data: []byte{0, 1, 2, 3, 4, 255}, Label: 3},
		{DType: jointinference.DTypeF32, Data: f32(0.5, -1, 2), Label: 0},
	}
	detections := []Example{
		{Shape: []int{2, 2}, DType: jointinference.DTypeU8, Data: []byte{9, 8, 7, 6}, Boxes: [][6]float32{{1, 2, 5, 6, 1, 1}, {0, 0, 3.5, 4, 1, 0}}},
		{Shape: []int{2, 2}, DType: jointinference.DTypeU8, Data: []byte{1, 1, 1, 1}},
	}
	for _, c := range []struct {
		name     string
		task     jointinference.Task
		examples []Example
		numpy    []string // what NumPy says of each input: dtype shape sum
	}{
		{"classification", jointinference.Task{}, classes, []string{"uint8 (2, 3) 265", "float32 (3,) 1.5"}},
		{"detection", jointinference.Task{Detection: true}, detections, []string{"uint8 (2, 2) 30", "uint8 (2, 2) 4"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			index := filepath.Join(t.TempDir(), "train.txt")
			if err := WriteSet(index, c.task, c.examples); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSet(index)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.examples) {
				t.Fatalf("%d examples read, %d written", len(got), len(c.examples))
			}
			for i, want := range c.examples {
				if want.DType == "" {
					want.DType = jointinference.DTypeU8
				}
				if want.Shape == nil {
					want.Shape = []int{len(want.Data) / 4}
				}
				if c.task.Detection && want.Boxes == nil {
					want.Boxes = [][6]float32{}
				}
				got[i].Key = ""
				if !reflect.DeepEqual(got[i], want) {
					t.Errorf("example %d read as %+v, written %+v", i, got[i], want)
				}
				file := filepath.Join(filepath.Dir(index), strings.Fields(readLine(t, index, i))[0])
				out, err := exec.Command("/usr/bin/python3", "-c",
					"import numpy, sys; a = numpy.load(sys.argv[1]); print(a.dtype, a.shape, a.sum())", file).CombinedOutput()
				if err != nil {
					t.Fatalf("NumPy: %v\n%s", err, out)
				}
				if s := strings.TrimSpace(string(out)); s != c.numpy[i] {
					t.Errorf("NumPy reads example %d as %q, want %q", i, s, c.numpy[i])
				}
			}
		})
	}
}

func readLine(t *testing.T, path string, i int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(raw), "\n")[i]
}

// A NumPy file that is not one we take is refused with its reason.
func TestBadNumPyFilesAreRefused(t *testing.T) {
	good, _ := npy(Example{Shape: []int{2}, Data: []byte{1, 2}})
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"not NumPy", []byte("hello world"), "not a NumPy array file"},
		{"int64", []byte(strings.Replace(string(good), "|u1", "<i8", 1)), `dtype "<i8"`},
		{"fortran", []byte(strings.Replace(string(good), "False", "True ", 1)), "Fortran-order"},
		{"short", good[:len(good)-1], "needs 2 bytes, the file has 1"},
		{"header cut", good[:20], "truncated"},
	} {
		if _, err := fromNPY(c.raw); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// An eval worker's result gives the candidate's and the serving model's
// metrics (the candidate's alone when there is no serving model); a
// result that misses one, names another model, or holds what is not a
// number is refused.
func TestEvalResults(t *testing.T) {
	cand, base := "/x/candidate.model", "/x/base.model"
	got, was, err := readResult([]byte(`[{"format": "sedna", "url": "/x/candidate.model", "metrics": {"accuracy": 0.9, "precision": [0.5, 1]}},
		{"url": "/x/base.model", "metrics": {"accuracy": 0.8, "precision": [0.25, 1]}}]`), cand, base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Metrics{"accuracy": {0.9}, "precision": {0.5, 1}}) || !reflect.DeepEqual(was, Metrics{"accuracy": {0.8}, "precision": {0.25, 1}}) {
		t.Fatalf("read %v and %v", got, was)
	}
	for _, c := range []struct{ raw, want string }{
		{`{"accuracy": 1}`, "want a JSON list"},
		{`[{"url": "/x/candidate.model", "metrics": {"accuracy": 1}}]`, "want the metrics of both models"},
		{`[{"url": "/y/other", "metrics": {"accuracy": 1}}]`, `metrics for "/y/other"`},
		{`[{"url": "/x/base.model", "metrics": {"accuracy": "high"}}]`, `metric "accuracy" of /x/base.model: want a number`},
		{`[{"url": "/x/base.model", "metrics": {}}]`, "no metrics for /x/base.model"},
	} {
		if _, _, err := readResult([]byte(c.raw), cand, base); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.raw, err, c.want)
		}
	}
	// Before a job's first model, the candidate's metrics alone, and the
	// serving model's are empty; metrics for a model not named are still
	// refused.
	got, was, err = readResult([]byte(`[{"url": "/x/candidate.model", "metrics": {"accuracy": 0.5}}]`), cand, "")
	if err != nil || !reflect.DeepEqual(got, Metrics{"accuracy": {0.5}}) || len(was) != 0 || was == nil {
		t.Errorf("no serving model: read %v and %v, %v", got, was, err)
	}
	if _, _, err := readResult([]byte(`[{"url": "/x/candidate.model", "metrics": {"accuracy": 0.5}}, {"url": "", "metrics": {"accuracy": 1}}]`),
		cand, ""); err == nil || !strings.Contains(err.Error(), `metrics for ""`) {
		t.Errorf("metrics for no model: %v", err)
	}
	// What NewModelMetrics writes, readResult reads.
	m := Metrics{"accuracy": {0.75}, "precision": {1}, "recall": {0.5, 0.25}}
	a, _ := NewModelMetrics(cand, m).values()
	if !reflect.DeepEqual(a, m) {
		t.Errorf("%v written, %v read", m, a)
	}
}

// A trained model stands in for the serving one only with its inputs and
// classes.
func TestATrainedModelMustFitTheServingOnesShape(t *testing.T) {
	enc := func(in, classes int) []byte {
		m, err := ml.NewMLP(in, []int{4}, classes, 1)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := m.MarshalBinary()
		return raw
	}
	base := enc(6, 3)
	if err := sameShape(base, enc(6, 3)); err != nil {
		t.Fatal(err)
	}
	for _, other := range [][]byte{enc(5, 3), enc(6, 2)} {
		if err := sameShape(base, other); err == nil || !strings.Contains(err.Error(), "the serving model 6 to 3") {
			t.Errorf("%v", err)
		}
	}
	if err := sameShape(base, []byte("junk")); err == nil {
		t.Error("junk taken as a model")
	}
}
