// Command setup writes the incremental learning example: the initial
// model (trained here on the original images), the Dataset's file and
// incremental.yaml, in one directory:
//
//	go run ./examples/incremental/setup -dir /var/lib/sedna/il -node edge1
//	sedna model push fashion-il-initial /var/lib/sedna/il/fashion-il-initial.bin
//	sedna apply -f /var/lib/sedna/il/incremental.yaml
//
// The node must find the Dataset's file at the path the YAML names.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sedna-go/sedna/examples/incremental/drift"
)

func main() {
	var o drift.Options
	dir := flag.String("dir", "", "directory for the files (absolute, as the node sees it)")
	flag.StringVar(&o.Node, "node", "edge1", "the camera's node: its Dataset and its inference worker")
	flag.StringVar(&o.Cloud, "cloud", "cloud", "the node that trains and evaluates (the cloud manager's name)")
	flag.IntVar(&o.TrainAfter, "train-after", 150, "labelled examples that start a training (num_of_samples)")
	flag.Float64Var(&o.DeployDelta, "deploy-delta", 0.02, "accuracy_delta a new model needs to be deployed")
	flag.IntVar(&o.MaxCycles, "max-cycles", 0, "stop after that many cycles (0: run until deleted)")
	flag.StringVar(&o.Worker, "worker", "", "the program the train, eval and deploy templates run, by absolute path (examples/incremental/worker built); empty: the built-in workers")
	flag.Parse()
	if err := run(o, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
}

func run(o drift.Options, dir string) error {
	if dir == "" {
		return fmt.Errorf("give -dir")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if err := drift.Write(o); err != nil {
		return err
	}
	base, _, _, _, err := drift.Data()
	if err != nil {
		return err
	}
	m, err := drift.TrainInitial(context.Background(), base)
	if err != nil {
		return err
	}
	blob, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	model := filepath.Join(abs, o.InitialModel()+".bin")
	if err := os.WriteFile(model, blob, 0o644); err != nil {
		return err
	}
	yaml := filepath.Join(abs, "incremental.yaml")
	if err := os.WriteFile(yaml, []byte(drift.YAML(o)), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s, %s and %s\nnext:\n  sedna model push %s %s\n  sedna apply -f %s\n", model, o.DatasetFile(), yaml, o.InitialModel(), model, yaml)
	return nil
}
