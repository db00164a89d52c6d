package detect_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/detect"
)

func box(x, y, w, h, score float32, label int) detect.Box {
	return detect.Box{XMin: x, YMin: y, XMax: x + w, YMax: y + h, Score: score, Label: label}
}

func TestIoU(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b detect.Box
		want float32
	}{
		{"same", box(0, 0, 8, 8, 1, 0), box(0, 0, 8, 8, 1, 0), 1},
		{"apart", box(0, 0, 8, 8, 1, 0), box(10, 0, 8, 8, 1, 0), 0},
		{"touching", box(0, 0, 8, 8, 1, 0), box(8, 0, 8, 8, 1, 0), 0},
		{"shifted one pixel each way", box(0, 0, 8, 8, 1, 0), box(1, 1, 8, 8, 1, 0), 49.0 / 79},
		{"half", box(0, 0, 8, 8, 1, 0), box(4, 0, 8, 8, 1, 0), 32.0 / 96},
		{"inside", box(0, 0, 8, 8, 1, 0), box(2, 2, 4, 4, 1, 0), 16.0 / 64},
		{"empty", box(0, 0, 0, 0, 1, 0), box(0, 0, 0, 0, 1, 0), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := detect.IoU(tc.a, tc.b); math.Abs(float64(got-tc.want)) > 1e-6 {
				t.Fatalf("IoU = %v, want %v", got, tc.want)
			}
		})
	}
	if got := box(1, 2, 3, 4, 0.5, 7).Array(); got != [6]float32{1, 2, 4, 6, 0.5, 7} {
		t.Fatalf("Array() = %v", got)
	}
}

func TestMeanAveragePrecision(t *testing.T) {
	a, b := box(0, 0, 8, 8, 1, 0), box(20, 20, 8, 8, 1, 1)
	for _, tc := range []struct {
		name  string
		pred  [][]detect.Box
		truth [][]detect.Box
		want  float64
	}{
		{"perfect", [][]detect.Box{{box(0, 0, 8, 8, 0.9, 0), box(20, 20, 8, 8, 0.8, 1)}}, [][]detect.Box{{a, b}}, 1},
		{"a false positive after the hit costs nothing",
			[][]detect.Box{{box(0, 0, 8, 8, 0.9, 0), box(12, 12, 8, 8, 0.2, 0), box(20, 20, 8, 8, 0.8, 1)}}, [][]detect.Box{{a, b}}, 1},
		{"a false positive before the hit halves the precision",
			[][]detect.Box{{box(0, 0, 8, 8, 0.5, 0), box(12, 12, 8, 8, 0.9, 0), box(20, 20, 8, 8, 0.8, 1)}}, [][]detect.Box{{a, b}}, (0.5 + 1) / 2},
		{"a second detection of one object is a false positive",
			[][]detect.Box{{box(1, 1, 8, 8, 0.95, 0), box(0, 0, 8, 8, 0.9, 0)}, {}}, [][]detect.Box{{a}, {a}}, 0.5},
		{"a missed class scores zero", [][]detect.Box{{box(0, 0, 8, 8, 0.9, 0)}}, [][]detect.Box{{a, b}}, 0.5},
		{"the wrong class is a miss", [][]detect.Box{{box(0, 0, 8, 8, 0.9, 1)}}, [][]detect.Box{{a}}, 0},
		{"too little overlap is a miss", [][]detect.Box{{box(4, 0, 8, 8, 0.9, 0)}}, [][]detect.Box{{a}}, 0},
		{"half the objects found", [][]detect.Box{{box(0, 0, 8, 8, 0.9, 0)}, {}}, [][]detect.Box{{a}, {a}}, 0.5},
		{"two images, ranked across them", [][]detect.Box{{box(0, 0, 8, 8, 0.3, 0)}, {box(5, 5, 8, 8, 0.9, 0)}},
			[][]detect.Box{{a}, {a}}, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, per, err := detect.MeanAveragePrecision(tc.pred, tc.truth, 3, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("mAP = %v (per class %v), want %v", got, per, tc.want)
			}
			if !math.IsNaN(per[2]) {
				t.Fatalf("class 2 has no true box, AP %v, want NaN", per[2])
			}
		})
	}
	for _, tc := range []struct {
		name        string
		pred, truth [][]detect.Box
		iou         float32
	}{
		{"unequal image counts", [][]detect.Box{{}}, nil, 0.5},
		{"no true boxes", [][]detect.Box{{}}, [][]detect.Box{{}}, 0.5},
		{"IoU threshold 0", [][]detect.Box{{}}, [][]detect.Box{{a}}, 0},
		{"true class out of range", [][]detect.Box{{}}, [][]detect.Box{{box(0, 0, 1, 1, 1, 5)}}, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := detect.MeanAveragePrecision(tc.pred, tc.truth, 3, tc.iou); !errors.Is(err, detect.ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
		})
	}
}

func TestScenes(t *testing.T) {
	digits, err := datasets.Digits()
	if err != nil {
		t.Fatal(err)
	}
	scenes, err := detect.Scenes(digits, 100, detect.SceneOptions{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := detect.Scenes(digits, 100, detect.SceneOptions{}, 5)
	other, _ := detect.Scenes(digits, 100, detect.SceneOptions{}, 6)
	same := func(a, b []detect.Scene) bool {
		return slices.EqualFunc(a, b, func(x, y detect.Scene) bool {
			return slices.Equal(x.Pixels, y.Pixels) && slices.Equal(x.Objects, y.Objects)
		})
	}
	if !same(scenes, again) || same(scenes, other) {
		t.Fatal("scenes are not a function of the seed")
	}
	counts := map[int]int{}
	for i, s := range scenes {
		counts[len(s.Objects)]++
		if s.Width != 32 || s.Height != 32 || len(s.Pixels) != 32*32 {
			t.Fatalf("scene %d: %d×%d", i, s.Width, s.Height)
		}
		for _, p := range s.Pixels {
			if p < 0 || p > 1 {
				t.Fatalf("scene %d: pixel %v", i, p)
			}
		}
		for j, o := range s.Objects {
			if o.XMin < 0 || o.YMin < 0 || o.XMax > 32 || o.YMax > 32 || o.XMax-o.XMin != 8 || o.Label < 0 || o.Label > 9 {
				t.Fatalf("scene %d: object %+v", i, o)
			}
			for _, p := range s.Objects[j+1:] {
				grown := detect.Box{XMin: p.XMin - 2, YMin: p.YMin - 2, XMax: p.XMax + 2, YMax: p.YMax + 2}
				if detect.IoU(grown, o) > 0 {
					t.Fatalf("scene %d: objects %+v and %+v closer than 2 pixels", i, o, p)
				}
			}
		}
	}
	if counts[1] == 0 || counts[2] == 0 || counts[3] == 0 || len(counts) != 3 {
		t.Fatalf("objects per scene: %v, want 1 to 3", counts)
	}
	for _, tc := range []struct {
		name string
		src  *datasets.Dataset
		n    int
		o    detect.SceneOptions
	}{
		{"no source", nil, 1, detect.SceneOptions{}},
		{"no scenes", digits, 0, detect.SceneOptions{}},
		{"a broken source", &datasets.Dataset{Rows: 1, Cols: 64, Width: 8, Height: 8, X: make([]float32, 10), Y: []int{0},
			Classes: []string{"a", "b"}}, 1, detect.SceneOptions{}},
		{"canvas smaller than a digit", digits, 1, detect.SceneOptions{Width: 4, Height: 4}},
		{"more minimum than maximum", digits, 1, detect.SceneOptions{MinObjects: 3, MaxObjects: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := detect.Scenes(tc.src, tc.n, tc.o, 1); !errors.Is(err, detect.ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
		})
	}
}

func TestPatches(t *testing.T) {
	digits, _ := datasets.Digits()
	scenes, _ := detect.Scenes(digits, 20, detect.SceneOptions{}, 1)
	objects := 0
	for _, s := range scenes {
		objects += len(s.Objects)
	}
	p, err := detect.Patches(scenes, 8, 10, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	counts := p.ClassCounts()
	if p.Cols != 64 || len(p.Classes) != 11 || p.Classes[10] != "background" || counts[10] != 4*objects {
		t.Fatalf("%d columns, classes %v, counts %v for %d objects", p.Cols, p.Classes, counts, objects)
	}
	if n := p.Rows - counts[10]; n != 4*objects {
		t.Fatalf("%d object patches for %d objects", n, objects)
	}
	if _, err := detect.Patches(scenes, 8, 5, 4, 1); !errors.Is(err, detect.ErrInvalid) {
		t.Fatalf("labels beyond the classes: %v", err)
	}
}

// The whole stand-in: scenes from training digits, a window classifier,
// the detector on scenes from held-out digits, scored by mAP.
func TestDetectorFindsDigits(t *testing.T) {
	digits, err := datasets.Digits()
	if err != nil {
		t.Fatal(err)
	}
	train, test, _ := digits.Split(0.3, 1)
	trainScenes, _ := detect.Scenes(train, 600, detect.SceneOptions{}, 1)
	patches, err := detect.Patches(trainScenes, 8, 10, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	model, _ := ml.NewMLP(64, []int{128}, 11, 1)
	if err := model.Fit(context.Background(), patches.X, patches.Y, ml.FitOptions{
		Epochs: 10, Optimizer: ml.Adam, LearningRate: 0.003, Anneal: true, Seed: 1,
	}); err != nil {
		t.Fatal(err)
	}
	det := &detect.Detector{Model: model, Window: 8, Stride: 2, MinScore: 0.5, NMS: 0.3}
	scenes, _ := detect.Scenes(test, 200, detect.SceneOptions{}, 3)
	pred, err := det.DetectAll(scenes)
	if err != nil {
		t.Fatal(err)
	}
	truth := make([][]detect.Box, len(scenes))
	boxes, objects, unsure := 0, 0, 0
	for i, s := range scenes {
		truth[i] = s.Objects
		objects += len(s.Objects)
		boxes += len(pred[i])
		if !slices.IsSortedFunc(pred[i], func(a, b detect.Box) int { return int(math.Copysign(1, float64(b.Score-a.Score))) }) {
			t.Fatalf("scene %d: boxes not sorted by score", i)
		}
		for _, b := range pred[i] {
			if b.Score < 0.5 || b.Score > 1 || b.Label < 0 || b.Label > 9 {
				t.Fatalf("scene %d: box %v", i, b.Array())
			}
			if b.Score < 0.9 {
				unsure++
			}
		}
		one, _ := det.Detect(s)
		if !slices.Equal(one, pred[i]) {
			t.Fatalf("scene %d: Detect and DetectAll disagree", i)
		}
	}
	mAP, per, err := detect.MeanAveragePrecision(pred, truth, 10, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mAP@0.5 %.3f over %d scenes (%d objects, %d boxes, %d scored below 0.9); per class %.2f",
		mAP, len(scenes), objects, boxes, unsure, per)
	if mAP < 0.6 {
		t.Fatalf("mAP@0.5 %.3f, want at least 0.6", mAP)
	}
	if unsure == 0 {
		t.Fatal("every box is confident: the hard-example miners would have nothing to mine")
	}
	bad := &detect.Detector{Model: model, Window: 7, Stride: 2}
	if _, err := bad.Detect(scenes[0]); !errors.Is(err, detect.ErrInvalid) {
		t.Fatalf("window that does not fit the model: %v", err)
	}
}

func TestFromArrayInvertsArray(t *testing.T) {
	b := detect.Box{XMin: 1, YMin: 2, XMax: 9, YMax: 10, Score: 0.75, Label: 7}
	if got := detect.FromArray(b.Array()); got != b {
		t.Fatalf("FromArray(Array()) = %+v, want %+v", got, b)
	}
}
