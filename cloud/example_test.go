package cloud_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Start the cloud manager with its embedded broker and send desired state
// to a node that has not connected yet: it is kept until the node has it.
func Example() {
	dir, _ := os.MkdirTemp("", "cloud-example")
	defer os.RemoveAll(dir)
	hash, _ := access.HashPassword("secret")
	creds, _ := access.NewCredentials(access.User{Username: "edge-1", PasswordHash: hash, Role: access.UserNode})
	m, err := cloud.Start(cloud.Config{DataDir: dir, Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"},
		cloud.Options{Paradigms: all.All(), Credentials: creds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	job := topics.JobRef{Kind: "FederatedLearningJob", Namespace: "default", Name: "demo"}
	_ = m.PutSpec("edge-1", job, topics.Revision{Generation: 1}, []byte("{}"))
	for _, st := range m.Downlink().Queue().Stats() {
		fmt.Println(st.Stream, st.Messages, "waiting")
	}
	// Output:
	// edge-1 1 waiting
}

// world prints what job control decides for the world.
type world struct{}

func (world) SendSpec(node string, ref topics.JobRef, sp topics.Spec) {
	fmt.Println("to", node+":", ref, "generation", sp.Generation)
}
func (world) Run(spec workers.Spec)  { fmt.Println("run on the cloud:", spec.Job, spec.Role) }
func (world) Stop(ref topics.JobRef) { fmt.Println("stop", ref) }

// Drive job control by hand on a clock of one's own, as the deterministic
// simulator does: a Dataset for a node that has not joined yet, which
// joins and reports it.
func ExampleMachine() {
	st, _ := store.OpenTemp(store.Options{Logger: slog.New(slog.DiscardHandler)})
	defer st.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := cloud.NewMachine(cloud.MachineConfig{Store: st, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}, world{})
	m.Apply([]byte("{kind: Dataset, apiVersion: sedna.io/v1alpha1, metadata: {name: d1}, spec: {url: /data/d1.csv, format: csv, nodeName: edge-1}}"))
	ref := topics.JobRef{Kind: "Dataset", Namespace: "default", Name: "d1"}
	s, _ := m.Status(ref)
	fmt.Println(s.Phase, s.Pending)
	now = now.Add(time.Second)
	m.NodeStatus("edge-1", topics.NodeStatus{State: topics.NodeOnline, Session: 1})
	m.DatasetStatus(ref, "edge-1", topics.DatasetStatus{Key: ref.String(), NumberOfSamples: 100})
	s, _ = m.Status(ref)
	fmt.Println(s.Phase)
	// Output:
	// to edge-1: Dataset/default/d1 generation 1
	// Pending [node "edge-1" to join]
	// Ready
}
