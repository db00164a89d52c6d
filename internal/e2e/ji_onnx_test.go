//go:build onnx && cgo

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/onnx"
	"github.com/sedna-go/sedna/ml/onnx/onnxtest"
)

// cnnModel is the committed PyTorch CNN's Model, as a user declares it:
// ONNX, its input and output named, the preprocessing it was trained with.
const cnnModel = `apiVersion: sedna.io/v1alpha1
kind: Model
metadata: {name: %s, namespace: default}
spec:
  url: push://default/%[1]s
  format: onnx
  inputs: [{name: image, shape: [%s]}]
  outputs: [{name: logits}]
  preprocess: {mean: [0.2860], std: [0.3530], layout: NCHW}
`

// jiService is the example's service again under another name, with
// another cloud model.
func jiService(name, cloudModel string) string {
	s := classify.YAML[strings.Index(classify.YAML, "kind: JointInferenceService"):]
	s = strings.Replace(s, "name: "+jiName, "name: "+name, 1)
	s = strings.Replace(s, "name: "+classify.BigModel, "name: "+cloudModel, 1)
	return "apiVersion: sedna.io/v1alpha1\n" + s
}

// onnxLibrary points this process's ONNX Runtime (the cloud's built-in
// workers run in it) at the library make onnxruntime installs.
func onnxLibrary(t *testing.T) {
	lib := onnxtest.Library()
	if lib == "" {
		t.Fatal("no ONNX Runtime library: run make onnxruntime")
	}
	t.Setenv(onnx.LibraryEnv, lib)
}

// Issue 20, must-show 1: the PyTorch CNN, exported to ONNX and served by
// ONNX Runtime, as the cloud model of a joint inference service, beside
// the example's pure-Go MLP in another service on the same edge model and
// miner, in one run: every test image to both. The offloaded share is the
// same (same edge model and miner: the same images, checked one by one);
// each image the CNN service offloads is answered with the class the CNN
// gives it when loaded here with the Model's declarations; the joint
// accuracies are logged side by side.
func TestJointInferenceONNXCloudModel(t *testing.T) {
	onnxLibrary(t)
	little, big, test := trainedModels(t)
	cnn, err := os.ReadFile(onnxtest.CNN())
	if err != nil {
		t.Fatal(err)
	}
	f := startJIWith(t, map[string][]byte{classify.LittleModel: little, classify.BigModel: big}, func(t testing.TB) []*api.Resource {
		rs, err := api.Parse([]byte(classify.YAML+"\n---\n"+fmt.Sprintf(cnnModel, "fashion-cnn", "-1, 1, 14, 14")+"---\n"+jiService("fashion-cnn", "fashion-cnn")), "cnn.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return rs
	})
	defer f.close()
	if _, err := f.api.PushModel(f.ctx, "default", "fashion-cnn", "", nil, bytes.NewReader(cnn)); err != nil {
		t.Fatal(err)
	}

	local, err := onnx.Load(cnn, onnx.Options{Pre: onnx.Preprocess{Mean: []float32{0.2860}, Std: []float32{0.3530}}})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	cnnClass, err := local.Predict(test.X)
	if err != nil {
		t.Fatal(err)
	}
	mlpClass, err := jiModels.bigM.Predict(test.X)
	if err != nil {
		t.Fatal(err)
	}
	cnnAlone, _ := ml.Accuracy(test.Y, cnnClass)
	mlpAlone, _ := ml.Accuracy(test.Y, mlpClass)

	cam := newCamera(t, f.edge, "cam-onnx")
	cam.waitServing(t, test, "cloud")
	cam.waitServingOn(t, "fashion-cnn", test, "cloud")
	for i := range test.Rows {
		label := test.Y[i]
		for _, svc := range []string{jiName, "fashion-cnn"} {
			cam.sendTo(t, svc, jointInferenceRequest(fmt.Sprintf("%s-%d", svc, i), classify.Bytes(test, i), label))
		}
	}
	cam.waitFor(t, jiName, 0, test.Rows, 3*time.Minute)
	cam.waitFor(t, "fashion-cnn", 0, test.Rows, 3*time.Minute)
	var correct [2]int
	var offloaded [2]int
	for i := range test.Rows {
		var rs [2]struct {
			class int
			cloud bool
		}
		for k, svc := range []string{jiName, "fashion-cnn"} {
			r, n := cam.result(fmt.Sprintf("%s-%d", svc, i))
			if n != 1 || r.Error != "" || r.Fallback != "" {
				t.Fatalf("%s image %d: answered %d times, %+v", svc, i, n, r)
			}
			rs[k].class, rs[k].cloud = r.Class, r.Source == "cloud"
			if r.Class == test.Y[i] {
				correct[k]++
			}
			if rs[k].cloud {
				offloaded[k]++
			}
		}
		if rs[0].cloud != rs[1].cloud {
			t.Fatalf("image %d offloaded by one service only", i)
		}
		switch {
		case rs[1].cloud && rs[1].class != cnnClass[i]:
			t.Fatalf("image %d: the CNN service's cloud answered %d, the CNN gives %d", i, rs[1].class, cnnClass[i])
		case rs[0].cloud && rs[0].class != mlpClass[i]:
			t.Fatalf("image %d: the MLP service's cloud answered %d, the MLP gives %d", i, rs[0].class, mlpClass[i])
		case !rs[0].cloud && rs[0].class != rs[1].class:
			t.Fatalf("image %d: the same edge model answered %d and %d", i, rs[0].class, rs[1].class)
		}
	}
	n := float64(test.Rows)
	t.Logf("issue 20 must-show 1, %d test images, threshold %s, %.1f%% offloaded by both: joint accuracy with the pure-Go MLP %.4f (MLP alone %.4f); with the PyTorch CNN under ONNX Runtime %.4f (CNN alone %.4f)",
		test.Rows, classify.Threshold, 100*float64(offloaded[1])/n, float64(correct[0])/n, mlpAlone, float64(correct[1])/n, cnnAlone)
}

// jointInferenceRequest is a labelled 14×14 frame.
func jointInferenceRequest(id string, img []byte, label int) jointinference.Request {
	return jointinference.Request{ID: id, Shape: []int{14, 14}, Data: img, Label: &label}
}

// waitServingOn is waitServing for another service than the example's.
func (cam *camera) waitServingOn(t testing.TB, service string, test interface{ Row(int) []float32 }, source string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("probe-%s-%d-%d", service, time.Now().UnixNano(), i)
		for k := range 20 {
			label := 0
			cam.sendTo(t, service, jointInferenceRequest(fmt.Sprintf("%s-%d", id, k), rowBytes(test.Row(k)), label))
		}
		wait := time.After(3 * time.Second)
	probe:
		for {
			for k := range 20 {
				if r, n := cam.result(fmt.Sprintf("%s-%d", id, k)); n > 0 && r.Error == "" && r.Source == source && r.Fallback == "" {
					return
				}
			}
			select {
			case <-cam.got:
			case <-wait:
				break probe
			}
		}
	}
	t.Fatalf("%s: no answer from the %s in 2 minutes", service, source)
}

func rowBytes(row []float32) []byte {
	b := make([]byte, len(row))
	for j, v := range row {
		b[j] = byte(min(255, max(0, v*255+0.5)))
	}
	return b
}

// Issue 20, must-show 4: a cloud model ONNX Runtime cannot serve (a
// truncated file, an operator it lacks, a shape the Model declares
// wrongly) is one line in the cloud worker's status, naming the model and
// what is wrong; the worker keeps running (not restarting, not
// crash-looping) and the edge answers the frames it would offload, with
// the fallback said in each answer. The same Model as an edge model is
// refused on the node with the Model's declarations, which travelled with
// the version.
func TestJointInferenceBadONNXModels(t *testing.T) {
	onnxLibrary(t)
	little, _, test := trainedModels(t)
	cnn, err := os.ReadFile(onnxtest.CNN())
	if err != nil {
		t.Fatal(err)
	}
	frob := onnxtest.Dense{W: [][]float32{make([]float32, 196), make([]float32, 196)}, B: []float32{0, 0}, Op: "Frobnicate"}.Bytes()
	cases := []struct {
		model, shape string
		data         []byte
		says         string
	}{
		{"cnn-truncated", "-1, 1, 14, 14", cnn[:len(cnn)/3], "not an ONNX model ONNX Runtime can run"},
		{"cnn-frobnicate", "-1, 196", frob, "Frobnicate"},
		{"cnn-wrong-shape", "-1, 1, 28, 28", cnn, "the Model declares [1 28 28]"},
	}
	f := startJIWith(t, map[string][]byte{classify.LittleModel: little}, func(t testing.TB) []*api.Resource {
		docs := classify.YAML[:strings.Index(classify.YAML, "---")] + "---\n"
		for _, c := range cases {
			docs += fmt.Sprintf(cnnModel, c.model, c.shape) + "---\n" + jiService("ji-"+c.model, c.model) + "\n---\n"
		}
		rs, err := api.Parse([]byte(docs), "bad.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return rs
	})
	defer f.close()
	for _, c := range cases {
		if _, err := f.api.PushModel(f.ctx, "default", c.model, "", nil, bytes.NewReader(c.data)); err != nil {
			t.Fatal(err)
		}
	}
	// The declarations travel with the version to the node: an edge model
	// declared with the wrong shape is refused there, in its worker's status.
	edgeWrong := jiService("ji-edge-wrong", "cnn-wrong-shape")
	edgeWrong = strings.Replace(edgeWrong, "name: "+classify.LittleModel, "name: cnn-wrong-shape", 1)
	rs, err := api.Parse([]byte(edgeWrong), "edge-wrong.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := f.api.Apply(f.ctx, rs); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
	st := f.waitStatusOf(t, "ji-edge-wrong", time.Minute, func(st api.Status) bool {
		for _, w := range st.Workers {
			if w.Role == "edge" && strings.Contains(w.Message, "edge model cnn-wrong-shape not usable") && strings.Contains(w.Message, "the Model declares [1 28 28]") {
				return w.Phase == api.WorkerRunning && w.Restarts == 0
			}
		}
		return false
	})
	for _, w := range st.Workers {
		t.Logf("ji-edge-wrong: %s worker on %s: %s", w.Role, w.Node, w.Message)
	}

	cam := newCamera(t, f.edge, "cam-bad")
	for _, c := range cases {
		svc := "ji-" + c.model
		st := f.waitStatusOf(t, svc, time.Minute, func(st api.Status) bool {
			for _, w := range st.Workers {
				if w.Role == "cloud" && strings.Contains(w.Message, c.says) {
					return true
				}
			}
			return false
		})
		for _, w := range st.Workers {
			if w.Role != "cloud" {
				continue
			}
			if w.Phase != api.WorkerRunning || w.Restarts != 0 || strings.Contains(w.Message, "\n") ||
				!strings.Contains(w.Message, "cloud model "+c.model+" not usable") {
				t.Fatalf("%s: cloud worker %+v", svc, w)
			}
			t.Logf("%s: cloud worker %s: %s", svc, w.Phase, w.Message)
		}
		// Frames the miner finds hard are answered by the edge, saying why.
		for k := range 40 {
			cam.sendTo(t, svc, jointInferenceRequest(fmt.Sprintf("%s-%d", svc, k), classify.Bytes(test, k), test.Y[k]))
		}
		cam.waitFor(t, svc, 0, 40, time.Minute)
		fallbacks := 0
		for k := range 40 {
			r, _ := cam.result(fmt.Sprintf("%s-%d", svc, k))
			if r.Source != "edge" || r.Error != "" {
				t.Fatalf("%s frame %d: %+v", svc, k, r)
			}
			if r.Fallback != "" {
				fallbacks++
			}
		}
		if fallbacks == 0 {
			t.Fatalf("%s: no frame of 40 offloaded and fallen back", svc)
		}
	}
}
