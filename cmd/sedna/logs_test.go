package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
)

func TestLogsNamesAWorkerAsWordsOrAsOne(t *testing.T) {
	cases := []struct {
		args []string
		want cloud.LogOptions
		bad  bool
	}{
		{args: []string{"fl", "job", "train-0"}, want: cloud.LogOptions{Kind: "fl", Namespace: "ns", Name: "job", Role: "train-0"}},
		{args: []string{"ji", "svc"}, want: cloud.LogOptions{Kind: "ji", Namespace: "ns", Name: "svc"}},
		{args: []string{"fl/job/train-0"}, want: cloud.LogOptions{Kind: "fl", Namespace: "ns", Name: "job", Role: "train-0"}},
		{args: []string{"FederatedLearningJob/other/job/aggregation"}, want: cloud.LogOptions{Kind: "FederatedLearningJob", Namespace: "other", Name: "job", Role: "aggregation"}},
		{args: []string{"fl"}, bad: true},
		{args: []string{"a/b/c/d/e"}, bad: true},
		{args: []string{"pods", "job", "train-0"}, bad: true},
	}
	for _, c := range cases {
		got, err := parseWorkerArgs(c.args, "ns")
		if c.bad {
			if err == nil {
				t.Errorf("%q: accepted as %+v", c.args, got)
			}
			continue
		}
		if err != nil || got.Kind != c.want.Kind || got.Namespace != c.want.Namespace || got.Name != c.want.Name || got.Role != c.want.Role {
			t.Errorf("%q: %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
}

// TestLogsCommand: `sedna logs` prints a worker's log as it is and exits 0
// at its end (a built-in worker of the cloud, whose log is its records),
// and says plainly why it cannot: a node that never joined, a job with
// several workers and no role given.
func TestLogsCommand(t *testing.T) {
	m := cloudWithUsers(t, map[string]access.UserRole{"ops": access.UserOperator, "see": access.UserViewer})
	as := func(user string) []string {
		return []string{"--cloud", m.BrokerURL(), "--username", user, "--password", "pw"}
	}
	job := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(job, []byte(`apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: d}
spec: {url: /data/d.txt, format: txt, nodeName: edge1}
---
apiVersion: sedna.io/v1alpha1
kind: FederatedLearningJob
metadata: {name: j}
spec:
  aggregationWorker: {template: {spec: {nodeName: cloud}}}
  trainingWorkers:
    - dataset: {name: d}
      template: {spec: {nodeName: edge1}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runSedna(t, "", append([]string{"apply", "-f", job}, as("ops")...)...); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}

	// The cloud's built-in aggregation worker logs why it waits.
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := runSedna(t, "", append([]string{"logs", "fl", "j", "aggregation"}, as("see")...)...)
		if err != nil && !strings.Contains(err.Error(), "has written no log yet") {
			t.Fatalf("logs: %v", err)
		}
		if strings.Contains(out, `level=INFO msg="federated: `) {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("logs: %v\n%s", err, out)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", "fl/j/train-0"}, `node edge1 has not joined: worker FederatedLearningJob/default/j/train-0 has not run, and has no log`},
		{[]string{"logs", "fl", "j"}, `FederatedLearningJob/default/j has 2 workers: name one of aggregation (on cloud), train-0 (on edge1)`},
		{[]string{"logs", "fl", "nothing", "train-0"}, `not found`},
	} {
		if _, err := runSedna(t, "", append(c.args, as("see")...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
