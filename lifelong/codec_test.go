package lifelong_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/sedna-go/sedna/lifelong"
	"github.com/vmihailenco/msgpack/v5"
)

// smallKB is a knowledge base of two small tasks, by cluster.
func smallKB(t *testing.T) *lifelong.KB {
	t.Helper()
	cfg := config(lifelong.ByCluster)
	cfg.Epochs = 2
	kb, err := lifelong.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	samples := append(comfortSamples(t, taskA, 200, 1), comfortSamples(t, taskC, 200, 2)...)
	if _, err := kb.Learn(context.Background(), samples); err != nil {
		t.Fatal(err)
	}
	return kb
}

// An encoded knowledge base decodes to one that allocates and answers
// every sample as the original does, without the samples; a clone keeps
// them.
func TestAKnowledgeBaseRoundTrips(t *testing.T) {
	kb := smallKB(t)
	b, err := kb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := lifelong.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a knowledge base of %d tasks (%d clusters) encodes in %d bytes", len(kb.Tasks), kb.Mixture.K(), len(b))
	probe := append(comfortSamples(t, taskA, 50, 9), comfortSamples(t, taskD, 50, 10)...)
	for lo := 0; lo < len(probe); lo += 10 {
		c1, u1, err1 := kb.Predict(probe[lo : lo+10])
		c2, u2, err2 := back.Predict(probe[lo : lo+10])
		if err1 != nil || err2 != nil || !slices.Equal(c1, c2) || !slices.Equal(u1, u2) {
			t.Fatalf("window %d: %v %v (%v) against %v %v (%v)", lo/10, c1, u1, err1, c2, u2, err2)
		}
	}
	if len(back.Tasks) != len(kb.Tasks) || len(back.Samples(kb.Tasks[0].ID)) != 0 {
		t.Fatalf("decoded %d tasks of %d, with %d samples", len(back.Tasks), len(kb.Tasks), len(back.Samples(kb.Tasks[0].ID)))
	}
	clone, err := kb.Clone()
	if err != nil || len(clone.Samples(kb.Tasks[0].ID)) != len(kb.Samples(kb.Tasks[0].ID)) {
		t.Fatalf("a clone with %d samples of %d: %v", len(clone.Samples(kb.Tasks[0].ID)), len(kb.Samples(kb.Tasks[0].ID)), err)
	}
	if err := back.AddSamples("cluster:99", probe[:1]); !errors.Is(err, lifelong.ErrInvalid) {
		t.Fatalf("samples of no task: %v", err)
	}
}

// A knowledge base whose encoding is damaged, or whose parts disagree, is
// refused with ErrInvalid, never half-decoded.
func TestABadKnowledgeBaseIsRefused(t *testing.T) {
	good, err := smallKB(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := msgpack.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	task := func(m map[string]any, i int) map[string]any { return m["tasks"].([]any)[i].(map[string]any) }
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"not msgpack", []byte{0xc1, 0x00}},
		{"truncated", good[:len(good)/2]},
		{"a later version", edit(func(m map[string]any) { m["v"] = 2 })},
		{"a cluster of no task", edit(func(m map[string]any) { m["owner"].([]any)[0] = 7 })},
		{"a task claiming another's cluster", edit(func(m map[string]any) { task(m, 0)["components"] = task(m, 1)["components"] })},
		{"a repeated task", edit(func(m map[string]any) { task(m, 1)["id"] = task(m, 0)["id"] })},
		{"a damaged model", edit(func(m map[string]any) { task(m, 0)["model"] = []byte("junk") })},
		{"a model of other features", edit(func(m map[string]any) { m["config"].(map[string]any)["dim"] = 6 })},
		{"no mixture", edit(func(m map[string]any) { m["mixture"] = nil })},
		{"a negative weight", edit(func(m map[string]any) { m["mixture"].(map[string]any)["weights"].([]any)[0] = -0.5 })},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := lifelong.Unmarshal(c.b); !errors.Is(err, lifelong.ErrInvalid) {
				t.Fatalf("decoded: %v", err)
			}
		})
	}
}

// A knowledge base decoded without its samples, given all the job's
// samples again with one task's grown (as a training on the Dataset's node
// gives them), trains that task alone and keeps the others' models.
func TestUpdateTrainsOnlyTheTasksWithNewSamples(t *testing.T) {
	for _, method := range []lifelong.Method{lifelong.ByAttribute, lifelong.ByCluster} {
		t.Run(string(method), func(t *testing.T) {
			cfg := config(method)
			cfg.Epochs = 2
			kb, err := lifelong.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			a, c := comfortSamples(t, taskA, 300, 1), comfortSamples(t, taskC, 300, 2)
			if _, err := kb.Learn(context.Background(), append(append([]lifelong.Sample(nil), a...), c...)); err != nil {
				t.Fatal(err)
			}
			raw, err := kb.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back, err := lifelong.Unmarshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			before := map[string]lifelong.Task{} // copies: Update changes the tasks in place
			for _, task := range back.Tasks {
				before[task.ID] = *task
			}
			more := append(append(append([]lifelong.Sample(nil), a...), c...), comfortSamples(t, taskC, 100, 3)...)
			trained, err := back.Update(context.Background(), more)
			if err != nil {
				t.Fatal(err)
			}
			allocated, _, err := back.Allocate(comfortSamples(t, taskC, 10, 4))
			if err != nil {
				t.Fatal(err)
			}
			cTask := back.Tasks[allocated[0]].ID
			if len(back.Tasks) != len(before) || !slices.Contains(trained, cTask) {
				t.Fatalf("trained %v of %d tasks (%d before); C is %s", trained, len(back.Tasks), len(before), cTask)
			}
			for _, task := range back.Tasks {
				if !slices.Contains(trained, task.ID) && task.Model != before[task.ID].Model {
					t.Fatalf("task %s was not trained but its model changed", task.ID)
				}
				if slices.Contains(trained, task.ID) && task.Total <= before[task.ID].Total {
					t.Fatalf("task %s trained on %d samples, %d before", task.ID, task.Total, before[task.ID].Total)
				}
			}
		})
	}
}
