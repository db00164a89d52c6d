package detect

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
)

// ErrInvalid is wrapped by every error of this package about its input.
var ErrInvalid = errors.New("invalid detection input")

// Box is a detected or a true object: pixel corners (XMin, YMin inside,
// XMax, YMax just outside), a score in [0, 1] (1 for the truth) and a class.
type Box struct {
	XMin, YMin, XMax, YMax float32
	Score                  float32
	Label                  int
}

// Array returns the box as [xmin, ymin, xmax, ymax, score, label], the
// layout Sedna's helmet-detection examples hand to their hard-example
// miners (IBT, Threshold).
func (b Box) Array() [6]float32 {
	return [6]float32{b.XMin, b.YMin, b.XMax, b.YMax, b.Score, float32(b.Label)}
}

// FromArray is the box of Array's layout: xmin, ymin, xmax, ymax, score,
// label.
func FromArray(a [6]float32) Box {
	return Box{XMin: a[0], YMin: a[1], XMax: a[2], YMax: a[3], Score: a[4], Label: int(a[5])}
}

// IoU is the area of the intersection of a and b over the area of their
// union; 0 when they do not overlap or either is empty.
func IoU(a, b Box) float32 {
	w := min(a.XMax, b.XMax) - max(a.XMin, b.XMin)
	h := min(a.YMax, b.YMax) - max(a.YMin, b.YMin)
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	union := (a.XMax-a.XMin)*(a.YMax-a.YMin) + (b.XMax-b.XMin)*(b.YMax-b.YMin) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Scene is a grey canvas with objects (digits) on it.
type Scene struct {
	Width, Height int
	Pixels        []float32 // Height rows of Width values in [0, 1]
	Objects       []Box     // the truth, Score 1
}

// SceneOptions shape the scenes Scenes draws. Zero fields take defaults.
type SceneOptions struct {
	Width, Height int     // canvas size; 32×32
	MinObjects    int     // objects per scene, at least; 1
	MaxObjects    int     // and at most; 3
	Noise         float32 // standard deviation of the pixel noise; 0.05
	Gap           int     // free pixels between objects; 2
}

func (o SceneOptions) withDefaults() SceneOptions {
	if o.Width == 0 {
		o.Width = 32
	}
	if o.Height == 0 {
		o.Height = 32
	}
	if o.MinObjects == 0 {
		o.MinObjects = 1
	}
	if o.MaxObjects == 0 {
		o.MaxObjects = max(3, o.MinObjects)
	}
	if o.Noise == 0 {
		o.Noise = 0.05
	}
	if o.Gap == 0 {
		o.Gap = 2
	}
	return o
}

// Scenes draws n scenes from seed: each places MinObjects to MaxObjects
// images of src (chosen at random) at random positions that keep Gap
// pixels between objects, over Gaussian noise; a pixel is the larger of
// the noise and the object's ink, clipped to [0, 1].
func Scenes(src *datasets.Dataset, n int, opts SceneOptions, seed uint64) ([]Scene, error) {
	o := opts.withDefaults()
	switch {
	case src == nil || src.Width == 0 || src.Height == 0 || src.Rows == 0:
		return nil, fmt.Errorf("detect: scenes: %w: the source must hold images", ErrInvalid)
	case n < 1 || o.MinObjects < 1 || o.MaxObjects < o.MinObjects || o.Noise < 0 || o.Gap < 0:
		return nil, fmt.Errorf("detect: scenes: %w: %d scenes, %+v", ErrInvalid, n, o)
	case src.Validate() != nil:
		return nil, fmt.Errorf("detect: scenes: %w: %v", ErrInvalid, src.Validate())
	case o.Width < src.Width || o.Height < src.Height:
		return nil, fmt.Errorf("detect: scenes: %w: %d×%d canvas for %d×%d objects", ErrInvalid, o.Width, o.Height, src.Width, src.Height)
	}
	rng := rand.New(rand.NewPCG(seed, 0xde7ec7))
	w, h := src.Width, src.Height
	out := make([]Scene, n)
	for i := range out {
		s := Scene{Width: o.Width, Height: o.Height, Pixels: make([]float32, o.Width*o.Height)}
		for p := range s.Pixels {
			s.Pixels[p] = max(0, float32(rng.NormFloat64())*o.Noise)
		}
		want := o.MinObjects + rng.IntN(o.MaxObjects-o.MinObjects+1)
		for tries := 0; len(s.Objects) < want && tries < 100; tries++ {
			x, y := rng.IntN(o.Width-w+1), rng.IntN(o.Height-h+1)
			b := Box{XMin: float32(x), YMin: float32(y), XMax: float32(x + w), YMax: float32(y + h), Score: 1}
			g := float32(o.Gap)
			if slices.ContainsFunc(s.Objects, func(a Box) bool {
				return IoU(Box{XMin: a.XMin - g, YMin: a.YMin - g, XMax: a.XMax + g, YMax: a.YMax + g}, b) > 0
			}) {
				continue
			}
			k := rng.IntN(src.Rows)
			b.Label = src.Y[k]
			img := src.Row(k)
			for yy := 0; yy < h; yy++ {
				for xx := 0; xx < w; xx++ {
					p := &s.Pixels[(y+yy)*o.Width+x+xx]
					*p = min(1, max(*p, img[yy*w+xx]))
				}
			}
			s.Objects = append(s.Objects, b)
		}
		out[i] = s
	}
	return out, nil
}

// patch copies the window×window patch at (x, y) of s into dst.
func (s *Scene) patch(x, y, window int, dst []float32) {
	for r := 0; r < window; r++ {
		copy(dst[r*window:(r+1)*window], s.Pixels[(y+r)*s.Width+x:(y+r)*s.Width+x+window])
	}
}

// Patches cuts a training set for a window classifier out of scenes: for
// each object, the window at its position and perObject−1 more shifted by
// up to one pixel, labelled with the object's class; and as many
// background windows (IoU below 0.3 with every object, so partial objects
// included), labelled classes (one past the last object class). Window
// must be the objects' size.
func Patches(scenes []Scene, window, classes, perObject int, seed uint64) (*datasets.Dataset, error) {
	if window < 1 || classes < 1 || perObject < 1 || len(scenes) == 0 {
		return nil, fmt.Errorf("detect: patches: %w: window %d, %d classes, %d per object, %d scenes",
			ErrInvalid, window, classes, perObject, len(scenes))
	}
	names := make([]string, classes+1)
	for c := range classes {
		names[c] = fmt.Sprint(c)
	}
	names[classes] = "background"
	d := &datasets.Dataset{Name: "patches", Cols: window * window, Width: window, Height: window, Classes: names}
	rng := rand.New(rand.NewPCG(seed, 0x9a7c4))
	buf := make([]float32, window*window)
	add := func(s *Scene, x, y, label int) {
		s.patch(x, y, window, buf)
		d.X = append(d.X, buf...)
		d.Y = append(d.Y, label)
		d.Rows++
	}
	for i := range scenes {
		s := &scenes[i]
		if s.Width < window || s.Height < window {
			return nil, fmt.Errorf("detect: patches: %w: scene %d is %d×%d", ErrInvalid, i, s.Width, s.Height)
		}
		for _, b := range s.Objects {
			if b.Label < 0 || b.Label >= classes {
				return nil, fmt.Errorf("detect: patches: %w: scene %d has class %d", ErrInvalid, i, b.Label)
			}
			x0, y0 := int(b.XMin), int(b.YMin)
			for k := range perObject {
				dx, dy := 0, 0
				if k > 0 {
					dx, dy = rng.IntN(3)-1, rng.IntN(3)-1
				}
				x := min(max(x0+dx, 0), s.Width-window)
				y := min(max(y0+dy, 0), s.Height-window)
				add(s, x, y, b.Label)
			}
		}
		for added, tries := 0, 0; added < perObject*max(len(s.Objects), 1) && tries < 1000; tries++ {
			x, y := rng.IntN(s.Width-window+1), rng.IntN(s.Height-window+1)
			if len(s.Objects) > 0 && tries%2 == 0 {
				// A near miss: an object's window moved by 3 to 5 pixels,
				// so the classifier learns where an object starts.
				b := s.Objects[rng.IntN(len(s.Objects))]
				x = int(b.XMin) + (3+rng.IntN(3))*(2*rng.IntN(2)-1)*rng.IntN(2)
				y = int(b.YMin) + (3+rng.IntN(3))*(2*rng.IntN(2)-1)*rng.IntN(2)
				if x < 0 || y < 0 || x > s.Width-window || y > s.Height-window {
					continue
				}
			}
			w := Box{XMin: float32(x), YMin: float32(y), XMax: float32(x + window), YMax: float32(y + window)}
			if slices.ContainsFunc(s.Objects, func(b Box) bool { return IoU(w, b) >= 0.3 }) {
				continue
			}
			add(s, x, y, classes)
			added++
		}
	}
	return d, d.Validate()
}

// Detector turns a window classifier into an object detector: it slides a
// Window×Window window over the scene in steps of Stride pixels, classifies
// every window in one batch, keeps the windows whose best object class
// scores at least MinScore, and removes, by greedy non-maximum suppression,
// every box that overlaps a higher-scoring one by more than NMS (IoU).
//
// Model must take Window×Window inputs and predict the object classes plus
// one last class, the background.
type Detector struct {
	Model    ml.Predictor
	Window   int     // 8 for the digits
	Stride   int     // 2
	MinScore float32 // 0.5
	NMS      float32 // 0.3
}

// Detect returns the boxes found in s, highest score first.
func (d *Detector) Detect(s Scene) ([]Box, error) {
	if d.Model == nil || d.Window < 1 || d.Stride < 1 || d.Model.Inputs() != d.Window*d.Window || d.Model.Classes() < 2 {
		return nil, fmt.Errorf("detect: %w: detector %+v", ErrInvalid, *d)
	}
	if s.Width < d.Window || s.Height < d.Window || len(s.Pixels) != s.Width*s.Height {
		return nil, fmt.Errorf("detect: %w: scene %d×%d with %d pixels", ErrInvalid, s.Width, s.Height, len(s.Pixels))
	}
	var xs, ys []int
	for y := 0; y+d.Window <= s.Height; y += d.Stride {
		for x := 0; x+d.Window <= s.Width; x += d.Stride {
			xs, ys = append(xs, x), append(ys, y)
		}
	}
	in := d.Window * d.Window
	batch := make([]float32, len(xs)*in)
	for i := range xs {
		s.patch(xs[i], ys[i], d.Window, batch[i*in:(i+1)*in])
	}
	p, err := d.Model.PredictProba(batch)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	classes := d.Model.Classes()
	objects := classes - 1 // the last class is the background
	var cand []Box
	for i := range xs {
		row := p[i*classes : (i+1)*classes]
		best := 0
		for c := 1; c < objects; c++ {
			if row[c] > row[best] {
				best = c
			}
		}
		if row[best] < d.MinScore {
			continue
		}
		x, y := float32(xs[i]), float32(ys[i])
		cand = append(cand, Box{XMin: x, YMin: y, XMax: x + float32(d.Window), YMax: y + float32(d.Window), Score: row[best], Label: best})
	}
	// Highest score first; ties by position, so the result is stable.
	slices.SortStableFunc(cand, func(a, b Box) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return 0
	})
	var keep []Box
	for _, c := range cand {
		if !slices.ContainsFunc(keep, func(k Box) bool { return IoU(k, c) > d.NMS }) {
			keep = append(keep, c)
		}
	}
	return keep, nil
}

// DetectAll runs Detect on each scene, on two goroutines; the result does
// not depend on how the scenes are shared out.
func (d *Detector) DetectAll(scenes []Scene) ([][]Box, error) {
	out := make([][]Box, len(scenes))
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < len(scenes); i += 2 {
				if out[i], errs[w] = d.Detect(scenes[i]); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// MeanAveragePrecision scores detections against the truth, as PASCAL VOC
// (2010 and later) does: per class, detections of all images are taken by
// falling score; one is a true positive when the true box of its class in
// its image that it overlaps most is not yet matched and overlaps it by at
// least iou (IoU), and a false positive otherwise; the average
// precision is the area under the precision–recall curve made monotone
// (all points). The mean is over the classes that have true boxes; perClass
// holds NaN for the others.
func MeanAveragePrecision(pred, truth [][]Box, classes int, iou float32) (mAP float64, perClass []float64, err error) {
	if len(pred) != len(truth) || classes < 1 || !(iou > 0 && iou <= 1) {
		return 0, nil, fmt.Errorf("detect: map: %w: %d predicted and %d true images, %d classes, IoU %v",
			ErrInvalid, len(pred), len(truth), classes, iou)
	}
	type det struct {
		img int
		box Box
	}
	perClass = make([]float64, classes)
	counted := 0
	for c := range classes {
		var dets []det
		npos := 0
		used := make([][]bool, len(truth))
		for i := range truth {
			used[i] = make([]bool, len(truth[i]))
			for _, b := range truth[i] {
				if b.Label < 0 || b.Label >= classes {
					return 0, nil, fmt.Errorf("detect: map: %w: true class %d", ErrInvalid, b.Label)
				}
				if b.Label == c {
					npos++
				}
			}
			for _, b := range pred[i] {
				if b.Label == c {
					dets = append(dets, det{i, b})
				}
			}
		}
		if npos == 0 {
			perClass[c] = math.NaN()
			continue
		}
		slices.SortStableFunc(dets, func(a, b det) int {
			switch {
			case a.box.Score > b.box.Score:
				return -1
			case a.box.Score < b.box.Score:
				return 1
			}
			return 0
		})
		prec := make([]float64, len(dets))
		rec := make([]float64, len(dets))
		tp := 0
		for k, dt := range dets {
			// The true box it overlaps most; a second detection of a box
			// already matched is a false positive.
			best, bestIoU := -1, float32(0)
			for j, g := range truth[dt.img] {
				if v := IoU(dt.box, g); g.Label == c && v > bestIoU {
					best, bestIoU = j, v
				}
			}
			if best >= 0 && bestIoU >= iou && !used[dt.img][best] {
				used[dt.img][best] = true
				tp++
			}
			prec[k] = float64(tp) / float64(k+1)
			rec[k] = float64(tp) / float64(npos)
		}
		// Make precision monotone from the right, then sum the area.
		for k := len(prec) - 2; k >= 0; k-- {
			prec[k] = math.Max(prec[k], prec[k+1])
		}
		ap, prevRec := 0.0, 0.0
		for k := range prec {
			ap += (rec[k] - prevRec) * prec[k]
			prevRec = rec[k]
		}
		perClass[c] = ap
		mAP += ap
		counted++
	}
	if counted == 0 {
		return 0, perClass, fmt.Errorf("detect: map: %w: no true boxes", ErrInvalid)
	}
	return mAP / float64(counted), perClass, nil
}
