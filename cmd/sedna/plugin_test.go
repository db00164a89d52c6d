package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runSedna(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append(args, "--log-level", "error"))
	err := root.Execute()
	return out.String(), err
}

func TestPluginCommands(t *testing.T) {
	cache := t.TempDir()
	out, err := runSedna(t, "", "plugin", "list", "--cache-dir", cache)
	if err != nil || !strings.Contains(out, "IBT") || !strings.Contains(out, "threshold_img=0.5 threshold_box=0.5") || !strings.Contains(out, "TrimmedMean") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	out, err = runSedna(t, "", "plugin", "inspect", "../../examples/plugins/c-maxprob/c-maxprob.wasm", "--cache-dir", cache)
	if err != nil || !strings.Contains(out, "MaxProb (HardExampleMiner 1.0.0)") || !strings.Contains(out, `param threshold_max (default "0.6")`) {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if _, err = runSedna(t, "", "plugin", "inspect", "../../plugins/testdata/hostile/wrongabi/wrongabi.wasm"); err == nil || !strings.Contains(err.Error(), "ABI") {
		t.Fatalf("inspect of a wrong ABI: %v", err)
	}

	out, err = runSedna(t, `{"probs": [[0.5, 0.5], [0.99, 0.01]]}`, "plugin", "run", "CrossEntropy", "--param", "threshold_cross_entropy=0.6", "--cache-dir", cache)
	var verdicts []struct {
		Hard  bool    `json:"hard"`
		Score float32 `json:"score"`
	}
	if err != nil || json.Unmarshal([]byte(out), &verdicts) != nil || len(verdicts) != 2 || !verdicts[0].Hard || verdicts[1].Hard {
		t.Fatalf("run CrossEntropy: %v\n%s", err, out)
	}

	in := filepath.Join(t.TempDir(), "round.json")
	os.WriteFile(in, []byte(`{"updates": [{"weights": [1, 2], "samples": 1}, {"weights": [3, 4], "samples": 3}]}`), 0o644)
	out, err = runSedna(t, "", "plugin", "run", "FedAvg", "--input", in, "--cache-dir", cache)
	if err != nil || !strings.Contains(out, `"weights": [`) || !strings.Contains(out, "2.5") {
		t.Fatalf("run FedAvg: %v\n%s", err, out)
	}

	if _, err = runSedna(t, "{}", "plugin", "run", "NoSuch"); err == nil || !strings.Contains(err.Error(), "unknown plugin") {
		t.Fatalf("run of an unknown plugin: %v", err)
	}
	if _, err = runSedna(t, `{"probs": [[1]]}`, "plugin", "run", "IBT", "--param", "threshold=1"); err == nil || !strings.Contains(err.Error(), "no parameter") {
		t.Fatalf("run with a wrong parameter: %v", err)
	}

	// A third party's Go plugin, built by sedna and run by file.
	wasm := filepath.Join(t.TempDir(), "margin.wasm")
	if out, err = runSedna(t, "", "plugin", "build", "../../examples/plugins/go-margin", "-o", wasm); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err = runSedna(t, `{"probs": [[0.5, 0.45, 0.05]]}`, "plugin", "run", wasm, "--cache-dir", cache)
	if err != nil || json.Unmarshal([]byte(out), &verdicts) != nil || len(verdicts) != 1 || !verdicts[0].Hard {
		t.Fatalf("run the built plugin: %v\n%s", err, out)
	}
	if _, err = runSedna(t, "", "plugin", "build", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no .go or .c files") {
		t.Fatalf("build of an empty directory: %v", err)
	}
}
