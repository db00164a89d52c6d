// Command setup trains the joint inference examples' models and writes them
// where `sedna model push` can take them:
//
//	go run ./examples/jointinference/setup -out /tmp/ji
//	sedna model push fashion-little /tmp/ji/fashion-little.bin
//	sedna model push fashion-big /tmp/ji/fashion-big.bin
//	sedna apply -f examples/jointinference/classify/classification.yaml
//	sedna model push digits-little-detector /tmp/ji/digits-little-detector.bin
//	sedna model push digits-big-detector /tmp/ji/digits-big-detector.bin
//	sedna apply -f examples/jointinference/detection/detection.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/examples/jointinference/detection"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/detect"
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
	edgeAcc, cloudAcc, err := classify.Accuracy(little, big, test)
	if err != nil {
		return err
	}
	fmt.Printf("trained in %v: %s %.2f%%, %s %.2f%% on %d test images\n", time.Since(start).Round(time.Millisecond),
		classify.LittleModel, 100*edgeAcc, classify.BigModel, 100*cloudAcc, test.Rows)
	dtrain, dtest, err := detection.Data(1)
	if err != nil {
		return err
	}
	start = time.Now()
	dl, db, err := detection.Train(context.Background(), dtrain)
	if err != nil {
		return err
	}
	truth := make([][]detect.Box, len(dtest))
	for i, s := range dtest {
		truth[i] = s.Objects
	}
	var maps [2]float64
	for k, m := range []*ml.Network{dl, db} {
		pred, err := detection.Detector(m).DetectAll(dtest)
		if err != nil {
			return err
		}
		if maps[k], _, err = detect.MeanAveragePrecision(pred, truth, detection.Classes, 0.5); err != nil {
			return err
		}
	}
	fmt.Printf("trained in %v: %s mAP@0.5 %.3f, %s %.3f on %d test scenes\n", time.Since(start).Round(time.Millisecond),
		detection.LittleModel, maps[0], detection.BigModel, maps[1], len(dtest))
	for name, m := range map[string]*ml.Network{classify.LittleModel: little, classify.BigModel: big,
		detection.LittleModel: dl, detection.BigModel: db} {
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
