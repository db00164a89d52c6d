// Package python holds the tests of the Python worker library
// (sdk/python/sedna), run with Debian's /usr/bin/python3 and its
// python3-numpy, python3-msgpack and python3-paho-mqtt.
package python

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1", "SEDNA_GO_WIRE="+goWire, "SEDNA_PY_WIRE="+pyWire)
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
}
