package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/lifelong/comfort"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/topics"
)

// llSend sends samples lo..hi-1 (IDs prefix+i, their sensor
// "sensor-"+prefix) to a lifelong job's inference worker and returns
// their answers in order.
func llSend(t *testing.T, cam *ilCamera, samples []lifelong.Sample, lo, hi int, prefix string) []jointinference.Result {
	t.Helper()
	return cam.stream(t, lo, hi, func(i int) jointinference.Request {
		return comfort.Request(samples[i], fmt.Sprint(prefix, i), "sensor-"+prefix, true)
	})
}

// llScore is the share of answers of the samples' classes, and how many
// were flagged unseen.
func llScore(t *testing.T, rs []jointinference.Result, samples []lifelong.Sample, lo int) (right float64, unseen int) {
	t.Helper()
	n := 0
	for i, r := range rs {
		if r.Error != "" {
			t.Fatalf("sample %s: %s", r.ID, r.Error)
		}
		if r.Class == samples[lo+i].Y {
			n++
		}
		if r.Unseen {
			unseen++
		}
	}
	return float64(n) / float64(len(rs)), unseen
}

// Must-show 5 of lifelong learning, over real `sedna` processes and
// brokers, with the example's data: the Dataset (tasks A, B, C) is on
// edge1, which trains; edge2 serves. The first knowledge base (3 tasks)
// is in the status and in `sedna kb describe`, and both survive a SIGKILL
// of the cloud manager and a restart. D's samples at edge2 are answered
// and flagged unseen, go up and wait (`sedna label list --kind ll`), and
// are labelled with `sedna label set --kind ll` (the status counts them). Edge-b's link goes down;
// D's surveys join the Dataset on edge1, a whole cycle runs and deploys
// a knowledge base of 4 tasks while edge2, offline, answers every sample
// with its last one (D still unseen); once the link is back edge2 gets
// the new one and answers D as seen, better.
func TestLifelongKnowledgeBaseSurvivesRestartsAndAnOfflineEdge(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	url := "tcp://" + addr
	cloudArgs := []string{"cloud", "--listen", addr, "--data", filepath.Join(dir, "cloud"), "--credentials", writeCredentials(t, dir),
		"--metrics", "off", "--log-level", "warn"}
	cp := startProc(t, cloudArgs...)
	startProc(t, edgeArgs("edge1", filepath.Join(dir, "edge1"), url)...)
	link := proxyTo(t, url)
	eb := startProc(t, edgeArgs("edge2", filepath.Join(dir, "edge2"), "tcp://"+link.Addr())...)
	waitJoined(t, url, "edge1", "edge2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f := &flFleet{dir: dir, ctx: ctx, api: apiClient(t, url)}

	o := comfort.Options{Dir: filepath.Join(dir, "data"), Node: "edge1", InferNode: "edge2", TrainAfter: 300, Epochs: 20}
	if err := comfort.Write(o); err != nil {
		t.Fatal(err)
	}
	sednaCLI(t, url, comfort.YAML(o), "apply", "-f", "-")
	ref := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: o.WithDefaults().Job}
	kbOf := func(n int) func(api.Status) bool {
		return func(st api.Status) bool {
			return st.KnowledgeBase != nil && st.KnowledgeBase.AIModels.NumberOfAIModels == n
		}
	}
	st := f.waitStatus(t, ref, "a knowledge base of 3 tasks", 3*time.Minute, kbOf(3))
	describe := func() lifelong.Summary {
		t.Helper()
		var s lifelong.Summary
		out := sednaCLI(t, url, "", "kb", "describe", ref.Name, "-o", "json")
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("sedna kb describe: %v\n%s", err, out)
		}
		return s
	}
	first := describe()
	t.Logf("cycle 1: knowledge base version %d, %d tasks; status: %+v", first.Version, len(first.Tasks), st.KnowledgeBase.AIModels)
	if len(first.Tasks) != 3 || first.Version != st.KnowledgeBase.Version {
		t.Fatalf("sedna kb describe: %+v; the status says version %d", first, st.KnowledgeBase.Version)
	}
	for i, restart := range []string{"SIGKILL", "SIGTERM"} {
		if i == 0 {
			cp.kill()
		} else {
			cp.stop(t)
		}
		cp = startProc(t, cloudArgs...)
		f.api = apiClient(t, url)
		st = f.waitStatus(t, ref, "its knowledge base after a "+restart, time.Minute, kbOf(3))
		if again := describe(); again.Version != first.Version || len(again.Tasks) != 3 || st.KnowledgeBase.Version != first.Version {
			t.Fatalf("after a %s of the cloud manager: sedna kb describe %+v, status version %d; before: version %d", restart, again,
				st.KnowledgeBase.Version, first.Version)
		}
	}
	waitJoined(t, url, "edge1", "edge2")

	// D's samples at edge2: answered, flagged, kept, sent up.
	unseen, err := comfort.Samples(comfort.TaskD, 900, 77)
	if err != nil {
		t.Fatal(err)
	}
	announced := make(chan struct{}, 4096)
	watcher := client(t, url, "waiting-"+ref.Name, "app", true)
	if tok := watcher.Subscribe(incremental.WaitingTopic(ref), 1, func(paho.Client, paho.Message) { announced <- struct{}{} }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("waiting topic: %v", tok.Error())
	}
	cam := newILCamera(t, eb.addr, ref, "d")
	cam.topic = lifelong.InputTopic(ref.Namespace, ref.Name)
	st = f.waitStatus(t, ref, "serving at edge2", 2*time.Minute, func(st api.Status) bool { return st.Metrics["modelVersion"] >= 1 })
	before, flagged := llScore(t, llSend(t, cam, unseen, 0, 300, "d"), unseen, 0)
	t.Logf("D's first 300 samples at edge2: %.3f right (the nearest task's model), %d flagged unseen", before, flagged)
	if flagged != 300 {
		t.Fatalf("%d of D's 300 samples flagged unseen, want all", flagged)
	}
	for n := 0; n < 300; n++ {
		select {
		case <-announced:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%d of 300 unseen samples announced in the cloud after 2 minutes", n)
		}
	}
	var list incremental.WaitingList
	out := sednaCLI(t, url, "", "label", "list", "--kind", "ll", ref.Name, "--all", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Total != 300 {
		t.Fatalf("sedna label list --kind ll: %d waiting (%v)\n%s", list.Total, err, out)
	}
	oracle := comfort.Oracle(unseen, "d")
	var labels strings.Builder
	for _, e := range list.Examples {
		y, ok := oracle(e.ID)
		if !ok || e.Node != "edge2" || e.Attr != comfort.TaskD {
			t.Fatalf("a waiting sample not of D's: %+v", e)
		}
		fmt.Fprintf(&labels, "%s %d\n", e.Key, y)
	}
	if out := sednaCLI(t, url, labels.String(), "label", "set", "--kind", "ll", ref.Name); strings.TrimSpace(out) != "300 labelled" {
		t.Fatalf("sedna label set --kind ll: %q", out)
	}

	// Edge-b offline for a whole cycle: D's surveys join the Dataset on
	// edge1, which trains; the cloud deploys; edge2 serves on.
	link.SetDown(true)
	if err := comfort.Append(o, comfort.TaskD, 600, 78); err != nil {
		t.Fatal(err)
	}
	st = f.waitStatus(t, ref, "a knowledge base of 4 tasks", 3*time.Minute, kbOf(4))
	during, flaggedDuring := llScore(t, llSend(t, cam, unseen, 300, 500, "d"), unseen, 300)
	t.Logf("cycle 2 deployed version %d (%d tasks, %d labelled unseen samples) while edge2 was offline; edge2 answered 200 of D: %.3f, %d flagged",
		st.KnowledgeBase.Version, st.KnowledgeBase.AIModels.NumberOfAIModels, st.KnowledgeBase.Samples.NumberOfLabeledUnseenSample, during, flaggedDuring)
	if flaggedDuring != 200 {
		t.Fatalf("offline, edge2 flagged %d of 200 of D's samples: it should serve its last knowledge base, where D is unseen", flaggedDuring)
	}
	if st.KnowledgeBase.Samples.NumberOfLabeledUnseenSample != 300 {
		t.Errorf("the status counts %d labelled unseen samples, want 300", st.KnowledgeBase.Samples.NumberOfLabeledUnseenSample)
	}
	link.SetDown(false)
	version := float64(st.KnowledgeBase.Version)
	f.waitStatus(t, ref, "edge2 serving the new knowledge base", 3*time.Minute, func(st api.Status) bool { return st.Metrics["modelVersion"] >= version })
	after, flaggedAfter := llScore(t, llSend(t, cam, unseen, 500, 900, "d"), unseen, 500)
	t.Logf("link back: edge2 serves version %.0f; D's next 400 samples: %.3f right, %d flagged (before: %.3f)", version, after, flaggedAfter, before)
	if flaggedAfter != 0 || after <= before {
		t.Errorf("after D was learnt: %d of 400 flagged, %.3f right (%.3f before): want none flagged, and better", flaggedAfter, after, before)
	}
	isD := func(ts lifelong.TaskSummary) bool { return ts.ID == "attr:"+comfort.TaskD }
	if s := describe(); len(s.Tasks) != 4 || !slices.ContainsFunc(s.Tasks, isD) {
		t.Errorf("sedna kb describe after cycle 2: %+v", s)
	}
}
