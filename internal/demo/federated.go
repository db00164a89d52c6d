package demo

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/examples/federated/digits"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// StartFLNodes starts in-process edge nodes, one per name, their stores
// under dir, linked to the cloud at url (each name must be a node user with
// password pw). The caller closes them.
func StartFLNodes(dir, url, pw string, names []string, log *slog.Logger) ([]*edge.Agent, error) {
	var out []*edge.Agent
	for _, n := range names {
		a, err := edge.Start(edge.Config{Node: n, DataDir: filepath.Join(dir, n), Broker: edge.BrokerConfig{Listen: "127.0.0.1:0"},
			Cloud: edge.CloudLink{URL: url, Username: n, Password: pw}, Metrics: "off"},
			edge.Options{Paradigms: all.All(), Logger: log, KeepMemoryLimit: true})
		if err != nil {
			for _, a := range out {
				a.Close()
			}
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// RunFLJob writes the federated learning example's files for o, applies
// its YAML and follows the job until it completes; onEvent, if not nil,
// sees its events.
func RunFLJob(ctx context.Context, c *cloud.Client, o digits.Options, onEvent func(topics.JobEvent)) (api.Status, error) {
	if _, err := digits.Write(o); err != nil {
		return api.Status{}, err
	}
	rs, err := api.Parse([]byte(digits.YAML(o)), "federated.yaml")
	if err != nil {
		return api.Status{}, err
	}
	return ApplyFLJob(ctx, c, rs, onEvent)
}

// ApplyFLJob applies resources, the last a FederatedLearningJob, and
// follows the job until it completes; onEvent, if not nil, sees its events.
func ApplyFLJob(ctx context.Context, c *cloud.Client, rs []*api.Resource, onEvent func(topics.JobEvent)) (api.Status, error) {
	ref := topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: rs[len(rs)-1].Metadata.Name}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	final := make(chan api.Status, 1)
	var once sync.Once
	watching := make(chan error, 1)
	go func() {
		watching <- c.Watch(ctx, ref, func(st api.Status) {
			if st.Phase == api.ConditionCompleted || st.Phase == api.ConditionFailed {
				once.Do(func() { final <- st })
			}
		}, onEvent)
	}()
	if rep, err := c.Apply(ctx, rs); err != nil || rep.Error != "" {
		return api.Status{}, fmt.Errorf("apply: %v %s", err, rep.Error)
	}
	select {
	case st := <-final:
		if st.Phase == api.ConditionFailed {
			return st, fmt.Errorf("the job failed: %+v", st.Conditions)
		}
		return st, nil
	case err := <-watching:
		return api.Status{}, fmt.Errorf("watch: %v", err)
	case <-ctx.Done():
		return api.Status{}, ctx.Err()
	}
}

// flDemoNodes are the demo's federated nodes (users of the demo's cloud).
var flDemoNodes = []string{"fl-0", "fl-1", "fl-2", "fl-3", "fl-4"}

// demoFederated runs the federated example on five more nodes: digits
// split non-IID, 30 rounds of FedAvg, against centralized training.
func demoFederated(ctx context.Context, say func(string, ...any), m *cloud.Manager, dir, pw string, log *slog.Logger) error {
	agents, err := StartFLNodes(dir, m.BrokerURL(), pw, flDemoNodes, log)
	if err != nil {
		return err
	}
	defer func() {
		for _, a := range agents {
			a.Close()
		}
	}()
	o := digits.Options{Dir: filepath.Join(dir, "fl-data"), Nodes: flDemoNodes, Alpha: 0.5, Rounds: 30}
	say("federated learning on %s: the digits split non-IID (Dirichlet alpha %g), %d rounds of FedAvg", strings.Join(flDemoNodes, ", "), o.Alpha, o.Rounds)
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "demo", Password: pw})
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := RunFLJob(ctx, c, o, func(ev topics.JobEvent) {
		var r, n int
		if _, err := fmt.Sscanf(ev.Message, "round %d/%d", &r, &n); err == nil && ev.Reason == "RoundCompleted" && (r == 1 || r%10 == 0) ||
			ev.Reason == "ModelRegistered" {
			say("  %s", ev.Message)
		}
	})
	if err != nil {
		return err
	}
	central, err := digits.Centralized(ctx, o)
	if err != nil {
		return err
	}
	say("federated accuracy %.1f%% after %d rounds, %.0f bytes up and %.0f down in the last round; the same model trained on all the data in one place: %.1f%%",
		100*st.Metrics["accuracy"], st.Progress.Done, st.Metrics["bytesUp"], st.Metrics["bytesDown"], 100*central)
	return nil
}
