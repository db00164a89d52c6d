// Command setup writes the lifelong learning example: the Dataset's file
// (thermal-comfort surveys of tasks A, B and C) and lifelong.yaml, in one
// directory:
//
//	go run ./examples/lifelong/setup -dir /var/lib/sedna/ll -node edge1
//	sedna apply -f /var/lib/sedna/ll/lifelong.yaml
//
// The node must find the Dataset's file at the path the YAML names.
// -append-d N adds N surveys of the unseen task D to the file instead.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sedna-go/sedna/examples/lifelong/comfort"
)

func main() {
	var o comfort.Options
	dir := flag.String("dir", "", "directory for the files (absolute, as the node sees it)")
	flag.StringVar(&o.Node, "node", "edge1", "the node of the Dataset, which trains and evaluates")
	flag.StringVar(&o.InferNode, "infer-node", "", "the node of the inference worker (default: -node)")
	flag.IntVar(&o.PerTask, "per-task", 600, "surveys of each of A, B and C in the Dataset")
	flag.IntVar(&o.TrainAfter, "train-after", 500, "new samples that start a training (num_of_samples)")
	flag.BoolVar(&o.Cluster, "cluster", false, "define tasks by clustering the features, not by the attribute")
	appendD := flag.Int("append-d", 0, "append that many surveys of task D to the Dataset's file and stop")
	flag.Parse()
	if err := run(o, *dir, *appendD); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
}

func run(o comfort.Options, dir string, appendD int) error {
	if dir == "" {
		return fmt.Errorf("give -dir")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if appendD > 0 {
		if err := comfort.Append(o, comfort.TaskD, appendD, 900); err != nil {
			return err
		}
		fmt.Printf("appended %d surveys of %s to %s\n", appendD, comfort.TaskD, o.DatasetFile())
		return nil
	}
	if err := comfort.Write(o); err != nil {
		return err
	}
	yaml := filepath.Join(abs, "lifelong.yaml")
	if err := os.WriteFile(yaml, []byte(comfort.YAML(o)), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s (%s)\nnext:\n  sedna apply -f %s\n", o.DatasetFile(), yaml, comfort.Describe(), yaml)
	return nil
}
