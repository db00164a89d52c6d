// Package python holds the tests of the Python worker library
// (sdk/python/sedna), run with Debian's /usr/bin/python3 and its
// python3-numpy, python3-msgpack and python3-paho-mqtt.
package python

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/topics"
)

// TestPythonSDK runs the library's unit tests (every tests/test_*.py) and
// checks that each side reads the other's bytes: envelopes and a model
// made in Go are decoded in Python and written again there, and Go's
// decoders read what Python wrote as the same kind, body and model.
func TestPythonSDK(t *testing.T) {
	dir := t.TempDir()
	goWire, pyWire := filepath.Join(dir, "go.txt"), filepath.Join(dir, "py.txt")
	metrics, err := topics.Encode(topics.KindWorkerMetrics, "go", topics.WorkerMetrics{Role: "train-0", Metrics: map[string]float64{"loss": 0.25}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := ml.NewMLP(6, []int{5}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	n.SetSamples(42)
	blob, err := n.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goWire, []byte(fmt.Sprintf("%s %x\nmodel %x\n", topics.KindWorkerMetrics, metrics, blob)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "-m", "unittest", "discover", "-v", "-s", "tests")
	pyKB := filepath.Join(dir, "kb.bin")
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1", "SEDNA_GO_WIRE="+goWire, "SEDNA_PY_WIRE="+pyWire, "SEDNA_PY_KB="+pyKB)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s(make deps installs python3-numpy, python3-msgpack, python3-paho-mqtt)", err, out)
	}
	t.Logf("%s", out)
	raw, err := os.ReadFile(pyWire)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 {
		t.Fatalf("python wrote %q", raw)
	}
	for _, line := range lines {
		what, hx, _ := strings.Cut(line, " ")
		b, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatal(err)
		}
		if what == "model" {
			m, err := ml.Unmarshal(b)
			if err != nil || m.Samples() != 42 || len(m.Weights()) != len(n.Weights()) {
				t.Fatalf("the model Python wrote: %v", err)
			}
			for i, w := range m.Weights() {
				if w != n.Weights()[i] {
					t.Fatalf("weight %d: %v, want %v", i, w, n.Weights()[i])
				}
			}
			continue
		}
		env, err := topics.UnmarshalEnvelope(b, topics.Limits{})
		if err != nil || env.Kind != what {
			t.Fatalf("the envelope Python wrote: %v %+v", err, env)
		}
		var wm topics.WorkerMetrics
		if err := env.DecodeBody(&wm); err != nil || wm.Role != "train-0" || wm.Metrics["loss"] != 0.25 {
			t.Fatalf("its body: %v %+v", err, wm)
		}
	}
	checkKnowledgeBase(t, pyKB)
}

// checkKnowledgeBase reads the knowledge base Python wrote (sedna.kb) with
// lifelong.Unmarshal and checks that Predict answers each window as
// Python's knowledge base did (classes and unseen flags).
func checkKnowledgeBase(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := lifelong.Unmarshal(raw)
	if err != nil {
		t.Fatalf("the knowledge base Python wrote: %v", err)
	}
	var want map[string]struct {
		X       [][]float32
		Attr    []string
		Classes []int
		Unseen  []bool
	}
	js, err := os.ReadFile(path + ".json")
	if err != nil || json.Unmarshal(js, &want) != nil || len(want) != 3 {
		t.Fatalf("the windows Python wrote: %v", err)
	}
	for name, w := range want {
		win := make([]lifelong.Sample, len(w.X))
		for i := range w.X {
			win[i] = lifelong.Sample{X: w.X[i], Attr: w.Attr[i]}
		}
		classes, unseen, err := kb.Predict(win)
		if err != nil || !slices.Equal(classes, w.Classes) || !slices.Equal(unseen, w.Unseen) {
			t.Fatalf("window %s: Go answers %v %v (%v), Python %v %v", name, classes, unseen, err, w.Classes, w.Unseen)
		}
	}
	t.Logf("the knowledge base Python wrote: %d tasks, threshold %.3f; Go answers its windows as Python does", len(kb.Tasks), kb.Threshold)
}
