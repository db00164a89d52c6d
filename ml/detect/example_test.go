package detect_test

import (
	"context"
	"fmt"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/detect"
)

// Place digits on canvases, train a window classifier on patches cut from
// them, and detect digits in a new scene as [xmin ymin xmax ymax score
// label] boxes.
func Example() {
	digits, _ := datasets.Digits()
	scenes, _ := detect.Scenes(digits, 300, detect.SceneOptions{}, 1)
	patches, _ := detect.Patches(scenes, 8, 10, 3, 1)
	model, _ := ml.NewMLP(64, []int{64}, 11, 1)
	_ = model.Fit(context.Background(), patches.X, patches.Y, ml.FitOptions{Epochs: 5, Optimizer: ml.Adam, Seed: 1})

	det := &detect.Detector{Model: model, Window: 8, Stride: 2, MinScore: 0.5, NMS: 0.3}
	scene, _ := detect.Scenes(digits, 1, detect.SceneOptions{MinObjects: 2, MaxObjects: 2}, 42)
	boxes, err := det.Detect(scene[0])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("objects:", len(scene[0].Objects), "- found some:", len(boxes) > 0)
	a := boxes[0].Array() // [xmin ymin xmax ymax score label]
	fmt.Println("8×8 box:", a[2]-a[0] == 8 && a[3]-a[1] == 8, "- scored:", a[4] >= 0.5)
	// Output:
	// objects: 2 - found some: true
	// 8×8 box: true - scored: true
}
