package hil_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/hil"
	"github.com/sedna-go/sedna/simulator"
)

// sshd is a real OpenSSH server (Debian's openssh-server) on loopback,
// with a host key and one authorized user key made for the test.
type sshd struct {
	addr, dir, userKey, hostPub string
}

func keygen(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	dir := t.TempDir()
	s := &sshd{dir: dir, userKey: filepath.Join(dir, "user_key")}
	keygen(t, filepath.Join(dir, "host_key"))
	keygen(t, s.userKey)
	pub, err := os.ReadFile(s.userKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	_, port, _ := net.SplitHostPort(s.addr)
	l.Close()
	cfg := fmt.Sprintf("Port %s\nListenAddress 127.0.0.1\nHostKey %s/host_key\nAuthorizedKeysFile %s/authorized_keys\nPidFile %s/sshd.pid\n"+
		"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"+
		"Subsystem sftp internal-sftp\n", port, dir, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	listening := make(chan struct{})
	var log strings.Builder
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Server listening on") {
				once.Do(func() { close(listening) })
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("sshd did not listen:\n%s", log.String())
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	s.hostPub = strings.TrimSpace(string(hostPub))
	return s
}

// binaries builds sedna for this machine and for armv7 (with make cross's
// -trimpath, so the build cache has their packages).
func binaries(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for arch, env := range map[string][]string{runtime.GOARCH: nil, "armv7": {"GOARCH=arm", "GOARM=7"}} {
		bin := filepath.Join(dir, "sedna-"+arch)
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/sedna-go/sedna/cmd/sedna")
		cmd.Env = append(append(os.Environ(), "GOOS=linux"), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", arch, err, b)
		}
		out[arch] = bin
	}
	return out
}

func whoami(t *testing.T) string {
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// Must-show 2 of issue 19, the deploy path, against a real OpenSSH
// server: a board whose host key is unknown is refused until its key is
// trusted explicitly (then added to known_hosts); a native board and an
// emulated armv7 board (qemu-arm) get their binary (checked by its
// SHA-256 on the board), their configuration and a supervised agent that
// says it is ready; deploying again replaces it; Clean stops it and
// removes its directory. A changed host key and a user key the server
// does not take each stop with one line that says so.
func TestDeployAndClean(t *testing.T) {
	s := startSSHD(t)
	bins := binaries(t)
	user := whoami(t)
	known := filepath.Join(t.TempDir(), "known_hosts")
	board := func(name, arch, emulator string) *hil.Board {
		return &hil.Board{Name: name, Arch: arch, Address: s.addr, User: user, KeyFile: s.userKey, KnownHosts: known,
			DataDir: filepath.Join(t.TempDir(), name), Emulator: emulator}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	agent := hil.Agent{Binaries: bins, CloudURL: "tcp://127.0.0.1:9", Password: "x", Listen: "127.0.0.1:0"}
	native := board("board-native", runtime.GOARCH, "")
	if _, err := hil.Deploy(ctx, native, agent); !errors.Is(err, hil.ErrHostKey) || !strings.Contains(err.Error(), "--trust-new-host-key") {
		t.Fatalf("an unknown host key: %v", err)
	}
	agent.TrustNewHostKeys = true
	armv7 := board("board-armv7", "armv7", "qemu-arm")
	t.Cleanup(func() { _ = hil.Clean(context.Background(), armv7, false) })
	for _, b := range []*hil.Board{native, armv7} {
		d, err := hil.Deploy(ctx, b, agent)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s agent ready, broker %s, binary sha256 %s", b.Name, d.Supervisor, d.Broker, d.SHA256[:12])
		if d.Broker == "" || d.Supervisor != "process" {
			t.Fatalf("%s deployed: %+v", b.Name, d)
		}
		pid, err := os.ReadFile(filepath.Join(b.DataDir, "agent.pid"))
		if err != nil || exec.Command("kill", "-0", strings.TrimSpace(string(pid))).Run() != nil {
			t.Fatalf("%s: the agent is not running (%v)", b.Name, err)
		}
		if b.Emulator != "" {
			if out, _ := exec.Command("ps", "-o", "args=", "-p", strings.TrimSpace(string(pid))).Output(); !strings.HasPrefix(string(out), "qemu-arm ") {
				t.Fatalf("the armv7 board's agent runs as %q", out)
			}
		}
	}
	again, err := hil.Deploy(ctx, native, agent)
	if err != nil || again.Broker == "" {
		t.Fatalf("deploying again: %+v %v", again, err)
	}
	agent.TrustNewHostKeys = false // known now
	if err := hil.Clean(ctx, native, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(native.DataDir); !os.IsNotExist(err) {
		t.Fatalf("after Clean, %s: %v", native.DataDir, err)
	}

	// A changed host key, and a user key the server does not take.
	other := filepath.Join(t.TempDir(), "other")
	keygen(t, other)
	otherPub, _ := os.ReadFile(other + ".pub")
	fake := filepath.Join(t.TempDir(), "known_hosts")
	host, port, _ := net.SplitHostPort(s.addr)
	if err := os.WriteFile(fake, []byte(fmt.Sprintf("[%s]:%s %s\n", host, port, strings.Join(strings.Fields(string(otherPub))[:2], " "))), 0o600); err != nil {
		t.Fatal(err)
	}
	changed := board("board-x", runtime.GOARCH, "")
	changed.KnownHosts = fake
	hostErr := hil.Clean(ctx, changed, true)
	if !errors.Is(hostErr, hil.ErrHostKey) || strings.Contains(hostErr.Error(), "\n") ||
		!regexp.MustCompile(`not the one in .* line 1`).MatchString(hostErr.Error()) {
		t.Fatalf("a changed host key: %v", hostErr)
	}
	wrongUser := board("board-y", runtime.GOARCH, "")
	wrongUser.KeyFile = other
	authErr := hil.Clean(ctx, wrongUser, false)
	if !errors.Is(authErr, hil.ErrAuth) || strings.Contains(authErr.Error(), "\n") {
		t.Fatalf("a user key the server does not take: %v", authErr)
	}
	t.Logf("a changed host key: %v", hostErr)
	t.Logf("a user key not taken: %v", authErr)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Must-show 2 of issue 19, run and report: a scenario runs with a native
// board and an emulated armv7 board (qemu-arm) as its nodes, reached
// through a real OpenSSH server: both boards' cloud links go down for 2 s
// while their sensors publish, then the armv7 agent is SIGKILLed over SSH
// and started again 2 s later. Every acknowledged message arrives once;
// the report counts the armv7 board's one restart (none on its own), has
// samples of both agents' RSS, CPU and store with the killed agent down
// for a while, each board's plugin call times (interpreted on armv7,
// compiled natively), and renders as Markdown and an SVG chart. Run with
// Keep, both agents run again after it, not held down.
func TestRunReportsEachBoard(t *testing.T) {
	s := startSSHD(t)
	bins := binaries(t)
	user := whoami(t)
	known := filepath.Join(t.TempDir(), "known_hosts")
	inv := &hil.Inventory{}
	for _, b := range []struct{ name, arch, emu string }{{"native-1", runtime.GOARCH, ""}, {"armv7-1", "armv7", "qemu-arm"}} {
		inv.Boards = append(inv.Boards, hil.Board{Name: b.name, Arch: b.arch, Emulator: b.emu, Address: s.addr, User: user,
			KeyFile: s.userKey, KnownHosts: known, DataDir: filepath.Join(t.TempDir(), b.name), Listen: freeAddr(t)})
	}
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	sc, err := simulator.Parse([]byte(`
name: two-boards
duration: 9s
drain: 60s
nodes: {names: [native-1, armv7-1]}
devices: [{kind: sensor, rate: 20}]
faults:
  - {at: 1s, nodes: [native-1, armv7-1], action: linkDown}
  - {at: 3s, nodes: [all], action: linkUp}
  - {at: 4s, nodes: [armv7-1], action: kill}
  - {at: 6s, nodes: [armv7-1], action: restart}
expect: {lost: 0, duplicated: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := hil.Run(ctx, inv, sc, hil.RunOptions{Binaries: bins, TrustNewHostKeys: true, Interval: 250 * time.Millisecond, PluginCalls: 3,
		Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := range inv.Boards {
			_ = hil.Clean(context.Background(), &inv.Boards[i], false)
		}
	})
	if !rep.OK() {
		var sum strings.Builder
		rep.Sim.WriteSummary(&sum)
		for _, b := range inv.Boards {
			log, _ := os.ReadFile(filepath.Join(b.DataDir, "edge.log"))
			sum.WriteString("\n" + b.Name + "'s edge.log:\n" + string(log))
		}
		t.Fatalf("failures: %v\n%s", rep.Failures(), sum.String())
	}
	for _, b := range rep.Boards {
		c := b.Counts
		t.Logf("%s (%s, %s): published %d, delivered %d, lost %d, duplicated %d, p50 %v p99 %v; restarts %d; RSS %d→%d KiB; CPU %.2f/%.2f; store %d KiB; %d samples",
			b.Board, b.Arch, b.Engine, c.Published, c.Delivered, c.Lost, c.Duplicated, c.P50, c.P99, b.Restarts, b.RSSFirst>>10, b.RSSPeak>>10,
			b.CPUMean, b.CPUPeak, b.StorePeak>>10, len(b.Samples))
		if c.Acked == 0 || c.Lost != 0 || c.Duplicated != 0 || c.P50 <= 0 || c.P99 < c.P50 {
			t.Errorf("%s: counts %+v", b.Board, c)
		}
		if b.RSSPeak <= 0 || b.CPUPeak <= 0 || b.StorePeak <= 0 {
			t.Errorf("%s: no RSS, CPU or store sampled", b.Board)
		}
		down := 0
		for _, s := range b.Samples {
			if !s.Up {
				down++
			}
		}
		wantRestarts, wantEngine := 0, "compiler"
		if b.Arch == "armv7" {
			wantRestarts, wantEngine = 1, "interpreter"
		}
		if b.Restarts != wantRestarts || b.Unplanned != 0 || (down > 0) != (wantRestarts > 0) {
			t.Errorf("%s: %d restarts (%d on its own), %d samples down", b.Board, b.Restarts, b.Unplanned, down)
		}
		if b.Engine != wantEngine || len(b.Plugins) < 8 {
			t.Errorf("%s: plugins timed by %q: %+v", b.Board, b.Engine, b.Plugins)
		}
		for _, p := range b.Plugins {
			if p.Calls != 3 || p.P50 <= 0 {
				t.Errorf("%s: plugin %+v", b.Board, p)
			}
		}
	}
	for _, b := range inv.Boards { // kept: running, not held
		pid, err := os.ReadFile(filepath.Join(b.DataDir, "agent.pid"))
		if _, held := os.Stat(filepath.Join(b.DataDir, "hold")); err != nil || held == nil ||
			exec.Command("kill", "-0", strings.TrimSpace(string(pid))).Run() != nil {
			t.Errorf("%s: the kept agent does not run (%v; held: %v)", b.Name, err, held == nil)
		}
	}
	var md, svg strings.Builder
	if err := rep.WriteMarkdown(&md, "chart.svg"); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteChart(&svg, "svg"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| board | native-1 | armv7-1 |", "| lost | 0 | 0 |", "| agent restarts (on its own) | 0 (0) | 1 (0) |",
		"![RSS and backlog over time, per board](chart.svg)", "| CrossEntropy (64) |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("the Markdown report has no %q:\n%s", want, md.String())
		}
	}
	if !strings.HasPrefix(svg.String(), "<svg") || !strings.Contains(svg.String(), "armv7-1 (armv7, emulated)") {
		t.Errorf("the chart: %.200s", svg.String())
	}
}
