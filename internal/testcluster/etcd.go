package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Etcd is one etcd member (Debian's etcd-server) on loopback, for the unit
// tests of what keeps its state in etcd: it starts in about a second,
// where the whole cluster takes half a minute.
type Etcd struct {
	// Endpoint is its client URL (http://127.0.0.1:port).
	Endpoint string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has ended
	exitErr  error
}

// StartEtcd starts a single-member etcd cluster with its data in dir and
// waits until it is healthy. extra are more etcd flags (for instance
// "--quota-backend-bytes=..."). Stop it with Stop.
func StartEtcd(dir string, extra ...string) (*Etcd, error) {
	if _, err := exec.LookPath("etcd"); err != nil {
		return nil, errors.New("testcluster: Debian's etcd-server is not installed (make deps installs it)")
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	c, p := "http://127.0.0.1:"+strconv.Itoa(ports[0]), "http://127.0.0.1:"+strconv.Itoa(ports[1])
	args := append([]string{"--name", "solo", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", c, "--advertise-client-urls", c,
		"--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
		"--initial-cluster", "solo=" + p, "--initial-cluster-state", "new",
		"--log-level", "warn"}, extra...)
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("etcd", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	e := &Etcd{Endpoint: c, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { e.exitErr = cmd.Wait(); log.Close(); close(e.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := awaitHealthy(ctx, c, e); err != nil {
		_ = e.Stop()
		out, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
		return nil, fmt.Errorf("testcluster: etcd did not become healthy: %w\n%s", err, out)
	}
	return e, nil
}

// awaitHealthy asks url's /health until etcd says it is, the process
// ends, or ctx is done.
func awaitHealthy(ctx context.Context, url string, e *Etcd) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return fmt.Errorf("etcd exited: %v", e.exitErr)
		case <-tick.C:
		}
	}
}

// Stop kills the member (SIGKILL; its data stays in dir) and waits for
// it to end. Stopping it twice is harmless.
func (e *Etcd) Stop() error {
	_ = e.cmd.Process.Kill()
	<-e.done
	return nil
}
