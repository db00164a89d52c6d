package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/onnx"
	"github.com/sedna-go/sedna/ml/onnx/onnxtest"
)

// TestModelInspectAndExport checks `sedna model inspect` and `sedna model
// export`: a model of the learning substrate is described; garbage is
// refused with the worker's reason; the export of a network to ONNX is,
// in a build with ONNX Runtime, described with its tensors and served
// with 196 values to 10 classes, and refused when a Model (--model)
// declares another shape; in a pure-Go build refused in one line naming
// sedna-onnx.
func TestModelInspectAndExport(t *testing.T) {
	if lib := onnxtest.Library(); lib != "" {
		t.Setenv(onnx.LibraryEnv, lib)
	}
	dir := t.TempDir()
	n, err := ml.NewMLP(196, []int{16}, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := n.MarshalBinary()
	bin := filepath.Join(dir, "m.bin")
	if err := os.WriteFile(bin, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runSedna(t, "", "model", "inspect", bin)
	if err != nil || !strings.Contains(out, "sedna model") || !strings.Contains(out, "mlp [196 16 10]") {
		t.Fatalf("inspect %s: %q %v", bin, out, err)
	}
	garbage := filepath.Join(dir, "g.bin")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runSedna(t, "", "model", "inspect", garbage); err == nil || !strings.Contains(err.Error(), "not a sedna model") {
		t.Fatalf("inspect garbage: %v", err)
	}
	exported := filepath.Join(dir, "m.onnx")
	if out, err := runSedna(t, "", "model", "export", bin, "--onnx", exported); err != nil || !strings.Contains(out, "as ONNX") {
		t.Fatalf("export: %q %v", out, err)
	}
	out, err = runSedna(t, "", "model", "inspect", exported)
	if !onnx.Built {
		if !errors.Is(err, onnx.ErrNoRuntime) {
			t.Fatalf("inspect ONNX without the runtime: %v", err)
		}
		return
	}
	if err != nil || !strings.Contains(out, "input  input [? 196] float") || !strings.Contains(out, "served: input [196 values a sample] -> probabilities [10 classes]") {
		t.Fatalf("inspect %s: %q %v", exported, out, err)
	}
	decl := filepath.Join(dir, "model.yaml")
	if err := os.WriteFile(decl, []byte("apiVersion: sedna.io/v1alpha1\nkind: Model\nmetadata: {name: m}\nspec: {url: /m.onnx, format: onnx, inputs: [{shape: [-1, 1, 14, 14]}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runSedna(t, "", "model", "inspect", exported, "--model", decl); err == nil || !strings.Contains(err.Error(), "the Model declares [1 14 14]") {
		t.Fatalf("inspect with a wrong declaration: %v", err)
	}
}
