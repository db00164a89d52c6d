package detection

import (
	"context"
	"testing"
	"time"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
	"github.com/sedna-go/sedna/plugins"
)

func TestScratch(t *testing.T) {
	ctx := context.Background()
	train, test, err := Data(1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range test {
		o := test[i].Objects
		test[i] = Scene(Bytes(test[i]), Size, Size)
		test[i].Objects = o
	}
	t0 := time.Now()
	little, big, err := Train(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("train %v", time.Since(t0))
	truth := make([][]detect.Box, len(test))
	for i, s := range test {
		truth[i] = s.Objects
	}
	h, err := plugins.New(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	eval := func(name string, lm, bm ml.Model) {
		le, _ := Detector(lm).DetectAll(test)
		be, _ := Detector(bm).DetectAll(test)
		em, _, _ := detect.MeanAveragePrecision(le, truth, 10, 0.5)
		cm, _, _ := detect.MeanAveragePrecision(be, truth, 10, 0.5)
		t.Logf("%s edge %.3f cloud %.3f", name, em, cm)
		batch := plugins.Batch{Boxes: make([][]plugins.Box, len(le))}
		for i, bs := range le {
			batch.Boxes[i] = []plugins.Box{}
			for _, b := range bs {
				batch.Boxes[i] = append(batch.Boxes[i], b.Array())
			}
		}
		for _, p := range [][2]string{{"0.9", "0.9"}, {"0.5", "0.5"}, {"0.5", "0.9"}, {"0.9", "0.8"}, {"0.9", "0.7"}, {"0.9", "0.6"}, {"0.8", "0.8"}, {"0.7", "0.9"}, {"0.7", "0.8"}, {"0.6", "0.9"}, {"0.5", "0.7"}, {"0.95", "0.95"}} {
			m, err := h.Miner("IBT", map[string]string{"threshold_img": p[0], "threshold_box": p[1]})
			if err != nil {
				t.Fatal(err)
			}
			v, err := m.Mine(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			joint := make([][]detect.Box, len(le))
			hard, none := 0, 0
			for i := range v {
				if v[i].Reason != "" {
					none++
				}
				if v[i].Hard {
					hard++
					joint[i] = be[i]
				} else {
					joint[i] = le[i]
				}
			}
			jm, _, _ := detect.MeanAveragePrecision(joint, truth, 10, 0.5)
			t.Logf("  %v hard %.1f%% joint %.3f (no boxes %d)", p, 100*float64(hard)/float64(len(v)), jm, none)
		}
	}
	eval("default", little, big)
}
