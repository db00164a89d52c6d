// Command setup trains the joint inference example's models and writes them
// where `sedna model push` can take them:
//
//	go run ./examples/jointinference/setup -out /tmp/ji
//	sedna model push fashion-little /tmp/ji/fashion-little.bin
//	sedna model push fashion-big /tmp/ji/fashion-big.bin
//	sedna apply -f examples/jointinference/classify/classification.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/ml"
)

func main() {
	out := flag.String("out", ".", "directory for the model files")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	if err := os.MkdirAll(out, 0o750); err != nil {
		return err
	}
	train, test, err := classify.Data()
	if err != nil {
		return err
	}
	start := time.Now()
	little, big, err := classify.Train(context.Background(), train)
	if err != nil {
		return err
	}
	pooled, err := test.Pool(2)
	if err != nil {
		return err
	}
	el, err := ml.Evaluate(little, pooled.X, pooled.Y)
	if err != nil {
		return err
	}
	eb, err := ml.Evaluate(big, test.X, test.Y)
	if err != nil {
		return err
	}
	fmt.Printf("trained in %v: %s %.2f%%, %s %.2f%% on %d test images\n", time.Since(start).Round(time.Millisecond),
		classify.LittleModel, 100*el.Accuracy, classify.BigModel, 100*eb.Accuracy, test.Rows)
	for name, m := range map[string]*ml.Network{classify.LittleModel: little, classify.BigModel: big} {
		b, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		p := filepath.Join(out, name+".bin")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		fmt.Printf("sedna model push %s %s\n", name, p)
	}
	return nil
}
