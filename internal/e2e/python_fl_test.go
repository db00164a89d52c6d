package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/federated/digits"
	"github.com/sedna-go/sedna/federated"
	"github.com/sedna-go/sedna/internal/shareddir"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Issue 20, must-show 2 for federated learning: a training worker of a
// FederatedLearningJob is examples/python/federated/train.py, a program
// written against Sedna's Python lib (FederatedLearning, CSVDataParse,
// Context, BaseConfig), run by Debian's /usr/bin/python3 with sdk/python
// on PYTHONPATH (as nobody, the agents running as root), on a node of its
// own (edge-5), beside four built-in Go training workers (edge-0 to
// edge-3) in the same job ("digits-py": the digits split over five nodes,
// Dirichlet 0.5, ten rounds of FedAvg). The same job with five Go workers
// (edge-0 to edge-4, the same split, initial model and settings:
// "digits-go") runs beside it. The YAML is the example's but for the
// Python worker's template (its command, PYTHONPATH) and its Dataset's
// file, copied where nobody may read it; the agent gives the worker that
// file as TRAIN_DATASET_URL, as Sedna's controller does. Asserted:
//
//   - both jobs complete all their rounds;
//   - every round of the mixed job aggregates 5 of 5 clients, none
//     missing or excluded by the aggregator: the Python worker's update is
//     in each (its role, train-4, is never missing);
//   - the cloud broker carried, for every round, an fl.update from edge-5
//     whose envelope's source is the Python library's ("python/train-4"),
//     with the model's weight count and a positive sample count;
//   - both jobs' final accuracy is at least 85%, and the mixed job's mean
//     accuracy over its last five rounds is within 3 points of the all-Go
//     job's;
//   - the Python worker's numbers (clientRound, the last round, and
//     clientSamples) are in its row of the mixed job's status;
//   - the Python worker's log shows it got its Dataset's file as
//     TRAIN_DATASET_URL, trained the last round, and ended when the job was over, and the
//     worker Succeeded (exit 0).
func TestFederatedPythonTrainingWorker(t *testing.T) {
	sdk := repoPath(t, "sdk/python")
	script := repoPath(t, "examples/python/federated/train.py")
	start := time.Now()
	nodes := flNodes(6)
	f := startFL(t, nodes, nil)
	// Only an admin may apply a job whose workers run a command not in
	// the cloud's workers.allowedCommands.
	admin := adminClient(t, f.cloud.BrokerURL())
	f.api = admin
	const rounds = 10
	dir := filepath.Join(f.dir, "data")
	goOnly := digits.Options{Job: "digits-go", Nodes: nodes[:5], Rounds: rounds, Dir: dir}
	mixed := digits.Options{Job: "digits-py", Nodes: append(slices.Clone(nodes[:4]), "edge-5"), Rounds: rounds, Dir: dir}
	const pyNode, pyRole = "edge-5", "train-4"
	recsGo, recsPy := f.records(t, goOnly.Job), f.records(t, mixed.Job)
	ups := watchUpdates(t, f, pyNode, mixed.Job)

	f.example(t, goOnly)
	if _, err := digits.Write(mixed); err != nil {
		t.Fatal(err)
	}
	// The worker runs as nobody: its Dataset's file must be readable by it.
	csv := digits.CSVPath(mixed, pyNode)
	shared := filepath.Join(shareddir.New(t), filepath.Base(csv))
	raw, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shared, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := digits.YAML(mixed)
	for _, r := range []struct{ old, new string }{
		{"url: " + strconv.Quote(csv), "url: " + strconv.Quote(shared)},
		{"nodeName: " + pyNode + "\n          containers:\n            - name: train-worker\n              image: sedna-go/builtin\n              env:\n",
			"nodeName: " + pyNode + "\n          containers:\n            - name: train-worker\n              image: sedna-go/builtin\n" +
				"              command: [\"/usr/bin/python3\", " + strconv.Quote(script) + "]\n              env:\n" +
				"                - name: PYTHONPATH\n                  value: " + strconv.Quote(sdk) + "\n" +
				"                - name: PYTHONDONTWRITEBYTECODE\n                  value: \"1\"\n"},
	} {
		if strings.Count(yaml, r.old) != 1 {
			t.Fatalf("the example's YAML changed (%q not found once); update the test:\n%s", r.old, yaml)
		}
		yaml = strings.Replace(yaml, r.old, r.new, 1)
	}
	rs, err := api.Parse([]byte(yaml), "federated-python.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := f.api.Apply(f.ctx, rs); err != nil || rep.Error != "" {
		t.Fatalf("apply: %v %s", err, rep.Error)
	} else {
		for _, r := range rep.Results {
			if r.Action == "rejected" {
				t.Fatalf("apply: %s rejected: %s", r.Key, r.Message)
			}
		}
	}

	stPy := f.waitPhase(t, mixed.Job, api.ConditionCompleted, 2*time.Minute)
	stGo := f.waitPhase(t, goOnly.Job, api.ConditionCompleted, 2*time.Minute)
	// The Python worker's exit reaches the status after the job's
	// completion.
	f.waitStatus(t, flJob(mixed.Job), "the Python worker Succeeded", 30*time.Second, func(st api.Status) bool {
		return slices.ContainsFunc(st.Workers, func(w api.WorkerStatus) bool {
			return w.Role == pyRole && w.Node == pyNode && w.Phase == "Succeeded"
		})
	})
	elapsed := time.Since(start)
	logPath := filepath.Join(f.dir, pyNode, "workers", workers.LogName(flJob(mixed.Job), pyRole))
	pyLog := readFile(logPath)
	for _, st := range []api.Status{stPy, stGo} {
		if st.Progress == nil || st.Progress.Done != rounds {
			t.Errorf("progress %+v, want %d rounds", st.Progress, rounds)
		}
	}
	listPy, listGo := recsPy.list(), recsGo.list()
	if len(listPy) != rounds || len(listGo) != rounds {
		t.Fatalf("%d round records of the mixed job, %d of the all-Go one; want %d each", len(listPy), len(listGo), rounds)
	}
	seen := ups.rounds()
	for _, r := range listPy {
		t.Logf("round %2d: mixed %d of %d clients, accuracy %.4f, %.3f s (slowest training %.3f s); all-Go accuracy %.4f",
			r.Round, r.Participants, r.Clients, r.Accuracy, r.Seconds, r.TrainSeconds, listGo[r.Round-1].Accuracy)
		if r.Participants != 5 || r.Clients != 5 || len(r.Missing) != 0 || r.Excluded != "" {
			t.Errorf("round %d: %d of %d clients, missing %v, excluded %q: want the Python worker's update among all five",
				r.Round, r.Participants, r.Clients, r.Missing, r.Excluded)
		}
		if u, ok := seen[r.Round]; !ok {
			t.Errorf("round %d: no update from the Python worker crossed the cloud broker (seen: %v)", r.Round, seen)
		} else if u.Source != "python/"+pyRole || u.Params != 64*32+32+32*10+10 || u.Samples <= 0 {
			t.Errorf("round %d: the update from %s: %+v", r.Round, pyNode, u)
		}
	}
	// The Python worker's own numbers (sedna.worker.Worker.report_metrics)
	// are in its row of the job's status.
	// It sends its last ones when the job is over: they may come after the
	// status that said Completed.
	row := func(st api.Status) *api.WorkerStatus {
		for i := range st.Workers {
			if st.Workers[i].Role == pyRole {
				return &st.Workers[i]
			}
		}
		return nil
	}
	last := f.waitStatus(t, topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: mixed.Job},
		"the Python worker's last numbers", time.Minute, func(st api.Status) bool {
			w := row(st)
			return w != nil && w.Metrics["clientRound"] == rounds && w.Metrics["clientSamples"] > 0
		})
	t.Logf("the Python worker's numbers in the status: %v", row(last).Metrics)
	// A round's accuracy moves by a few points from one round to the next
	// (learning rate 0.1, momentum 0.9): the runs are compared on the
	// mean of their last five rounds.
	accPy, accGo := stPy.Metrics["accuracy"], stGo.Metrics["accuracy"]
	meanPy, meanGo := lastMean(listPy, 5), lastMean(listGo, 5)
	t.Logf("%d rounds, 5 clients: final accuracy mixed (4 Go + 1 Python) %.4f, all-Go %.4f; mean of the last five rounds %.4f and %.4f (%+.2f points); %.1f s in all",
		rounds, accPy, accGo, meanPy, meanGo, 100*(meanPy-meanGo), elapsed.Seconds())
	if accPy < 0.85 || accGo < 0.85 || math.Abs(meanPy-meanGo) > 0.03 {
		t.Errorf("accuracy: final mixed %.4f, all-Go %.4f (want at least 0.85); mean of the last five rounds %.4f and %.4f (want within 3 points)",
			accPy, accGo, meanPy, meanGo)
	}
	for _, want := range []string{
		"TRAIN_DATASET_URL " + shared, // set by the agent: the Dataset's file
		fmt.Sprintf("round %d/%d: trained on", rounds, rounds),
		fmt.Sprintf("the job is over (round %d)", rounds),
	} {
		if !strings.Contains(pyLog, want) {
			t.Errorf("the Python worker's log (%s) does not say %q:\n%s", logPath, want, pyLog)
		}
	}
	t.Logf("the Python worker's log:\n%s", pyLog)
}

// lastMean is the mean validation accuracy of the last n rounds.
func lastMean(list []federated.Record, n int) float64 {
	var sum float64
	for _, r := range list[len(list)-n:] {
		sum += r.Accuracy
	}
	return sum / float64(n)
}

// pyUpdate is what the test reads of an fl.update (docs/WORKERS.md).
type pyUpdate struct {
	Source  string
	Round   int64 `msgpack:"r"`
	Chunk   int   `msgpack:"c"`
	Params  int   `msgpack:"p"`
	Samples int64 `msgpack:"k"`
}

// updates keeps the first piece of each round's update from one node,
// as the cloud broker carries it.
type updates struct {
	mu sync.Mutex
	by map[int64]pyUpdate
}

func watchUpdates(t testing.TB, f *flFleet, node, job string) *updates {
	u := &updates{by: map[int64]pyUpdate{}}
	topic := federated.UpdateTopic(node, flJob(job))
	if err := f.cloud.Broker().Subscribe(topic, 0x7e1a, func(_ string, p []byte, _ bool) {
		env, err := topics.UnmarshalEnvelope(p, topics.Limits{})
		var b pyUpdate
		if err != nil || env.Kind != federated.KindUpdate || msgpack.Unmarshal(env.Body, &b) != nil || b.Chunk != 0 {
			return
		}
		b.Source = env.Source
		u.mu.Lock()
		if _, ok := u.by[b.Round]; !ok {
			u.by[b.Round] = b
		}
		u.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *updates) rounds() map[int64]pyUpdate {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[int64]pyUpdate, len(u.by))
	for k, v := range u.by {
		out[k] = v
	}
	return out
}
