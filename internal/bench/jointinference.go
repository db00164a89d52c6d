package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/jointinference/classify"
	"github.com/sedna-go/sedna/internal/demo"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/paradigm/all"
)

// jointInference measures the classification example on a 'sedna edge'
// process: passes of EdgeOnly and of the example's miner, alternating, each
// a stream of frames from a camera in this process.
func (b *bencher) jointInference(ctx context.Context) error {
	pw, hash, creds, err := benchUsers("reader")
	if err != nil {
		return err
	}
	cloudURL, stopCloud, err := b.startJICloud(ctx, creds, hash)
	if err != nil {
		return err
	}
	defer stopCloud()
	e, err := b.startEdge(ctx, "process", cloudURL, "--password", pw)
	if err != nil {
		return err
	}
	defer e.stop()
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: cloudURL, Username: "reader", Password: pw})
	if err != nil {
		return err
	}
	defer c.Close()
	train, test, err := classify.Data()
	if err != nil {
		return err
	}
	little, big, err := classify.Train(ctx, train)
	if err != nil {
		return err
	}
	for name, net := range map[string]interface{ MarshalBinary() ([]byte, error) }{classify.LittleModel: little, classify.BigModel: big} {
		data, err := net.MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := c.PushModel(ctx, "default", name, "sedna-ml", nil, bytes.NewReader(data)); err != nil {
			return err
		}
	}
	apply := func(miner string) error {
		yaml := classify.YAMLFor("bench")
		if miner != "" {
			yaml = strings.Replace(yaml, "      name: CrossEntropy\n      parameters:\n        - key: threshold_cross_entropy\n          value: \"0.62\"",
				"      name: "+miner+"\n      parameters: []", 1)
		}
		rs, err := api.Parse([]byte(yaml), "classification.yaml")
		if err != nil {
			return err
		}
		if rep, err := c.Apply(ctx, rs); err != nil || rep.Error != "" {
			return fmt.Errorf("apply: %v %s", err, rep.Error)
		}
		return nil
	}
	cam, err := demo.NewCamera(e.addr, "bench-camera")
	if err != nil {
		return err
	}
	defer cam.Close()
	send := func(test *datasets.Dataset) func(id string, i int) error {
		return func(id string, i int) error {
			i %= test.Rows
			return cam.Send("fashion-classification", jointinference.Request{ID: id, Shape: []int{14, 14}, Data: classify.Bytes(test, i)})
		}
	}(test)
	n := max(2000, b.o.Messages/5)
	fmt.Fprintf(b.out, "\n## joint inference: %d frames per pass, %d in flight, edge process on CPUs %q, cloud %s\n",
		n, b.o.JIWindow, b.o.EdgeCPU, map[bool]string{true: "in this process", false: "a process on CPUs " + b.o.CloudCPU}[b.o.CloudCPU == ""])
	var rates [2][]float64
	var offloaded int
	for round := range 3 {
		for k, miner := range []string{"EdgeOnly", ""} {
			if err := apply(miner); err != nil {
				return err
			}
			want := "edge"
			if miner == "" {
				want = "cloud"
			}
			if err := cam.WaitSource(ctx, send, want); err != nil {
				return err
			}
			start := time.Now()
			rs, err := cam.Stream(ctx, fmt.Sprintf("p%d-%d", round, k), n, b.o.JIWindow, send)
			if err != nil {
				return err
			}
			rates[k] = append(rates[k], float64(n)/time.Since(start).Seconds())
			if miner == "" {
				offloaded = 0
				for _, r := range rs {
					if r.Source == "cloud" {
						offloaded++
					}
				}
			}
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	fmt.Fprintf(b.out, "edge-only %.0f frames/s %v, joint %.0f frames/s %v (%.1f%% offloaded): joint/edge-only %.2f\n",
		mean(rates[0]), roundAll(rates[0]), mean(rates[1]), roundAll(rates[1]), 100*float64(offloaded)/float64(n), mean(rates[1])/mean(rates[0]))
	return nil
}

func roundAll(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}

// startJICloud starts the cloud for the joint inference bench: in this
// process, or with --cloud-cpu a 'sedna cloud' process pinned there.
func (b *bencher) startJICloud(ctx context.Context, creds *access.Credentials, hash string) (string, func(), error) {
	if b.o.CloudCPU == "" {
		m, err := cloud.Start(cloud.Config{DataDir: b.subdir("cloud-ji"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"},
			cloud.Options{Paradigms: all.All(), Logger: b.o.Log, Credentials: creds})
		if err != nil {
			return "", nil, err
		}
		return m.BrokerURL(), m.Close, nil
	}
	dir := b.subdir("cloud-ji-proc")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", nil, err
	}
	credFile := filepath.Join(dir, "credentials.yaml")
	users := fmt.Sprintf("users:\n  - {username: bench, passwordHash: %q, role: node}\n  - {username: reader, passwordHash: %q, role: cloud}\n", hash, hash)
	if err := os.WriteFile(credFile, []byte(users), 0o600); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.CommandContext(ctx, "taskset", "-c", b.o.CloudCPU, b.self, "cloud", "--data", filepath.Join(dir, "data"),
		"--listen", addr, "--credentials", credFile, "--metrics", "off", "--log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	ready := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "cloud manager started") {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	select {
	case <-ready:
		return "tcp://" + addr, stop, nil
	case <-done:
		return "", nil, errors.New("sedna cloud exited at start")
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("sedna cloud not ready after 30 s")
	}
}
