// Command setup writes the federated learning example: each node's Dataset
// (a CSV file of its share of the data, split non-IID) and the validation
// set in one directory, and federated.yaml naming them:
//
//	go run ./examples/federated/setup -dir /var/lib/sedna/fl -nodes 5
//	sedna apply -f /var/lib/sedna/fl/federated.yaml
//	sedna watch federatedlearningjob digits-fl
//
// Each node must find its file at the path the YAML names.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sedna-go/sedna/examples/federated/digits"
)

func main() {
	var o digits.Options
	dir := flag.String("dir", "", "directory for the CSV files and federated.yaml (absolute, as the nodes see it)")
	nodes := flag.Int("nodes", 5, "training nodes")
	prefix := flag.String("prefix", "edge-", "node names: prefix and a number from 0")
	names := flag.String("names", "", "node names, separated by commas (instead of -nodes and -prefix)")
	flag.Float64Var(&o.Alpha, "alpha", 0.5, "Dirichlet concentration over labels (small: each node sees few labels)")
	flag.Uint64Var(&o.Seed, "seed", 1, "seed of the split and the initial weights")
	flag.IntVar(&o.Rounds, "rounds", 30, "rounds (exit_round)")
	flag.StringVar(&o.Aggregator, "aggregator", "FedAvg", "aggregator plugin")
	flag.BoolVar(&o.Fashion, "fashion", false, "the Fashion-MNIST subset instead of the digits")
	flag.Parse()
	if *names != "" {
		o.Nodes = strings.Split(*names, ",")
	}
	if err := run(o, *dir, *nodes, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
}

func run(o digits.Options, dir string, nodes int, prefix string) error {
	if dir == "" {
		return fmt.Errorf("give -dir")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if len(o.Nodes) == 0 {
		if nodes < 1 {
			return fmt.Errorf("-nodes %d", nodes)
		}
		for i := range nodes {
			o.Nodes = append(o.Nodes, fmt.Sprintf("%s%d", prefix, i))
		}
	}
	parts, err := digits.Write(o)
	if err != nil {
		return err
	}
	for i, p := range parts {
		fmt.Printf("%s: %d samples in %s\n", o.Nodes[i], p.Rows, digits.CSVPath(o, o.Nodes[i]))
	}
	out := filepath.Join(abs, "federated.yaml")
	if err := os.WriteFile(out, []byte(digits.YAML(o)), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", out)
	return nil
}
