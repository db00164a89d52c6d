package comfort_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/comfort"
)

func TestTasks(t *testing.T) {
	tasks := comfort.Tasks()
	names := map[string]bool{}
	for _, task := range tasks {
		names[task.Name()] = true
		back, err := comfort.ParseTask(strings.ToUpper(task.Name()))
		if err != nil || back != task {
			t.Fatalf("ParseTask(%q) = %v, %v", task.Name(), back, err)
		}
		p := task.Params()
		if task.Building == comfort.NV && (p.Band <= comfort.Task{Climate: task.Climate, Season: task.Season, Building: comfort.AC}.Params().Band) {
			t.Fatalf("%s: naturally ventilated occupants must accept a wider band", task.Name())
		}
	}
	if len(tasks) != 12 || len(names) != 12 {
		t.Fatalf("%d tasks, %d names", len(tasks), len(names))
	}
	all := comfort.AllTasks()
	for _, task := range all {
		names[task.Name()] = true
		back, err := comfort.ParseTask(task.Name())
		if err != nil || back != task {
			t.Fatalf("ParseTask(%q) = %v, %v", task.Name(), back, err)
		}
		site0 := task
		site0.Site = 0
		if d := task.Params().Preferred - site0.Params().Preferred; math.Abs(d-comfort.SiteShift[task.Site]) > 1e-12 {
			t.Fatalf("%s prefers %+.2f from its site 0", task.Name(), d)
		}
	}
	if len(all) != 12*comfort.Sites || len(names) != 12*comfort.Sites {
		t.Fatalf("%d tasks at all sites, %d names", len(all), len(names))
	}
	if _, err := comfort.Generate(comfort.Task{Climate: comfort.Cold, Season: comfort.Summer, Building: comfort.AC, Site: comfort.Sites}, 10, 1); !errors.Is(err, comfort.ErrInvalid) {
		t.Fatalf("a site past the last: %v", err)
	}
	if _, err := comfort.ParseTask("arctic-summer-ac"); !errors.Is(err, comfort.ErrInvalid) {
		t.Fatalf("unknown task: %v", err)
	}
	if _, err := comfort.Generate(comfort.Task{Climate: "lunar"}, 10, 1); !errors.Is(err, comfort.ErrInvalid) {
		t.Fatalf("unknown task: %v", err)
	}
	if _, err := comfort.Generate(tasks[0], 0, 1); !errors.Is(err, comfort.ErrInvalid) {
		t.Fatalf("zero samples: %v", err)
	}
}

func TestGenerateIsSeededAndConsistent(t *testing.T) {
	task := comfort.Task{Climate: comfort.Temperate, Season: comfort.Summer, Building: comfort.NV}
	a, err := comfort.Generate(task, 500, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := comfort.Generate(task, 500, 7)
	c, _ := comfort.Generate(task, 500, 8)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("generation is not a function of the seed")
	}
	p := task.Params()
	for i, s := range a {
		r, err := comfort.PMV(s.Conditions)
		if err != nil || r.PMV != s.PMV || r.PPD != s.PPD || s.Task != task.Name() {
			t.Fatalf("sample %d: stored PMV %v, recomputed %v (%v)", i, s.PMV, r.PMV, err)
		}
		d := s.Sensation - p.Preferred
		want := comfort.NoChange
		if d > p.Band {
			want = comfort.PreferCooler
		} else if d < -p.Band {
			want = comfort.PreferWarmer
		}
		if s.Preference != want || len(s.Features()) != len(comfort.FeatureNames) {
			t.Fatalf("sample %d: sensation %.2f labelled %v", i, s.Sensation, s.Preference)
		}
	}
	d, err := comfort.ToDataset("x", a)
	if err != nil || d.Rows != 500 || d.Cols != 7 || len(d.Classes) != 3 {
		t.Fatalf("dataset %v: %v", d, err)
	}
	if _, err := comfort.ToDataset("empty", nil); err == nil {
		t.Fatal("a data set of nothing")
	}
}

// The point of the tasks: a model trained on one population judges
// another badly, and a model per task recovers the accuracy.
func TestTasksReallyDiffer(t *testing.T) {
	type split struct {
		trainX, testX []float32
		trainY, testY []int
	}
	tasks := comfort.Tasks()
	data := make([]split, len(tasks))
	models := make([]*ml.Network, len(tasks))
	for i, task := range tasks {
		d, err := comfort.GenerateDataset(task, 3000, uint64(100+i))
		if err != nil {
			t.Fatal(err)
		}
		train, test, err := d.Split(0.25, 1)
		if err != nil {
			t.Fatal(err)
		}
		data[i] = split{train.X, test.X, train.Y, test.Y}
		m, err := ml.NewMLP(len(comfort.FeatureNames), []int{32}, 3, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Fit(context.Background(), train.X, train.Y, ml.FitOptions{
			Epochs: 30, Optimizer: ml.Adam, LearningRate: 0.003, Anneal: true, Seed: 1,
		}); err != nil {
			t.Fatal(err)
		}
		models[i] = m
	}
	acc := make([][]float64, len(tasks)) // acc[trained on][tested on]
	header := fmt.Sprintf("%-21s", "trained on \\ tested on")
	for j := range tasks {
		header += fmt.Sprintf(" %5d", j+1)
	}
	t.Log(header)
	var diag, off float64
	for i := range tasks {
		acc[i] = make([]float64, len(tasks))
		line := fmt.Sprintf("%2d %-19s", i+1, tasks[i].Name())
		for j := range tasks {
			ev, err := ml.Evaluate(models[i], data[j].testX, data[j].testY)
			if err != nil {
				t.Fatal(err)
			}
			acc[i][j] = ev.Accuracy
			line += fmt.Sprintf(" %5.2f", ev.Accuracy)
			if i == j {
				diag += ev.Accuracy
			} else {
				off += ev.Accuracy
			}
		}
		t.Log(line)
	}
	n := float64(len(tasks))
	diag, off = diag/n, off/(n*(n-1))
	t.Logf("mean accuracy: %.3f with the task's own model, %.3f with another task's", diag, off)
	if off > diag-0.10 {
		t.Errorf("other tasks' models lose only %.3f on average; the tasks do not differ", diag-off)
	}
	for j, task := range tasks {
		worst, best := 1.0, 0.0
		for i := range tasks {
			if i != j {
				worst, best = math.Min(worst, acc[i][j]), math.Max(best, acc[i][j])
			}
		}
		// 750 test samples: a standard error of about 1.6 points.
		if acc[j][j] < best-0.03 {
			t.Errorf("%s: its own model scores %.3f, another task's %.3f", task.Name(), acc[j][j], best)
		}
		if worst > acc[j][j]-0.15 {
			t.Errorf("%s: no other task's model loses 15 points on it (own %.3f, worst %.3f)", task.Name(), acc[j][j], worst)
		}
	}
	// The building type alone: air-conditioned and naturally ventilated
	// occupants of the same climate and season.
	for _, pair := range [][2]int{{0, 1}, {1, 0}} {
		i, j := pair[0], pair[1]
		t.Logf("%s -> %s: %.3f, own model %.3f", tasks[i].Name(), tasks[j].Name(), acc[i][j], acc[j][j])
		if acc[i][j] > acc[j][j]-0.05 {
			t.Errorf("%s model on %s: %.3f, own %.3f", tasks[i].Name(), tasks[j].Name(), acc[i][j], acc[j][j])
		}
	}
}
