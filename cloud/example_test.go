package cloud_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
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
