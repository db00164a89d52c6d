package detection_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sedna-go/sedna/examples/jointinference/detection"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
	"github.com/sedna-go/sedna/plugins"
)

func TestData(t *testing.T) {
	train, test, err := detection.Data(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != detection.TrainScenes || len(test) != detection.TestScenes {
		t.Fatalf("%d train and %d test scenes", len(train), len(test))
	}
	for i, s := range slices.Concat(train, test) {
		if s.Width != detection.Size || s.Height != detection.Size || len(s.Objects) < 1 || len(s.Objects) > 3 {
			t.Fatalf("scene %d: %d×%d with %d objects", i, s.Width, s.Height, len(s.Objects))
		}
	}
	same := func(a, b []detect.Scene) bool {
		return slices.EqualFunc(a, b, func(x, y detect.Scene) bool {
			return slices.Equal(x.Pixels, y.Pixels) && slices.Equal(x.Objects, y.Objects)
		})
	}
	train2, test2, _ := detection.Data(1)
	_, test3, _ := detection.Data(2)
	if !same(train, train2) || !same(test, test2) || same(test, test3) {
		t.Fatal("the scenes are not a function of the seed")
	}
	if same(train[:len(test)], test) {
		t.Fatal("the test scenes are the training scenes")
	}
}

func TestSceneAndBytes(t *testing.T) {
	_, test, _ := detection.Data(1)
	s := test[0]
	b := detection.Bytes(s)
	if len(b) != detection.Size*detection.Size {
		t.Fatalf("%d bytes", len(b))
	}
	back := detection.Scene(b, s.Width, s.Height)
	if back.Width != s.Width || back.Height != s.Height || back.Objects != nil {
		t.Fatalf("scene %d×%d with objects %v", back.Width, back.Height, back.Objects)
	}
	for i, v := range back.Pixels {
		if d := v - s.Pixels[i]; d < -0.5/255-1e-6 || d > 0.5/255+1e-6 {
			t.Fatalf("pixel %d: %v sent as %d, back as %v", i, s.Pixels[i], b[i], v)
		}
	}
	if got := detection.Bytes(detect.Scene{Pixels: []float32{-1, 0, 0.5, 1, 2}}); !slices.Equal(got, []byte{0, 0, 128, 255, 255}) {
		t.Fatalf("Bytes clips and rounds to %v", got)
	}
	if got := detection.Scene([]byte{0, 51, 255}, 3, 1).Pixels; !slices.Equal(got, []float32{0, 0.2, 1}) {
		t.Fatalf("Scene scales to %v", got)
	}
	m, _ := ml.NewSoftmax(detection.Window*detection.Window, detection.Classes+1)
	if _, err := detection.Detector(m).Detect(detection.Scene(b[:100], detection.Size, detection.Size)); !errors.Is(err, detect.ErrInvalid) {
		t.Fatalf("a frame of 100 pixels for 32×32: %v", err)
	}
}

func TestTrainStopsWhenCancelled(t *testing.T) {
	train, _, _ := detection.Data(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := detection.Train(ctx, train); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// ibt is the joint inference of one IBT configuration over the test scenes.
type ibt struct {
	img, box   string
	hard, none int // scenes judged hard; scenes the miner could not judge
	joint      float64
}

// The example end to end: frames sent as 8-bit pixels, both detectors,
// and the real IBT miner (the WASM built-in) choosing the frames the cloud
// detects.
func TestJointInference(t *testing.T) {
	ctx := context.Background()
	train, test, err := detection.Data(1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	little, big, err := detection.Train(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("training both models took %v", time.Since(start).Round(time.Millisecond))
	if little.Kind() != ml.KindSoftmax || big.Kind() != ml.KindMLP ||
		little.Inputs() != 64 || big.Inputs() != 64 || little.Classes() != 11 || big.Classes() != 11 {
		t.Fatalf("little %v %d→%d, big %v %d→%d", little.Kind(), little.Inputs(), little.Classes(), big.Kind(), big.Inputs(), big.Classes())
	}
	d := detection.Detector(little)
	if d.Model != little || d.Window != 8 || d.Stride != 2 || d.MinScore != detection.MinScore || d.NMS != detection.NMS {
		t.Fatalf("detector %+v", *d)
	}

	frames := make([]detect.Scene, len(test))
	truth := make([][]detect.Box, len(test))
	for i, s := range test {
		frames[i] = detection.Scene(detection.Bytes(s), s.Width, s.Height)
		truth[i] = s.Objects
	}
	edge, err := detection.Detector(little).DetectAll(frames)
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := detection.Detector(big).DetectAll(frames)
	if err != nil {
		t.Fatal(err)
	}
	score := func(pred [][]detect.Box) float64 {
		t.Helper()
		m, _, err := detect.MeanAveragePrecision(pred, truth, detection.Classes, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	edgeMAP, cloudMAP := score(edge), score(cloud)
	t.Logf("mAP@0.5 over %d scenes: edge only %.3f, cloud only %.3f", len(frames), edgeMAP, cloudMAP)
	if cloudMAP <= edgeMAP {
		t.Fatalf("cloud mAP %.3f is not above edge mAP %.3f", cloudMAP, edgeMAP)
	}

	host, err := plugins.New(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	batch := plugins.Batch{Boxes: make([][]plugins.Box, len(edge))}
	for i, boxes := range edge {
		batch.Boxes[i] = make([]plugins.Box, len(boxes))
		for j, b := range boxes {
			batch.Boxes[i][j] = b.Array()
		}
	}
	// joint is the mAP when the hard scenes get the cloud's boxes.
	joint := func(verdicts []plugins.Verdict) (hard int, mAP float64) {
		t.Helper()
		if len(verdicts) != len(frames) {
			t.Fatalf("%d verdicts for %d scenes", len(verdicts), len(frames))
		}
		pred := slices.Clone(edge)
		for i, v := range verdicts {
			if v.Hard {
				pred[i] = cloud[i]
				hard++
			}
		}
		return hard, score(pred)
	}
	run := func(img, box string) ibt {
		t.Helper()
		miner, err := host.Miner("IBT", map[string]string{"threshold_img": img, "threshold_box": box})
		if err != nil {
			t.Fatal(err)
		}
		verdicts, err := miner.Mine(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		r := ibt{img: img, box: box}
		for _, v := range verdicts {
			if v.Reason != "" {
				r.none++
			}
		}
		r.hard, r.joint = joint(verdicts)
		return r
	}
	// random is the mean joint mAP of Sedna's Random miner sending the same
	// share of scenes, over a few fixed draws: what IBT's choice is worth.
	random := func(hard int) float64 {
		t.Helper()
		miner, err := host.Miner("Random", map[string]string{"random_ratio": fmt.Sprint(float64(hard) / float64(len(frames)))})
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for seed := range uint64(5) {
			verdicts, err := miner.Mine(ctx, plugins.Batch{Boxes: batch.Boxes, Seed: seed + 1})
			if err != nil {
				t.Fatal(err)
			}
			_, m := joint(verdicts)
			sum += m
		}
		return sum / 5
	}
	log := func(label string, r ibt) {
		t.Logf("IBT threshold_img %-4s threshold_box %-4s: %5.1f%% of scenes hard, joint mAP@0.5 %.3f (random choice of as many: %.3f)%s",
			r.img, r.box, 100*float64(r.hard)/float64(len(frames)), r.joint, random(r.hard), label)
	}
	sedna := run("0.9", "0.9")
	log(" <- Sedna's example", sedna)
	example := run(detection.ThresholdImg, detection.ThresholdBox)
	log(" <- this example", example)
	for _, p := range [][2]string{{"0.9", "0.8"}, {"0.9", "0.7"}, {"0.9", "0.65"}, {"0.9", "0.55"}, {"0.5", "0.9"}, {"0.5", "0.7"}, {"0.5", "0.6"}, {"0.5", "0.5"}} {
		log("", run(p[0], p[1]))
	}
	t.Logf("the edge detector finds nothing in %d scenes: IBT cannot judge them and keeps them at the edge", sedna.none)

	for _, r := range []ibt{sedna, example} {
		if r.hard == 0 || r.hard == len(frames) {
			t.Errorf("IBT (%s, %s) sends %d of %d scenes to the cloud", r.img, r.box, r.hard, len(frames))
		}
		if r.joint <= edgeMAP {
			t.Errorf("IBT (%s, %s): joint mAP %.3f is not above edge mAP %.3f", r.img, r.box, r.joint, edgeMAP)
		}
	}
	if share := float64(example.hard) / float64(len(frames)); share < 0.2 || share > 0.5 || example.joint < edgeMAP+0.1 {
		t.Errorf("the example's IBT sends %.1f%% of the scenes, joint mAP %.3f against %.3f at the edge: want 20-50%% and 0.1 better",
			100*share, example.joint, edgeMAP)
	}
}
