package simulator

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/internal/smalldisk"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Options are what a scenario file does not say.
type Options struct {
	// Dir holds the stores of the run; default a temporary directory,
	// removed after.
	Dir string
	// SednaBin runs subprocess nodes; default this executable.
	SednaBin string
	// Binaries are the sedna binaries of other architectures, by
	// nodes.arch name (arm64, armv7), for emulated nodes.
	Binaries map[string]string
	Log      *slog.Logger
	// Boards, if set, are the run's nodes, in order: edge agents the run
	// does not start itself (hardware in the loop, package hil). The
	// scenario must have been made for them (Scenario.OnBoards).
	Boards []External
	// LinkHost is the address the nodes reach their cloud links' fault
	// proxies at; default 127.0.0.1. Boards elsewhere on a network need
	// an address of this host they can reach.
	LinkHost string
	// Started, if set, is called when the devices start: the time the
	// report's figures count from.
	Started func(time.Time)
}

// External is a node's edge agent that a run does not start itself: a
// board reached over SSH (package hil). The run calls a node's methods
// one at a time.
type External interface {
	// Start starts the agent with its cloud link at cloudURL, logged in
	// as its node with password, and config (YAML, `sedna edge --config`:
	// the bridge rules that carry the devices' messages, the queue's
	// limits), and returns the address its devices reach its broker at,
	// the same each time. It is called again after each Stop.
	Start(ctx context.Context, cloudURL, password string, config []byte) (broker string, err error)
	// Stop stops the agent: SIGKILL when kill is set, gracefully
	// otherwise.
	Stop(ctx context.Context, kill bool) error
}

// Run runs a scenario and reports.
func Run(ctx context.Context, s *Scenario, o Options) (*Report, error) {
	if s.Mode == "deterministic" {
		return runDeterministic(s)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "sedna-sim-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	if len(o.Boards) > 0 && len(o.Boards) != s.Nodes.Count {
		return nil, fmt.Errorf("simulator: %d boards for %d nodes", len(o.Boards), s.Nodes.Count)
	}
	if o.LinkHost == "" {
		o.LinkHost = "127.0.0.1"
	}
	if s.Nodes.Subprocess > 0 && o.SednaBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.SednaBin = exe
	}
	r := &realRun{s: s, o: o, nodes: make([]*simNode, s.Nodes.Count), progress: make(chan struct{}, 1), password: rand.Text()}
	defer r.close()
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// realRun is one run of real mode.
type realRun struct {
	s *Scenario
	o Options
	// password is the run's, for its nodes and clients on its cloud
	// broker: drawn per run, since boards reach that broker over a network.
	password string
	cloud    *cloud.Manager
	counter  paho.Client
	nodes    []*simNode
	start0   time.Time

	mu     sync.Mutex
	faults []string
	timers []*time.Timer
	// progress is poked when a message arrives or is acknowledged.
	progress chan struct{}
	// answers are the twin deltas waiting for the cloud broker's PUBACK.
	answers sync.WaitGroup
	// twins are the twin devices' clients, kept connected while the run
	// drains (under mu).
	twins []paho.Client
	data  *fleetData
}

func (r *realRun) poke() {
	select {
	case r.progress <- struct{}{}:
	default:
	}
}

// simNode is one node and its devices' counts.
type simNode struct {
	i       int
	name    string
	dir     string
	addr    string // the node broker's address, the same across restarts
	link    *netfault.Proxy
	agent   *edge.Agent // in-process
	proc    *exec.Cmd   // subprocess
	board   External    // a board, up while boardUp
	boardUp bool
	procEnd chan struct{}
	limit   int64        // the queue's limit before a diskFull
	clock   atomic.Int64 // the node's clock: nanoseconds off real time
	// stopping is set when the simulator stops the node's process; died
	// says how it ended if it ended on its own (a failure of the run).
	stopping atomic.Bool
	died     atomic.Value
	// dropped counts device connections lost while the node ran.
	dropped atomic.Int64
	mu      sync.Mutex

	// counts, by device
	devices []*simDevice
}

type simDevice struct {
	name  string
	kind  string
	qos   byte
	acked []atomic.Bool // by seq
	sent  []atomic.Bool
	seen  []atomic.Int32
	lat   []atomic.Int64 // nanos, by seq (written once, by the counter)
	next  atomic.Int64
	// twin devices: the delta answering report seq was sent by the cloud,
	// received so many times, after so long.
	deltaSent []atomic.Bool
	deltaSeen []atomic.Int32
	rtt       []atomic.Int64
	// deltaFailed: the cloud broker did not take the answer (so none is
	// promised).
	deltaFailed []atomic.Bool
}

// running says whether the node runs and is not being stopped.
func (n *simNode) running() bool { return !n.stopping.Load() }

// now is the node's clock.
func (n *simNode) now() time.Time { return time.Now().Add(time.Duration(n.clock.Load())) }

func (r *realRun) logFault(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, fmt.Sprintf("%6.2fs ", time.Since(r.start0).Seconds())+fmt.Sprintf(format, a...))
}

func (r *realRun) start(ctx context.Context) error {
	s := r.s
	var err error
	if r.data, err = loadData(s); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(r.password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	users := []access.User{{Username: "sim-counter", PasswordHash: string(h), Role: access.UserOperator},
		{Username: "sim-ops", PasswordHash: string(h), Role: access.UserOperator}}
	for i := range s.Nodes.Count {
		users = append(users, access.User{Username: s.NodeName(i), PasswordHash: string(h), Role: access.UserNode})
	}
	creds, err := access.NewCredentials(users...)
	if err != nil {
		return err
	}
	r.cloud, err = cloud.Start(cloud.Config{DataDir: filepath.Join(r.o.Dir, "cloud"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"},
		Data:    cloud.DataConfig{Dirs: []string{filepath.Join(r.o.Dir, "data")}}, // ${SIM_DATA}
		Metrics: "off"}, cloud.Options{Paradigms: all.All(), Logger: r.o.Log, Credentials: creds})
	if err != nil {
		return err
	}
	if err := r.startCounter(); err != nil {
		return err
	}
	max := int(time.Duration(s.Duration).Seconds()*maxRate(s)) + 16
	for i := range s.Nodes.Count {
		n := &simNode{i: i, name: s.NodeName(i), dir: filepath.Join(r.o.Dir, s.NodeName(i))}
		for _, d := range s.Devices {
			for k := range d.PerNode {
				dev := &simDevice{name: fmt.Sprintf("%s-%d", d.Kind, k), kind: d.Kind, qos: byte(*d.QoS),
					acked: make([]atomic.Bool, max), sent: make([]atomic.Bool, max), seen: make([]atomic.Int32, max), lat: make([]atomic.Int64, max)}
				if d.Kind == "twin" {
					dev.deltaSent, dev.deltaSeen, dev.rtt = make([]atomic.Bool, max), make([]atomic.Int32, max), make([]atomic.Int64, max)
					dev.deltaFailed = make([]atomic.Bool, max)
				}
				n.devices = append(n.devices, dev)
			}
		}
		n.link, err = netfault.Listen(net.JoinHostPort(r.o.LinkHost, "0"), strings.TrimPrefix(r.cloud.BrokerURL(), "tcp://"))
		if err != nil {
			return err
		}
		if len(r.o.Boards) > 0 {
			n.board = r.o.Boards[i]
		} else {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			n.addr = l.Addr().String()
			l.Close()
		}
		r.nodes[i] = n
		if err := r.startNode(ctx, n); err != nil {
			return fmt.Errorf("node %s: %w", n.name, err)
		}
	}
	return nil
}

func maxRate(s *Scenario) float64 {
	m := 0.0
	for _, d := range s.Devices {
		m = max(m, d.Rate)
	}
	return m
}

// The counter: a plain MQTT subscriber of its own on the cloud broker,
// independent of the code under test.
func (r *realRun) startCounter() error {
	byNode := map[string]*simNode{}
	filters := map[string]byte{topics.NodeApp("+", "sim/#"): 1, topics.NodeApp("+", "sim0/#"): 1,
		topics.NodeKubeEdge("+", topics.KubeEdgeDevicesFilter()):       1,
		topics.NodeKubeEdge("+", topics.KubeEdgeTwinUpdate("+/+", "")): 1}
	handler := func(_ paho.Client, m paho.Message) {
		node, dev, seq, sent, ok := parseCounted(m.Topic(), m.Payload())
		if !ok {
			return
		}
		now := time.Now()
		r.mu.Lock()
		if len(byNode) == 0 {
			for _, n := range r.nodes {
				if n != nil {
					byNode[n.name] = n
				}
			}
		}
		n := byNode[node]
		r.mu.Unlock()
		if n == nil {
			return
		}
		for _, d := range n.devices {
			if d.name != dev {
				continue
			}
			if seq < 0 || seq >= int64(len(d.seen)) {
				return
			}
			d.lat[seq].CompareAndSwap(0, max(1, now.Sub(sent).Nanoseconds())) // the first arrival's
			if d.seen[seq].Add(1) == 1 && d.kind == "twin" {
				r.answerTwin(n, d, seq, m.Payload())
			}
			r.poke()
		}
	}
	o := paho.NewClientOptions().AddBroker(r.cloud.BrokerURL()).SetClientID("sim-counter").SetUsername("sim-counter").
		SetPassword(r.password).SetCleanSession(false).SetAutoReconnect(true).SetOrderMatters(false).
		SetOnConnectHandler(func(c paho.Client) { c.SubscribeMultiple(filters, handler) })
	r.counter = paho.NewClient(o)
	t := r.counter.Connect()
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("counter: connect: %v", t.Error())
	}
	st := r.counter.SubscribeMultiple(filters, handler)
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return fmt.Errorf("counter: subscribe: %v", st.Error())
	}
	return nil
}

// answerTwin sends the desired state answering twin report seq of device d,
// as a cloud app would: on the node's downlink, QoS 1.
func (r *realRun) answerTwin(n *simNode, d *simDevice, seq int64, report []byte) {
	id, _, _, ok := eventSeq(report)
	if !ok {
		return
	}
	tok := r.counter.Publish(topics.ToNodeKubeEdge(n.name, twinTopic(n.name, d.name, "/delta")), 1, false, twinDelta(id, seq))
	r.answers.Add(1)
	go func() {
		defer r.answers.Done()
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			d.deltaSent[seq].Store(true)
		} else {
			d.deltaFailed[seq].Store(true)
		}
		r.poke()
	}()
}

// simRules carry the devices' messages up under the node's app prefix:
// sim/# through the durable queue (QoS 1 devices), sim0/# only while the
// link is up (QoS 0 devices: nothing is promised, as with mosquitto's
// bridge at QoS 0).
var simRules = []bridge.Rule{
	{Filter: "sim/#", Direction: bridge.Out, RemotePrefix: topics.NodeAppPrefix("{node}"), Stream: topics.StreamTelemetry},
	{Filter: "sim0/#", Direction: bridge.Out, RemotePrefix: topics.NodeAppPrefix("{node}"), Stream: topics.StreamTelemetry, QoS: new(int)},
}

func (r *realRun) startNode(ctx context.Context, n *simNode) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	cloudURL := "tcp://" + n.link.Addr()
	if n.board != nil {
		addr, err := n.board.Start(ctx, cloudURL, r.password, []byte(r.nodeConfig()))
		if err != nil {
			return err
		}
		if n.addr == "" { // read by the devices from here on
			n.addr = addr
		} else if addr != n.addr {
			return fmt.Errorf("its broker moved from %s to %s", n.addr, addr)
		}
		n.boardUp = true
		n.stopping.Store(false)
		return nil
	}
	if n.i < r.s.Nodes.Subprocess {
		return r.startProc(ctx, n, cloudURL)
	}
	a, err := edge.Start(edge.Config{Node: n.name, DataDir: n.dir, WriteMode: store.Mode(r.s.Nodes.WriteMode),
		Broker: edge.BrokerConfig{Listen: n.addr}, Cloud: edge.CloudLink{URL: cloudURL, Username: n.name, Password: r.password,
			ReconnectMin: broker.Duration(50 * time.Millisecond), ReconnectMax: broker.Duration(time.Second)},
		ExtraRules: simRules, Metrics: "off",
		Queue: edge.QueueConfig{MaxBytes: r.s.Nodes.Queue.MaxBytes, Policy: queue.FullPolicy(r.s.Nodes.Queue.Policy),
			MaxAge: broker.Duration(r.s.Nodes.Queue.MaxAge)}},
		edge.Options{Paradigms: all.All(), Logger: r.o.Log, KeepMemoryLimit: true, Clock: n.now})
	if err != nil {
		return err
	}
	n.agent = a
	n.stopping.Store(false)
	return nil
}

// nodeConfig is the configuration (YAML) of a node the run does not run in
// its own process: simRules, a quick reconnect, the scenario's queue.
func (r *realRun) nodeConfig() string {
	prefix := topics.NodeAppPrefix("{node}")
	conf := "extraRules:\n  - filter: 'sim/#'\n    direction: out\n    stream: telemetry\n    remotePrefix: '" + prefix + "'\n" +
		"  - filter: 'sim0/#'\n    direction: out\n    stream: telemetry\n    qos: 0\n    remotePrefix: '" + prefix + "'\n" +
		"cloud:\n  reconnectMin: 50ms\n  reconnectMax: 1s\n"
	if q := r.s.Nodes.Queue; q.MaxBytes > 0 || q.Policy != "" || q.MaxAge > 0 {
		conf += fmt.Sprintf("queue:\n  maxBytes: %d\n  policy: %q\n  maxAge: %s\n", q.MaxBytes, q.Policy, time.Duration(q.MaxAge))
	}
	return conf
}

var readyLine = regexp.MustCompile(`ready: broker (\S+)`)

func (r *realRun) startProc(ctx context.Context, n *simNode, cloudURL string) error {
	conf := filepath.Join(r.o.Dir, n.name+".yaml")
	if err := os.WriteFile(conf, []byte(r.nodeConfig()), 0o600); err != nil {
		return err
	}
	args := []string{"edge", "--node", n.name, "--data", n.dir, "--listen", n.addr, "--cloud", cloudURL,
		"--password", r.password, "--write-mode", r.s.Nodes.WriteMode, "--metrics", "off", "--log-level", "error", "--config", conf}
	cmd := exec.Command(r.o.SednaBin, args...)
	if arch := r.s.ArchOf(n.i); arch != "native" {
		bin := r.o.Binaries[arch]
		if bin == "" {
			return fmt.Errorf("node %s is %s: no sedna binary for it (sedna sim run --bin %s=PATH; make cross builds bin/sedna-linux-%s)",
				n.name, arch, arch, arch)
		}
		cmd = exec.Command(Emulators[arch], append([]string{bin}, args...)...)
	}
	if mib := r.s.Nodes.DiskMiB; mib > 0 {
		var err error
		if cmd, err = smalldisk.Command(n.dir, mib<<20, r.o.SednaBin, args...); err != nil {
			return err
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	ready := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if readyLine.MatchString(sc.Text()) {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
		err := cmd.Wait()
		if !n.stopping.Load() {
			if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == smalldisk.ExitMountFailed {
				n.died.Store("could not mount its small file system (needs root or user namespaces)")
			} else {
				n.died.Store(fmt.Sprintf("%v", cmd.ProcessState))
			}
		}
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		return fmt.Errorf("sedna edge exited at start: %v", n.died.Load())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return errors.New("sedna edge not ready in 30 s")
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return ctx.Err()
	}
	n.proc, n.procEnd = cmd, done
	n.stopping.Store(false)
	return nil
}

// stopNode stops a node: SIGKILL for a subprocess when kill is set, a
// graceful stop otherwise.
func (r *realRun) stopNode(n *simNode, kill bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopping.Store(true)
	if n.boardUp {
		if err := n.board.Stop(context.Background(), kill); err != nil {
			r.logFault("stopping %s: %v", n.name, err)
		}
		n.boardUp = false
	}
	if n.agent != nil {
		n.agent.Close()
		n.agent = nil
	}
	if n.proc != nil {
		sig := syscall.SIGTERM
		if kill {
			sig = syscall.SIGKILL
		}
		_ = n.proc.Process.Signal(sig)
		<-n.procEnd
		n.proc = nil
	}
}

func (r *realRun) disconnectTwins() {
	r.mu.Lock()
	twins := r.twins
	r.twins = nil
	r.mu.Unlock()
	for _, c := range twins {
		c.Disconnect(100)
	}
}

func (r *realRun) close() {
	r.disconnectTwins()
	r.mu.Lock()
	for _, t := range r.timers {
		t.Stop()
	}
	r.mu.Unlock()
	for _, n := range r.nodes {
		if n != nil {
			r.stopNode(n, false)
			_ = n.link.Close()
		}
	}
	if r.counter != nil {
		r.answers.Wait()
		r.counter.Disconnect(100)
	}
	if r.cloud != nil {
		r.cloud.Close()
	}
}

// schedule arms the fault timeline.
func (r *realRun) schedule(ctx context.Context) {
	for _, st := range r.s.Timeline() {
		r.after(st.At, func() { r.apply(ctx, st.Fault, st.Nodes, st.On) })
	}
}

func (r *realRun) after(d time.Duration, f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timers = append(r.timers, time.AfterFunc(d, f))
}

// apply injects a fault; on=false undoes a flapping one.
func (r *realRun) apply(ctx context.Context, f Fault, idx []int, on bool) {
	r.logFault("%s", r.s.Describe(f, idx, on))
	for _, k := range idx {
		n := r.nodes[k]
		switch f.Action {
		case "linkDown":
			n.link.SetDown(on)
		case "linkUp":
			n.link.SetDown(false)
		case "latency":
			d, _ := time.ParseDuration(f.Value)
			n.link.SetLatency(d)
		case "bandwidth":
			v, _ := strconv.Atoi(f.Value)
			n.link.SetBandwidth(v)
		case "reset":
			n.link.ResetAll()
		case "stall":
			n.link.SetStall(on)
		case "unstall":
			n.link.SetStall(false)
		case "kill":
			r.stopNode(n, true)
		case "restart":
			r.stopNode(n, false)
			if err := r.startNode(ctx, n); err != nil {
				r.logFault("restart of %s failed: %v", n.name, err)
			}
		case "clockSet", "clockSkew", "clockJump":
			n.clock.Store(int64(f.ClockOffset(time.Duration(n.clock.Load()), time.Now())))
		case "diskFull", "diskFree":
			n.mu.Lock()
			if p := n.proc; p != nil && r.s.Nodes.DiskMiB > 0 {
				var err error
				if f.Action == "diskFull" {
					// Half the store's reserve: writes are refused, and
					// deletions still pass.
					err = smalldisk.Fill(p.Process.Pid, n.dir, 16<<20)
				} else {
					err = smalldisk.Free(p.Process.Pid, n.dir)
				}
				if err != nil {
					r.logFault("%s on %s failed: %v", f.Action, n.name, err)
				}
			}
			if a := n.agent; a != nil {
				q := a.Bridge().Queue()
				if f.Action == "diskFull" {
					n.limit = q.MaxBytes()
					q.SetMaxBytes(max(1, q.Bytes()))
				} else {
					q.SetMaxBytes(n.limit)
				}
			}
			n.mu.Unlock()
		}
	}
}

// applyJobs applies the scenario's job files as `sedna apply` would.
func (r *realRun) applyJobs(ctx context.Context) ([]JobReport, *cloud.Client, error) {
	if len(r.s.Jobs) == 0 {
		return nil, nil, nil
	}
	rs, err := r.jobResources()
	if err != nil {
		return nil, nil, err
	}
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: r.cloud.BrokerURL(), Username: "sim-ops", Password: r.password})
	if err != nil {
		return nil, nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := c.Apply(actx, rs)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	var jobs []JobReport
	for _, res := range rep.Results {
		applied := res.Action
		if res.Action == "rejected" {
			applied += ": " + res.Message
		}
		jobs = append(jobs, JobReport{Key: res.Key, Applied: applied})
	}
	return jobs, c, nil
}

// DataPlaceholder, in a scenario's job files, stands for a directory the
// run writes its data set into, as CSV Datasets: {node}.csv with each node's
// share of the training split (data.dataset, split as data.split says) and
// validation.csv with the held-out fifth, one sample per line,
// label,features.... A federated job's YAML names them.
const DataPlaceholder = "${SIM_DATA}"

// jobResources reads the job files, writing the data files first when one
// names them.
func (r *realRun) jobResources() ([]*api.Resource, error) {
	dataDir := filepath.Join(r.o.Dir, "data")
	return r.s.jobResources(dataDir, func() error {
		if err := writeDataFiles(r.s, dataDir); err != nil {
			return fmt.Errorf("data files: %w", err)
		}
		if r.s.Incremental != nil {
			if err := writeLearningFile(dataDir); err != nil {
				return err
			}
		}
		if r.s.Lifelong != nil {
			return writeLifelongFile(dataDir)
		}
		return nil
	})
}

// waitJobs waits, until the end of the drain, for each job the scenario
// expects to end (Completed or Failed) to have ended and, when it ended in
// the phase expected, for the metrics it expects a minimum of to reach it
// (a worker reports its numbers every few seconds: a hot update just
// before the end is counted a report later).
func (r *realRun) waitJobs(ctx context.Context, c *cloud.Client, until time.Time) {
	type wanted struct {
		ref topics.JobRef
		je  JobExpect
	}
	var want []wanted
	for _, je := range r.s.Expect.Jobs {
		if ref, err := topics.ParseJobRef(je.Key); err == nil && je.waited() {
			want = append(want, wanted{ref, je})
		}
	}
	if len(want) == 0 {
		return
	}
	wctx, cancel := context.WithDeadline(ctx, until)
	ended := make(chan string, len(want))
	var wg sync.WaitGroup
	for _, w := range want {
		var once sync.Once
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Watch(wctx, w.ref, func(st api.Status) {
				if w.je.settled(st) {
					once.Do(func() { ended <- w.ref.String() })
				}
			}, nil)
		}()
	}
	for n := 0; n < len(want); n++ {
		select {
		case <-ended:
		case <-wctx.Done():
			n = len(want)
		}
	}
	cancel()
	wg.Wait()
}

// waited says whether the run waits for a job e expects: one expected to
// end (Completed, Failed), or to run with a minimum of a metric (a
// lifelong job's second knowledge base serving, say).
func (e JobExpect) waited() bool {
	if e.Phase == api.ConditionCompleted || e.Phase == api.ConditionFailed {
		return true
	}
	for _, b := range e.Metrics {
		if b.Min != nil && e.Phase == api.ConditionRunning {
			return true
		}
	}
	return false
}

// settled reports whether a job's status is final for e: it ended
// (Completed or Failed), or runs when e expects it to run; and, if in e's
// phase, every metric e wants a minimum of reached it.
func (e JobExpect) settled(st api.Status) bool {
	ended := st.Phase == api.ConditionCompleted || st.Phase == api.ConditionFailed
	switch {
	case ended && st.Phase != e.Phase, ended && e.Phase == api.ConditionRunning:
		return true // the check fails whatever comes next
	case !ended && (e.Phase != api.ConditionRunning || st.Phase != api.ConditionRunning):
		return false
	}
	for k, b := range e.Metrics {
		if b.Min != nil && st.Metrics[k] < *b.Min {
			return false
		}
	}
	return true
}

// jobStates reads each job's state at the end of the run.
func (r *realRun) jobStates(ctx context.Context, c *cloud.Client, jobs []JobReport) {
	for i, j := range jobs {
		ref, err := topics.ParseJobRef(j.Key)
		if err != nil {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rep, err := c.Do(qctx, topics.APIRequest{Op: "describe", Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name})
		cancel()
		if err != nil || len(rep.Objects) == 0 {
			continue
		}
		var st api.Status
		if json.Unmarshal(rep.Objects[0].Status, &st) != nil {
			continue
		}
		jobs[i].fill(st)
	}
}

// run drives the devices, then waits for the fleet to drain and reports.
func (r *realRun) run(ctx context.Context) (*Report, error) {
	jobs, client, err := r.applyJobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if client != nil {
		defer client.Close()
	}
	var lr *companion
	if r.s.Incremental != nil && client != nil {
		if lr, err = r.startLearning(ctx, client); err != nil {
			return nil, err
		}
		defer lr.close()
	}
	var ll *companion
	if r.s.Lifelong != nil && client != nil {
		if ll, err = r.startLifelong(ctx); err != nil {
			return nil, err
		}
		defer ll.close()
		r.logFault("lifelong: %s's sensor sends up to %d surveys of an unseen task to %s; an oracle labels them", r.s.Lifelong.Node,
			ll.n, r.s.Lifelong.Job)
	}
	r.start0 = time.Now()
	if r.o.Started != nil {
		r.o.Started(r.start0)
	}
	if lr != nil {
		r.logFault("incremental: %s's camera sends up to %d drifting frames to %s; an oracle labels its hard examples", r.s.Incremental.Node,
			lr.n, r.s.Incremental.Job)
	}
	r.schedule(ctx)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var devErr atomic.Value
	for _, n := range r.nodes {
		for _, d := range n.devices {
			spec := r.deviceSpec(d)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.device(ctx, n, d, spec, stop); err != nil {
					devErr.Store(err)
				}
			}()
		}
	}
	backlog := make([]int64, len(r.nodes))
	series := make([][]int64, len(r.nodes)) // the peak of each second
	sampleDone := make(chan struct{})
	sampling := make(chan struct{})
	go func() { // backlog peaks
		defer close(sampleDone)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			for i, n := range r.nodes {
				var b int64
				for _, d := range n.devices {
					b += d.pending()
				}
				backlog[i] = max(backlog[i], b)
				sec := int(time.Since(r.start0) / time.Second)
				for len(series[i]) <= sec {
					series[i] = append(series[i], 0)
				}
				series[i][sec] = max(series[i][sec], b)
			}
			select {
			case <-t.C:
			case <-sampling:
				return
			}
		}
	}()
	select {
	case <-time.After(time.Duration(r.s.Duration)):
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	if lr != nil {
		lr.end()
	}
	if ll != nil {
		ll.end()
	}
	// Every fault that was meant to end does; then what is queued drains.
	r.mu.Lock()
	for _, t := range r.timers {
		t.Stop()
	}
	r.mu.Unlock()
	for _, n := range r.nodes {
		n.link.SetDown(false)
		n.link.SetStall(false)
		n.mu.Lock()
		dead := n.agent == nil && n.proc == nil && !n.boardUp
		n.mu.Unlock()
		if dead { // a node killed and not restarted comes back to drain
			if err := r.startNode(ctx, n); err != nil {
				return nil, err
			}
			r.logFault("%s started again to drain", n.name)
		}
	}
	drainEnd := time.Now().Add(time.Duration(r.s.Drain))
	drain := time.After(time.Until(drainEnd))
waiting:
	for !r.drained() {
		select {
		case <-r.progress:
		case <-drain:
			break waiting
		case <-ctx.Done():
			break waiting
		}
	}
	if client != nil {
		r.waitJobs(ctx, client, drainEnd)
	}
	if lr != nil {
		r.logFault("incremental: the camera sent %d frames; the oracle labelled %d hard examples", lr.sent.Load(), lr.labelled.Load())
	}
	if ll != nil {
		r.logFault("lifelong: the sensor sent %d surveys; the oracle labelled %d unseen ones", ll.sent.Load(), ll.labelled.Load())
	}
	close(sampling)
	<-sampleDone
	r.disconnectTwins()
	if err, _ := devErr.Load().(error); err != nil {
		return nil, err
	}
	rep := &Report{Scenario: r.s.Name, Mode: r.s.Mode, Seed: r.s.Seed, Elapsed: time.Since(r.start0)}
	var lat []time.Duration
	for i, n := range r.nodes {
		nr := NodeReport{Node: n.name, BacklogPeak: backlog[i], Backlog: series[i], Dropped: n.dropped.Load()}
		if a := r.s.ArchOf(n.i); a != "native" {
			nr.Arch = a
		}
		var nodeLat []time.Duration
		for _, d := range n.devices {
			rep.tally(&nr, d.kind, int(d.qos), d.next.Load(), func(seq int64) outcome {
				o := outcome{sent: d.sent[seq].Load(), acked: d.acked[seq].Load(), seen: d.seen[seq].Load(), lat: time.Duration(d.lat[seq].Load())}
				if d.deltaSent != nil {
					o.deltaSent, o.deltaSeen, o.rtt = d.deltaSent[seq].Load(), d.deltaSeen[seq].Load(), time.Duration(d.rtt[seq].Load())
				}
				return o
			}, &nodeLat)
		}
		nr.P50, nr.P99, nr.Max = latencies(nodeLat)
		lat = append(lat, nodeLat...)
		rep.Nodes = append(rep.Nodes, nr)
	}
	rep.total()
	rep.latencies(lat)
	r.mu.Lock()
	rep.Faults = append(rep.Faults, r.faults...)
	r.mu.Unlock()
	if client != nil {
		r.jobStates(ctx, client, jobs)
		rep.Jobs = jobs
	}
	rep.check(r.s.Expect)
	for _, n := range r.nodes {
		if how, _ := n.died.Load().(string); how != "" {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s ended on its own: %s", n.name, how))
		}
	}
	return rep, nil
}

type deviceSpec struct {
	rate float64
	size int
}

func (r *realRun) deviceSpec(d *simDevice) deviceSpec {
	for _, spec := range r.s.Devices {
		if strings.HasPrefix(d.name, spec.Kind+"-") {
			return deviceSpec{rate: spec.Rate, size: spec.Size}
		}
	}
	return deviceSpec{rate: 1, size: 64}
}

// pending is how many acknowledged (or, QoS 0, sent) messages have not
// arrived.
func (d *simDevice) pending() int64 {
	var p int64
	for seq := int64(0); seq < d.next.Load(); seq++ {
		if (d.acked[seq].Load() || d.qos == 0 && d.sent[seq].Load()) && d.seen[seq].Load() == 0 {
			p++
		}
		// A twin report that arrived waits for its answer, from before
		// the cloud broker took it.
		if d.deltaSent != nil && d.seen[seq].Load() > 0 && d.deltaSeen[seq].Load() == 0 && !d.deltaFailed[seq].Load() {
			p++
		}
	}
	return p
}

// drained reports whether every promised message has arrived.
func (r *realRun) drained() bool {
	for _, n := range r.nodes {
		for _, d := range n.devices {
			if d.pending() > 0 {
				return false
			}
		}
	}
	return true
}

// device publishes at its rate to its node's broker. A publish that gets no
// PUBACK (the node was killed) is not repeated and not counted: only
// acknowledged messages are promised (devClient).
func (r *realRun) device(ctx context.Context, n *simNode, d *simDevice, spec deviceSpec, stop <-chan struct{}) error {
	var onConnect paho.OnConnectHandler
	if d.kind == "twin" {
		// A persistent session: the node's broker keeps the subscription
		// and the deltas that come while the device is away.
		onConnect = func(c paho.Client) {
			c.Subscribe(twinTopic(n.name, d.name, "/delta"), 1, func(_ paho.Client, m paho.Message) {
				_, seq, sent, ok := eventSeq(m.Payload())
				if !ok || seq >= int64(len(d.deltaSeen)) {
					return
				}
				d.rtt[seq].CompareAndSwap(0, max(1, time.Since(sent).Nanoseconds()))
				d.deltaSeen[seq].Add(1)
				r.poke()
			})
		}
	}
	c := newDevClient(n.addr, n.name+"-"+d.name, d.kind != "twin", onConnect, func(paho.Client, error) {
		if n.running() {
			n.dropped.Add(1)
		}
	})
	var acks sync.WaitGroup // the acknowledgements this device waits for
	defer func() {
		acks.Wait()
		if d.kind == "twin" { // it waits for its deltas until the run drained
			r.mu.Lock()
			r.twins = append(r.twins, c)
			r.mu.Unlock()
			return
		}
		c.Disconnect(100)
	}()
	period := time.Duration(float64(time.Second) / spec.rate)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		seq := d.next.Load()
		if seq >= int64(len(d.seen)) {
			return nil
		}
		if !c.ready() {
			continue // the node is down: the device waits, as a real one would
		}
		d.next.Add(1)
		d.sent[seq].Store(true)
		topic, body := r.data.message(n.name, n.i, d.kind, d.name, int(d.qos), seq, spec.size)
		tok := c.Publish(topic, d.qos, false, body)
		if d.qos == 0 {
			continue
		}
		acks.Add(1)
		go func() {
			defer acks.Done()
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				d.acked[seq].Store(true)
				r.poke()
			}
		}()
	}
}
