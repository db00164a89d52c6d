package hil

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/simulator"
)

// RunOptions are what a run needs beside its inventory and scenario.
type RunOptions struct {
	// Binaries are the sedna binaries by architecture, as for Deploy.
	Binaries map[string]string
	// LinkHost is this host's address as the boards reach it: each
	// board's cloud link goes to a fault proxy listening there. Default
	// 127.0.0.1 (boards on this machine, emulated).
	LinkHost string
	// Interval between two samples of a board (RSS, CPU, store); default
	// 1 s.
	Interval time.Duration
	// PluginCalls is how many calls of each built-in miner and aggregator
	// the boards time after the run (sedna plugin bench); default 10, and
	// negative skips it.
	PluginCalls int
	// TrustNewHostKeys, as for Deploy.
	TrustNewHostKeys bool
	// Keep leaves the agents running after the run (default: stopped,
	// their directories kept for a look; Clean removes them).
	Keep bool
}

// Run deploys the inventory's boards as the scenario's nodes and runs the
// scenario on them (the simulator's real mode): the devices publish on
// each board's broker, each board's cloud link passes through a fault
// proxy on this host, and the timeline's kills and restarts act on the
// boards' agents over SSH. Each board is sampled while it runs; after the
// run each times the built-in plugins; the report holds it all.
func Run(ctx context.Context, inv *Inventory, s *simulator.Scenario, o RunOptions) (*Report, error) {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.PluginCalls == 0 {
		o.PluginCalls = 10
	}
	agent := Agent{Binaries: o.Binaries, TrustNewHostKeys: o.TrustNewHostKeys}
	names := make([]string, len(inv.Boards))
	for i := range inv.Boards {
		names[i] = inv.Boards[i].Name
		if err := agent.hasBinary(&inv.Boards[i]); err != nil {
			return nil, err
		}
	}
	if err := s.OnBoards(names); err != nil {
		return nil, err
	}
	nodes := make([]*runNode, len(inv.Boards))
	ext := make([]simulator.External, len(inv.Boards))
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.finish(o.Keep)
			}
		}
	}()
	for i := range inv.Boards {
		b := &inv.Boards[i]
		c, err := dial(ctx, b, o.TrustNewHostKeys)
		if err != nil {
			return nil, err
		}
		nodes[i] = &runNode{c: c, agent: agent}
		ext[i] = nodes[i]
		if nodes[i].tick, err = c.clockTicks(); err != nil {
			return nil, err
		}
	}
	var start atomic.Pointer[time.Time]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.sample(&start, o.Interval, stop)
		}()
	}
	sim, err := simulator.Run(ctx, s, simulator.Options{Boards: ext, LinkHost: o.LinkHost,
		Started: func(t time.Time) { start.Store(&t) }})
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	rep := &Report{Scenario: s.Name, Sim: sim}
	if t := start.Load(); t != nil {
		rep.Started = *t
	}
	for i, n := range nodes {
		br := BoardReport{Board: n.c.b.Name, Arch: n.c.b.Arch, Emulator: n.c.b.Emulator, Supervisor: n.supervisor, Counts: sim.Nodes[i]}
		for _, s := range n.samples { // not those of the agents' stop after the run
			if s.At <= sim.Elapsed.Seconds() {
				br.Samples = append(br.Samples, s)
			}
		}
		br.summarize()
		if br.Restarts, err = n.c.readyCount(); err != nil {
			return nil, err
		}
		br.Restarts--
		br.Unplanned = br.Restarts - (n.starts - 1)
		if o.PluginCalls > 0 {
			if br.Engine, br.Plugins, err = n.c.timePlugins(o.PluginCalls); err != nil {
				return nil, err
			}
		}
		rep.Boards = append(rep.Boards, br)
	}
	return rep, nil
}

// runNode is a board as a node of a run (simulator.External).
type runNode struct {
	c          *conn
	agent      Agent
	supervisor string
	// starts counts the agent's starts the run asked for.
	starts int
	// tick is the board's clock ticks per second (CPU times).
	tick float64

	mu      sync.Mutex
	samples []Sample
}

// Start deploys the agent the first time; after a Stop it lets the
// supervisor start it again and waits until it is ready.
func (n *runNode) Start(ctx context.Context, cloudURL, password string, config []byte) (string, error) {
	if n.starts == 0 {
		a := n.agent
		a.CloudURL, a.Password, a.Config = cloudURL, password, config
		d, err := n.c.deploy(a)
		if err != nil {
			return "", err
		}
		n.supervisor, n.starts = d.Supervisor, 1
		return n.c.b.brokerFor(d.Broker)
	}
	if _, err := n.c.run("rm -f " + n.c.b.DataDir + "/hold"); err != nil {
		return "", err
	}
	n.starts++
	addr, err := n.c.waitReady(n.starts)
	if err != nil {
		return "", err
	}
	return n.c.b.brokerFor(addr)
}

// Stop holds the agent down (its supervisor waits) and signals it, then
// waits until it has exited.
func (n *runNode) Stop(ctx context.Context, kill bool) error {
	sig := "TERM"
	if kill {
		sig = "KILL"
	}
	dir := n.c.b.DataDir
	_, err := n.c.run(fmt.Sprintf("touch %[1]s/hold && P=$(cat %[1]s/agent.pid) && kill -%[2]s $P && "+
		"timeout 30 sh -c \"while kill -0 $P 2>/dev/null; do sleep 0.05; done\"", dir, sig))
	return err
}

// finish stops the agent, or, with keep, lets it start again (the run's
// end held it down, as a timeline's stop does) and waits until it is
// ready; then closes the connection.
func (n *runNode) finish(keep bool) {
	switch {
	case n.starts == 0:
	case keep:
		if _, err := n.c.run("rm -f " + n.c.b.DataDir + "/hold"); err == nil {
			_, _ = n.c.waitReady(n.starts + 1)
		}
	default:
		_ = n.c.stop()
	}
	_ = n.c.close()
}

// brokerFor is the board's broker as this host reaches it, given the
// address the agent says it listens on.
func (b *Board) brokerFor(listening string) (string, error) {
	if b.Broker != "" {
		return b.Broker, nil
	}
	_, port, err := net.SplitHostPort(listening)
	if err != nil {
		return "", fmt.Errorf("board %s: its broker listens on %q: %w", b.Name, listening, err)
	}
	host, _, err := net.SplitHostPort(b.addr())
	if err != nil {
		return "", fmt.Errorf("board %s: address %q: %w", b.Name, b.Address, err)
	}
	return net.JoinHostPort(host, port), nil
}

// Sample is one look at a board's agent.
type Sample struct {
	// At is seconds since the devices started.
	At float64 `json:"at"`
	// Up says whether the agent was running; the rest is zero if not.
	Up bool `json:"up"`
	// RSS is the agent process's resident memory (an emulated board's
	// includes its emulator's).
	RSS int64 `json:"rssBytes"`
	// CPU is the agent's CPU time since the last sample over the time
	// between them: 1 is one core busy.
	CPU float64 `json:"cpuCores"`
	// Store is the bytes of its data directory on disk.
	Store int64 `json:"storeBytes"`
	// Backlog is the messages the board's devices had sent that the cloud
	// had not received (the run's count, at its peak in that second).
	Backlog  int64 `json:"backlog"`
	cpuTicks int64
}

// sample samples the board every interval from the devices' start until
// stop, through one SSH session whose shell loop prints a sample each
// interval (a session per sample would cost the board an sshd fork and a
// shell each time).
func (n *runNode) sample(start *atomic.Pointer[time.Time], every time.Duration, stop <-chan struct{}) {
	sess, err := n.c.c.NewSession()
	if err != nil {
		return
	}
	defer sess.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		return
	}
	if err := sess.Start(lookLoop(n.c.b.DataDir, every)); err != nil {
		return
	}
	go func() {
		<-stop
		_ = sess.Close()
	}()
	var last *Sample
	var block []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() != "--" {
			block = append(block, sc.Text())
			continue
		}
		lines := block
		block = nil
		t0 := start.Load()
		if t0 == nil {
			continue
		}
		s, err := parseLook(lines)
		if err != nil {
			continue // a gap in the series
		}
		s.At = time.Since(*t0).Seconds()
		if last != nil && last.Up && s.Up && s.cpuTicks >= last.cpuTicks && s.At > last.At {
			s.CPU = float64(s.cpuTicks-last.cpuTicks) / n.tick / (s.At - last.At)
		}
		n.mu.Lock()
		n.samples = append(n.samples, s)
		n.mu.Unlock()
		last = &s
	}
}

// lookLoop is the shell loop that prints, every interval, the size of the
// agent's data directory in KiB and, while the agent runs, the end of its
// /proc/PID/stat and its VmRSS line, then "--".
func lookLoop(dir string, every time.Duration) string {
	return fmt.Sprintf("while :; do P=$(cat %[1]s/agent.pid 2>/dev/null); du -sk %[1]s/data | cut -f1; "+
		"if [ -n \"$P\" ] && [ ! -f %[1]s/hold ] && [ -r /proc/$P/stat ]; then sed 's/.*) //' /proc/$P/stat; grep VmRSS /proc/$P/status; fi; "+
		"echo --; sleep %.3f; done", dir, every.Seconds())
}

// parseLook reads one block of lookLoop.
func parseLook(lines []string) (Sample, error) {
	var s Sample
	if len(lines) == 0 {
		return s, errors.New("an empty sample")
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(lines[0]), 10, 64)
	if err != nil {
		return s, fmt.Errorf("du says %q", lines[0])
	}
	s.Store = kb << 10
	if len(lines) < 3 {
		return s, nil
	}
	// /proc/PID/stat after the command's name: state is the first field,
	// utime and stime the 12th and 13th.
	f := strings.Fields(lines[1])
	rss := strings.Fields(lines[2])
	if len(f) < 13 || len(rss) < 2 || f[0] == "Z" {
		return s, nil
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	r, err3 := strconv.ParseInt(rss[1], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return s, fmt.Errorf("/proc: %w", err)
	}
	s.Up, s.cpuTicks, s.RSS = true, ut+st, r<<10
	return s, nil
}

// clockTicks is the board's clock ticks per second.
func (c *conn) clockTicks() (float64, error) {
	out, err := c.run("getconf CLK_TCK")
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("board %s: getconf CLK_TCK says %q", c.b.Name, out)
	}
	return v, nil
}

// readyCount is how many times the agent said it was ready since it was
// deployed.
func (c *conn) readyCount() (int, error) {
	out, err := c.run("grep -c 'ready: broker' " + c.b.DataDir + "/edge.log; true")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// timePlugins runs `sedna plugin bench` on the board.
func (c *conn) timePlugins(calls int) (string, []plugins.CallTimes, error) {
	out, err := c.run(fmt.Sprintf("%s plugin bench --json --calls %d --cache-dir %s/wasm-cache", c.exe(), calls, c.b.DataDir))
	if err != nil {
		return "", nil, err
	}
	var b struct {
		Engine  string              `json:"engine"`
		Plugins []plugins.CallTimes `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		return "", nil, fmt.Errorf("board %s: sedna plugin bench: %w", c.b.Name, err)
	}
	return b.Engine, b.Plugins, nil
}
