package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sednaBin is the sedna binary, built once for the tests that run it as a
// process (where a kill must be real).
var sednaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sedna-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sednaBin = filepath.Join(dir, "sedna")
	build := exec.Command("go", "build", "-o", sednaBin, "github.com/sedna-go/sedna/cmd/sedna")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sedna:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopCluster()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a sedna process under test.
type proc struct {
	cmd   *exec.Cmd
	args  []string
	addr  string // from its "ready: broker ADDR" line
	ready chan string
	done  chan struct{}
	mu    sync.Mutex
	out   strings.Builder
}

var readyRE = regexp.MustCompile(`ready: broker (\S+)`)

// startProc runs sedna with args and waits for its ready line.
func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	p := launchProc(t, args...)
	p.awaitReady(t, 30*time.Second)
	return p
}

// launchProc runs sedna with args; awaitReady waits for its ready line
// (a standby replica of the cloud prints it only once it leads).
func launchProc(t testing.TB, args ...string) *proc {
	t.Helper()
	if len(args) > 0 && args[0] == "cloud" && !slices.Contains(args, "--tls-listen") {
		// The tests that are not about nodes' identities leave the
		// mutual-TLS and join listeners (":8883" and ":10002" by default,
		// which processes running side by side would share) off.
		args = append(slices.Clip(args), "--tls-listen", "off", "--join-listen", "off")
	}
	p := &proc{cmd: exec.Command(sednaBin, args...), args: args, done: make(chan struct{}), ready: make(chan string, 1)}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.log(sc.Text())
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case p.ready <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(writerFunc(func(b []byte) { p.log(string(b)) }), stderr)
	}()
	go func() {
		wg.Wait()
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("SEDNA_TEST_LOG") != "" {
			t.Logf("output of sedna %v:\n%s", args, p.output())
		}
	})
	return p
}

// awaitReady waits up to d for the process's ready line.
func (p *proc) awaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case p.addr = <-p.ready:
	case <-p.done:
		t.Fatalf("sedna %v exited before it was ready:\n%s", p.args, p.output())
	case <-time.After(d):
		p.kill()
		t.Fatalf("sedna %v not ready after %s:\n%s", p.args, d, p.output())
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func (p *proc) log(s string) {
	p.mu.Lock()
	p.out.WriteString(s)
	if !strings.HasSuffix(s, "\n") {
		p.out.WriteString("\n")
	}
	p.mu.Unlock()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits.
func (p *proc) stop(t testing.TB) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("sedna did not stop on SIGTERM:\n%s", p.output())
	}
}

// freeAddr returns a loopback address that was free a moment ago, for a
// process that must listen on the same port across restarts.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
