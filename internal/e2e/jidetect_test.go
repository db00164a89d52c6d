package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/jointinference/detection"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml/detect"
	"github.com/sedna-go/sedna/plugins"
)

// Must-show 2: the detection example through the whole system. IBT, with
// the example's parameters, offloads exactly the frames whose edge boxes it
// finds uncertain, and the joint mAP beats the edge detector's alone.
func TestJointInferenceDetection(t *testing.T) {
	ctx := context.Background()
	train, test, err := detection.Data(1)
	if err != nil {
		t.Fatal(err)
	}
	little, big, err := detection.Train(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := little.MarshalBinary()
	bb, _ := big.MarshalBinary()
	rs, err := api.Parse([]byte(detection.YAML), "detection.yaml")
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for _, r := range rs {
		if js, ok := r.Spec.(*api.JointInferenceServiceSpec); ok {
			for _, kv := range js.EdgeWorker.HardExampleMining.Parameters {
				params[kv.Key] = kv.Value
			}
		}
	}
	if params["threshold_img"] != detection.ThresholdImg || params["threshold_box"] != detection.ThresholdBox {
		t.Fatalf("detection.yaml's IBT parameters %v differ from the package's", params)
	}
	f := startJIWith(t, map[string][]byte{detection.LittleModel: lb, detection.BigModel: bb},
		func(testing.TB) []*api.Resource { return rs })
	defer f.close()

	// What the system must do, frame by frame: the edge detector's boxes
	// on the frame as the camera sends it, judged by the WASM IBT.
	frames := make([]detect.Scene, len(test))
	edgeBoxes := make([][]detect.Box, len(test))
	batch := plugins.Batch{Boxes: make([][]plugins.Box, len(test))}
	for i, s := range test {
		frames[i] = detection.Scene(detection.Bytes(s), s.Width, s.Height)
		if edgeBoxes[i], err = detection.Detector(little).Detect(frames[i]); err != nil {
			t.Fatal(err)
		}
		for _, b := range edgeBoxes[i] {
			batch.Boxes[i] = append(batch.Boxes[i], plugins.Box(b.Array()))
		}
	}
	ibt, err := f.cloud.Plugins().Miner("IBT", params)
	if err != nil {
		t.Fatal(err)
	}
	verdicts, err := ibt.Mine(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}

	cam := newCamera(t, f.edge, "cam-1")
	const service = "digits-detection"
	ask := func(prefix string) []jointinference.Result {
		for i, s := range frames {
			cam.sendTo(t, service, jointinference.Request{ID: fmt.Sprintf("%s-%d", prefix, i), Shape: []int{s.Height, s.Width}, Data: detection.Bytes(s)})
		}
		cam.waitFor(t, prefix, 0, len(frames), 2*time.Minute)
		out := make([]jointinference.Result, len(frames))
		for i := range frames {
			out[i], _ = cam.result(fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}
	// Until both workers serve (a frame sent before the edge worker
	// listens reaches no one): probe with a frame IBT finds hard until the
	// cloud answers it. Then the run that counts.
	hard := -1
	for i, v := range verdicts {
		if v.Hard {
			hard = i
			break
		}
	}
	if hard < 0 {
		t.Fatal("IBT finds no frame hard")
	}
	deadline := time.Now().Add(2 * time.Minute)
	serving := false
	for try := 0; !serving; try++ {
		if time.Now().After(deadline) {
			t.Fatal("no answer from the cloud in 2 minutes")
		}
		id := fmt.Sprintf("probe-%d", try)
		cam.sendTo(t, service, jointinference.Request{ID: id, Shape: []int{32, 32}, Data: detection.Bytes(frames[hard])})
		wait := time.After(time.Second)
	probe:
		for {
			if r, n := cam.result(id); n > 0 {
				serving = r.Source == "cloud" && r.Error == ""
				break
			}
			select {
			case <-cam.got:
			case <-wait:
				break probe
			}
		}
	}
	results := ask("run")

	pred := make([][]detect.Box, len(test))
	truth := make([][]detect.Box, len(test))
	offloaded, mismatched := 0, 0
	for i, r := range results {
		truth[i] = test[i].Objects
		for _, b := range r.Boxes {
			pred[i] = append(pred[i], detect.FromArray(b))
		}
		cloud := r.Source == "cloud"
		if cloud {
			offloaded++
		}
		if cloud != verdicts[i].Hard || r.Hard != verdicts[i].Hard {
			mismatched++
		}
	}
	joint, _, err := detect.MeanAveragePrecision(pred, truth, detection.Classes, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	edgeOnly, _, _ := detect.MeanAveragePrecision(edgeBoxes, truth, detection.Classes, 0.5)
	t.Logf("%d frames: IBT(threshold_img %s, threshold_box %s) sent %d (%.1f%%) to the cloud; mAP@0.5 joint %.3f, edge only %.3f",
		len(frames), detection.ThresholdImg, detection.ThresholdBox, offloaded, 100*float64(offloaded)/float64(len(frames)), joint, edgeOnly)
	if mismatched > 0 {
		t.Fatalf("%d frames offloaded otherwise than IBT judges them", mismatched)
	}
	if offloaded == 0 || offloaded == len(frames) || joint <= edgeOnly {
		t.Fatalf("offloaded %d of %d, joint mAP %.3f vs edge-only %.3f", offloaded, len(frames), joint, edgeOnly)
	}
}
