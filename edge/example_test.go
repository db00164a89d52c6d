package edge_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/paradigm/all"
)

// Start an edge agent; it keeps trying to reach its cloud in the
// background and serves local apps meanwhile.
func Example() {
	dir, _ := os.MkdirTemp("", "edge-example")
	defer os.RemoveAll(dir)
	a, err := edge.Start(edge.Config{
		Node:    "edge-1",
		DataDir: dir,
		Broker:  edge.BrokerConfig{Listen: "127.0.0.1:0"},
		Cloud:   edge.CloudLink{URL: "tcp://127.0.0.1:1", Username: "edge-1", Password: "secret"},
		Metrics: "off",
	}, edge.Options{Paradigms: all.All(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), KeepMemoryLimit: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	up, _ := a.Bridge().Connected()
	fmt.Println("serving local apps; cloud link up:", up)
	// Output:
	// serving local apps; cloud link up: false
}
