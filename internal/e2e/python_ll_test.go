package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/lifelong/comfort"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/internal/shareddir"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Issue 20, Sedna's LifelongLearning: every role of the comfort example's
// LifelongLearningJob is a program written as Sedna's thermal-comfort
// example is (examples/python/lifelong: LifelongLearning, CSVDataParse,
// TaskDefinitionByDataAttr, Sedna's environment), run by /usr/bin/python3
// as nobody. Cycle 1: train.py learns a knowledge base of the Dataset's
// three tasks (there is no serving one yet), eval.py scores it
// alone, and the job deploys it; the status describes it (the Go side
// reads what Python wrote). inference.py answers a survey file row by
// row: A's rows with A's model, D's (a task not in the knowledge base)
// all flagged unseen in its own file, and the node, judging what the
// program published with the same knowledge base, keeps D's 200 (and
// none of A's) for labelling and an oracle labels them. D's surveys then join the Dataset:
// cycle 2's train.py learns a knowledge base of four tasks, eval.py scores
// it and the serving one (three evaluations in all), it is deployed, and the
// program, by Sedna's hot update, answers D's next rows as seen and more
// often right than before.
func TestLifelongPythonWorkers(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	sdk := repoPath(t, "sdk/python")
	dir := repoPath(t, "examples/python/lifelong")
	f := startFLWith(t, []string{"edge1"}, flOptions{})
	f.api = adminClient(t, f.cloud.BrokerURL())
	// The first training waits for the whole Dataset (the node reads its
	// file as it grows); D's labelled samples alone do not start another.
	o := comfort.Options{Dir: filepath.Join(f.dir, "data"), Node: "edge1", PerTask: 300, TrainAfter: 900}.WithDefaults()
	if err := comfort.Write(o); err != nil {
		t.Fatal(err)
	}
	// The survey file the inference program reads: 100 of A's, then 200
	// of D's; D's next 200 are appended after cycle 2.
	a, err := comfort.Samples(comfort.TaskA, 100, 9)
	if err != nil {
		t.Fatal(err)
	}
	d, err := comfort.Samples(comfort.TaskD, 400, 77)
	if err != nil {
		t.Fatal(err)
	}
	rows := append(append([]lifelong.Sample(nil), a...), d...) // row i+1 of the file, the program's sample i+1
	shared := shareddir.New(t)
	surveys, saved := filepath.Join(shared, "surveys.csv"), filepath.Join(shared, "saved")
	if err := os.Mkdir(saved, 0o777); err != nil || os.Chmod(saved, 0o777) != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(readFile(o.DatasetFile()), "\n")
	writeRows := func(lo, hi int, flag int) {
		t.Helper()
		var b strings.Builder
		if lo == 0 {
			b.WriteString(header + "\n")
		}
		for _, s := range rows[lo:hi] {
			b.WriteString(lifelong.FormatSample(s) + "\n")
		}
		fh, err := os.OpenFile(surveys, flag, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if _, err := fh.WriteString(b.String()); err != nil {
			t.Fatal(err)
		}
	}
	writeRows(0, 300, os.O_CREATE|os.O_WRONLY)

	py := func(script string, env ...string) string { return pyContainer(sdk, filepath.Join(dir, script), env...) }
	yaml := comfort.YAML(o)
	for old, repl := range map[string]string{
		"          - name: train\n            env:\n": "          - name: train\n            command: [/usr/bin/python3, " + filepath.Join(dir, "train.py") +
			"]\n            env:\n              - {name: PYTHONPATH, value: \"" + sdk + "\"}\n              - {name: PYTHONDONTWRITEBYTECODE, value: \"1\"}\n",
		"containers: [{name: eval}]":  "containers: [{name: eval, " + py("eval.py") + "}]",
		"containers: [{name: infer}]": "containers: [{name: infer, " + py("inference.py", "infer_dataset_url="+surveys, "UTD_SAVED_URL="+saved) + "}]",
	} {
		if !strings.Contains(yaml, old) {
			t.Fatalf("the example's templates changed (no %q); update the test", old)
		}
		yaml = strings.Replace(yaml, old, repl, 1)
	}
	rs, err := api.Parse([]byte(yaml), "lifelong.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	if rep, err := f.api.Apply(f.ctx, rs); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	}
	ref := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: o.Job}
	// The oracle knows a sample by the program's ID for it: its row.
	labelled := make(chan string, len(rows))
	startOracle(t, f.cloud.BrokerURL(), ref, incremental.LabellerOf(func(w incremental.WaitingExample) (int, bool) {
		i := strings.LastIndexByte(w.ID, '-')
		n, err := strconv.Atoi(w.ID[i+1:])
		if err != nil || n < 1 || n > len(rows) {
			return 0, false
		}
		labelled <- w.Attr
		return rows[n-1].Y, true
	}))
	kbOf := func(n int) func(api.Status) bool {
		return func(st api.Status) bool {
			return st.KnowledgeBase != nil && st.KnowledgeBase.AIModels.NumberOfAIModels == n
		}
	}
	logs := func(role string) string {
		return readFile(filepath.Join(f.dir, "edge1", "workers", workers.LogName(ref, role)))
	}
	st := f.waitStatus(t, ref, "a knowledge base of 3 tasks", 4*time.Minute, kbOf(3))
	t.Logf("cycle 1 (Python train and eval): %+v", st.KnowledgeBase.AIModels)

	// answers reads the program's answers file: per row, whether it was
	// right; and the rows of its unseen file.
	answers := func() (right []bool, unseen int) {
		for i, line := range strings.Split(strings.TrimSpace(readFile(surveys+"_out.csv")), "\n")[1:] {
			f := strings.Split(line, "\t")
			pred, err := strconv.Atoi(f[len(f)-1])
			if err != nil || i >= len(rows) {
				t.Fatalf("an answer line %q", line)
			}
			right = append(right, pred == rows[i].Y)
		}
		return right, strings.Count(readFile(filepath.Join(saved, "unseen_sample.csv")), "\n") - 1
	}
	waitAnswers := func(n int) ([]bool, int) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Minute); ; {
			if right, unseen := answers(); len(right) >= n {
				return right, unseen
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d answers after 3 minutes; the program's log:\n%s", n, logs("deploy"))
			}
			<-time.After(200 * time.Millisecond) // polling a file another process writes
		}
	}
	share := func(right []bool) float64 {
		n := 0
		for _, r := range right {
			if r {
				n++
			}
		}
		return float64(n) / float64(len(right))
	}
	right, unseen := waitAnswers(300)
	aRight, dBefore := share(right[:100]), share(right[100:300])
	t.Logf("the Python inference worker: A's 100 rows %.3f right; D's 200 %.3f right (the nearest task's model); %d rows flagged unseen",
		aRight, dBefore, unseen)
	if unseen != 200 {
		t.Fatalf("%d rows in the unseen file, want D's 200 (and none of A's)", unseen)
	}
	if aRight < 0.7 {
		t.Errorf("A's rows %.3f right with A's model: want 0.7 at least", aRight)
	}
	for n := 0; n < 200; n++ {
		select {
		case attr := <-labelled:
			if attr != comfort.TaskD {
				t.Fatalf("a sample of %q kept for labelling, want D's alone", attr)
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("%d of D's 200 samples kept by the node and labelled after 3 minutes", n)
		}
	}

	// Cycle 2: D's surveys join the Dataset.
	if err := comfort.Append(o, comfort.TaskD, 900, 78); err != nil {
		t.Fatal(err)
	}
	st = f.waitStatus(t, ref, "a knowledge base of 4 tasks", 4*time.Minute, kbOf(4))
	if n := st.KnowledgeBase.Samples.NumberOfLabeledUnseenSample; n != 200 {
		t.Errorf("the status counts %d labelled unseen samples, want 200", n)
	}
	version := float64(st.KnowledgeBase.Version)
	f.waitStatus(t, ref, "the node serving the new knowledge base", 2*time.Minute, func(st api.Status) bool { return st.Metrics["modelVersion"] >= version })
	writeRows(300, 500, os.O_APPEND|os.O_WRONLY)
	right, unseenAfter := waitAnswers(500)
	dAfter := share(right[300:500])
	t.Logf("cycle 2 deployed version %.0f (%+v); D's next 200 rows %.3f right (%.3f before), unseen file %d rows",
		version, st.KnowledgeBase.AIModels, dAfter, dBefore, unseenAfter)
	if unseenAfter != 200 {
		t.Errorf("%d rows in the unseen file after D was learnt, want D's first 200 alone", unseenAfter)
	}
	if dAfter <= dBefore {
		t.Errorf("D's rows %.3f right with D's model, %.3f with the nearest task's: want better", dAfter, dBefore)
	}
	train, eval := logs("train"), logs("eval")
	for _, want := range []string{"knowledge base of 3 tasks saved", "knowledge base of 4 tasks saved"} {
		if !strings.Contains(train, want) {
			t.Errorf("the train worker's log does not say %q:\n%s", want, train)
		}
	}
	if n := strings.Count(eval, "evaluated "); n != 3 { // the candidate alone, then candidate and serving
		t.Errorf("the eval worker's log names %d evaluations, want 3:\n%s", n, eval)
	}
}
