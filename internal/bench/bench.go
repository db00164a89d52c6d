package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Options are what one run of the bench measures, and how. The command
// `sedna bench` builds them from its flags.
type Options struct {
	// Sedna is the path of the sedna binary that the bench runs as 'sedna
	// edge' and 'sedna cloud' processes. Every part but fl needs it.
	Sedna string
	// Version is the version of sedna that the report's first line names.
	Version string
	// Messages is the number of messages of a run.
	Messages int
	// Size is the number of bytes of a payload: at least 16, for its send
	// time and its number.
	Size int
	// Publishers are the numbers of concurrent publishers to measure.
	Publishers []int
	// Modes are the write modes of the sedna store to measure ("process",
	// "sync"); the caller checks them with store.ParseMode.
	Modes []string
	// Window is the number of messages in flight per publisher.
	Window int
	// Mosquitto is the mosquitto binary. Empty: /usr/sbin/mosquitto,
	// /usr/local/sbin/mosquitto or the one on $PATH; with none, only sedna
	// is measured.
	Mosquitto string
	// Only runs one part: "bridge", "broker", "slow", "models", "ji", "fl"
	// or "reconnect". Empty runs them all but reconnect, which takes
	// minutes.
	Only string
	// FLClients is the number of in-process nodes of the federated
	// learning part.
	FLClients int
	// FLRounds is the number of rounds of the federated learning overhead
	// measure.
	FLRounds int
	// FLAccuracyRounds is the number of rounds of each federated learning
	// accuracy run.
	FLAccuracyRounds int
	// EdgeMetrics is the metrics (and pprof) address of the 'sedna edge'
	// process, or "off".
	EdgeMetrics string
	// EdgeLogLevel is the log level of the 'sedna edge' process.
	EdgeLogLevel string
	// EdgeCPU pins the 'sedna edge' process to these CPUs (taskset -c).
	// Empty: not pinned.
	EdgeCPU string
	// EdgeExec, if set, is the command that runs the edge instead of this
	// binary, e.g. "qemu-aarch64 bin/sedna-linux-arm64": an emulated
	// board. Its RSS is then the emulator's process, translation
	// included; the Go heap (with EdgeMetrics) is the agent's own.
	EdgeExec string
	// JIWindow is the number of frames in flight from the joint inference
	// part's camera.
	JIWindow int
	// CloudCPU runs the joint inference part's cloud as a 'sedna cloud'
	// process pinned to these CPUs (taskset -c). Empty: the cloud runs in
	// this process.
	CloudCPU string
	// Reconnect are the options of the reconnect part.
	Reconnect ReconnectOptions
	// Log is the logger of the clouds and nodes that run in this process.
	Log *slog.Logger
}

type benchResult struct {
	system     string // "sedna (process)", "mosquitto"
	publishers int
	received   int
	elapsed    time.Duration
	p50, p99   time.Duration
	rssIdle    int64 // KiB, sedna edge only
	rssPeak    int64
	// anonIdle and anonPeak are the anonymous part (KiB); heapPeak the
	// edge's Go heap in use at its most (bytes, from its metrics; 0 when
	// they are off).
	anonIdle, anonPeak int64
	heapPeak           int64
}

func (r benchResult) rate() float64 { return float64(r.received) / r.elapsed.Seconds() }

// Run runs the parts of the bench that o asks for and writes their report,
// in Markdown, to out. A part ends early when ctx does.
func Run(ctx context.Context, out io.Writer, o Options) error {
	if o.Size < 16 {
		return errors.New("--size must be at least 16 (the payload carries a send time and a number)")
	}
	dir, err := os.MkdirTemp("", "sedna-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self := o.Sedna
	mosq := o.Mosquitto
	if mosq == "" {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, err := os.Stat(p); err == nil {
				mosq = p
				break
			}
		}
		if mosq == "" {
			mosq, _ = exec.LookPath("mosquitto")
		}
	}
	fmt.Fprintf(out, "# sedna bench %s: %d messages of %d bytes, QoS 1, %d in flight per publisher, %s/%s, %d CPUs\n",
		o.Version, o.Messages, o.Size, o.Window, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if mosq == "" {
		fmt.Fprintln(out, "# mosquitto not found: only sedna is measured (install Debian's mosquitto for the comparison)")
	} else if v, err := exec.Command(mosq, "-h").CombinedOutput(); err == nil || len(v) > 0 {
		fmt.Fprintf(out, "# %s\n", strings.SplitN(string(v), "\n", 2)[0])
	}
	b := &bencher{o: o, dir: dir, self: self, mosq: mosq, out: out}
	if o.Only == "" || o.Only == "bridge" {
		if err := b.bridge(ctx); err != nil {
			return err
		}
	}
	if o.Only == "" || o.Only == "broker" {
		if err := b.broker(ctx); err != nil {
			return err
		}
	}
	if o.Only == "" || o.Only == "slow" {
		if err := b.slowSubscriber(ctx); err != nil {
			return err
		}
	}
	if o.Only == "" || o.Only == "models" {
		if err := b.models(ctx); err != nil {
			return err
		}
	}
	if o.Only == "" || o.Only == "ji" {
		if err := b.jointInference(ctx); err != nil {
			return err
		}
	}
	if o.Only == "" || o.Only == "fl" {
		if err := b.federated(ctx); err != nil {
			return err
		}
	}
	if o.Only == "reconnect" {
		if err := b.reconnect(ctx); err != nil {
			return err
		}
	}
	return nil
}

type bencher struct {
	o    Options
	dir  string
	self string
	mosq string
	out  io.Writer
	n    int
}

func (b *bencher) subdir(name string) string {
	b.n++
	return filepath.Join(b.dir, fmt.Sprintf("%02d-%s", b.n, name))
}

// bridge measures edge-to-cloud throughput through each bridge.
func (b *bencher) bridge(ctx context.Context) error {
	fmt.Fprintf(b.out, "\n## bridge: edge broker -> bridge -> cloud broker -> subscriber\n\n")
	var results []benchResult
	for _, mode := range b.o.Modes {
		for _, p := range b.o.Publishers {
			r, err := b.sednaBridge(ctx, mode, p)
			if err != nil {
				return fmt.Errorf("sedna bridge (%s, %d publishers): %w", mode, p, err)
			}
			results = append(results, r)
		}
	}
	if b.mosq != "" {
		for _, p := range b.o.Publishers {
			r, err := b.mosquittoBridge(ctx, p)
			if err != nil {
				return fmt.Errorf("mosquitto bridge (%d publishers): %w", p, err)
			}
			results = append(results, r)
		}
	}
	b.table(results)
	return nil
}

// broker measures publishers -> one broker -> one subscriber.
func (b *bencher) broker(ctx context.Context) error {
	fmt.Fprintf(b.out, "\n## broker: publishers -> broker -> one subscriber\n\n")
	var results []benchResult
	for _, p := range b.o.Publishers {
		e, err := b.startEdge(ctx, "process", "tcp://127.0.0.1:1") // no cloud: the bridge only retries
		if err != nil {
			return err
		}
		r, err := b.measure(ctx, "tcp://"+e.addr, "tcp://"+e.addr, "bench/direct", "bench/direct", p, "", "", e)
		e.stop()
		if err != nil {
			return fmt.Errorf("sedna broker: %w", err)
		}
		r.system = "sedna edge broker"
		results = append(results, r)
		if b.mosq != "" {
			addr, stop, err := b.startMosquitto("")
			if err != nil {
				return err
			}
			r, err := b.measure(ctx, "tcp://"+addr, "tcp://"+addr, "bench/direct", "bench/direct", p, "", "", nil)
			stop()
			if err != nil {
				return fmt.Errorf("mosquitto broker: %w", err)
			}
			r.system = "mosquitto"
			results = append(results, r)
		}
	}
	b.table(results)
	return nil
}

func (b *bencher) table(results []benchResult) {
	base := map[int]float64{}
	for _, r := range results {
		if r.system == "mosquitto" {
			base[r.publishers] = r.rate()
		}
	}
	tw := tabwriter.NewWriter(b.out, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| system\t publishers\t msg/s\t vs mosquitto\t p50\t p99\t delivered\t edge RSS idle / peak\t of which anonymous\t Go heap peak\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range results {
		ratio := "-"
		if m, ok := base[r.publishers]; ok && m > 0 {
			ratio = fmt.Sprintf("%.2fx", r.rate()/m)
		}
		rss, anon, heap := "-", "-", "-"
		if r.rssPeak > 0 {
			rss = fmt.Sprintf("%.1f / %.1f MB", float64(r.rssIdle)/1024, float64(r.rssPeak)/1024)
			anon = fmt.Sprintf("%.1f / %.1f MB", float64(r.anonIdle)/1024, float64(r.anonPeak)/1024)
		}
		if r.heapPeak > 0 {
			heap = fmt.Sprintf("%.1f MB", float64(r.heapPeak)/(1<<20))
		}
		fmt.Fprintf(tw, "| %s\t %d\t %.0f\t %s\t %s\t %s\t %d/%d\t %s\t %s\t %s\t\n", r.system, r.publishers, r.rate(), ratio,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.received, b.o.Messages, rss, anon, heap)
	}
	_ = tw.Flush()
}

type edgeProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func (e *edgeProc) stop() {
	_ = e.cmd.Process.Signal(os.Interrupt)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}

var benchReady = regexp.MustCompile(`ready: broker (\S+)`)

func (b *bencher) startEdge(ctx context.Context, mode, cloudURL string, extra ...string) (*edgeProc, error) {
	dir := b.subdir("edge-" + mode)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "edge.yaml")
	rule := "extraRules:\n  - filter: 'sensors/#'\n    direction: out\n    remotePrefix: '" + topics.NodeApp("{node}", "'\n")
	if err := os.WriteFile(conf, []byte(rule), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{"edge", "--node", "bench", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0",
		"--cloud", cloudURL, "--write-mode", mode, "--metrics", b.o.EdgeMetrics, "--log-level", b.o.EdgeLogLevel, "--config", conf}, extra...)
	if b.o.EdgeMetrics != "off" {
		args = append(args, "--profiles") // pprof beside the metrics, as the option says
	}
	run := []string{b.self}
	if b.o.EdgeExec != "" {
		run = strings.Fields(b.o.EdgeExec)
	}
	if b.o.EdgeCPU != "" {
		run = append([]string{"taskset", "-c", b.o.EdgeCPU}, run...)
	}
	cmd := exec.CommandContext(ctx, run[0], append(run[1:], args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &edgeProc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := benchReady.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		_ = cmd.Wait()
		close(e.done)
	}()
	select {
	case e.addr = <-ready:
		return e, nil
	case <-e.done:
		return nil, errors.New("sedna edge exited at start")
	case <-time.After(30 * time.Second):
		e.stop()
		return nil, errors.New("sedna edge not ready after 30 s")
	}
}

func (b *bencher) sednaBridge(ctx context.Context, mode string, pubs int) (benchResult, error) {
	pw, _, creds, err := benchUsers("reader")
	if err != nil {
		return benchResult{}, err
	}
	m, err := cloud.Start(cloud.Config{DataDir: b.subdir("cloud-" + mode), WriteMode: store.Mode(mode),
		Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"}, cloud.Options{Paradigms: all.All(), Logger: b.o.Log, Credentials: creds})
	if err != nil {
		return benchResult{}, err
	}
	defer m.Close()
	e, err := b.startEdge(ctx, mode, m.BrokerURL(), "--password", pw)
	if err != nil {
		return benchResult{}, err
	}
	defer e.stop()
	r, err := b.measure(ctx, "tcp://"+e.addr, m.BrokerURL(), "sensors/bench", topics.NodeApp("bench", "sensors/bench"), pubs, "reader", pw, e)
	r.system = "sedna (" + mode + ")"
	return r, err
}

func (b *bencher) mosquittoBridge(ctx context.Context, pubs int) (benchResult, error) {
	cloudAddr, stopCloud, err := b.startMosquitto("")
	if err != nil {
		return benchResult{}, err
	}
	defer stopCloud()
	bridge := fmt.Sprintf("connection cloud\naddress %s\ntopic sensors/# out 1 \"\" %s\ncleansession true\n", cloudAddr, topics.NodeAppPrefix("bench"))
	edgeAddr, stopEdge, err := b.startMosquitto(bridge)
	if err != nil {
		return benchResult{}, err
	}
	defer stopEdge()
	// Wait until the bridge carries a message.
	probe := topics.NodeApp("bench", "sensors/probe")
	if err := waitBridged(ctx, "tcp://"+edgeAddr, "tcp://"+cloudAddr, "sensors/probe", probe); err != nil {
		return benchResult{}, fmt.Errorf("mosquitto bridge did not come up: %w", err)
	}
	r, err := b.measure(ctx, "tcp://"+edgeAddr, "tcp://"+cloudAddr, "sensors/bench", topics.NodeApp("bench", "sensors/bench"), pubs, "", "", nil)
	r.system = "mosquitto"
	return r, err
}

func waitBridged(ctx context.Context, pubURL, subURL, pubTopic, subTopic string) error {
	got := make(chan struct{}, 1)
	sub, err := benchClient(subURL, "probe-sub", "", "")
	if err != nil {
		return err
	}
	defer sub.Disconnect(0)
	sub.Subscribe(subTopic, 1, func(paho.Client, paho.Message) {
		select {
		case got <- struct{}{}:
		default:
		}
	}).Wait()
	pub, err := benchClient(pubURL, "probe-pub", "", "")
	if err != nil {
		return err
	}
	defer pub.Disconnect(0)
	deadline := time.After(20 * time.Second)
	for {
		pub.Publish(pubTopic, 1, false, []byte("probe")).Wait()
		select {
		case <-got:
			return nil
		case <-deadline:
			return errors.New("timeout")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // the bridge connects on its own time; probe again
		}
	}
}

// startMosquitto runs a mosquitto on a free loopback port with unbounded
// queues, plus extra configuration, and returns its address.
func (b *bencher) startMosquitto(extra string) (string, func(), error) {
	dir := b.subdir("mosquitto")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	content := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_type error\n%s", port, extra)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(b.mosq, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return addr, stop, nil
		}
		select {
		case <-done:
			return "", nil, errors.New("mosquitto exited at start")
		case <-time.After(20 * time.Millisecond): // the listener opens on mosquitto's own time
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("mosquitto not listening after 10 s")
		}
	}
}

// benchUsers makes the bench's users with a random password: "bench", a
// node, and operator, an operator.
func benchUsers(operator string) (pw, hash string, creds *access.Credentials, err error) {
	pw = randomPassword()
	if hash, err = access.HashPassword(pw); err != nil {
		return "", "", nil, err
	}
	creds, err = access.NewCredentials(access.User{Username: "bench", PasswordHash: hash, Role: access.UserNode},
		access.User{Username: operator, PasswordHash: hash, Role: access.UserOperator})
	return pw, hash, creds, err
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func benchClient(url, id, user, pass string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(false).SetWriteTimeout(30 * time.Second))
	t := c.Connect()
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", url, t.Error())
	}
	return c, nil
}

// rss returns the resident memory of a process in KiB.
func rss(pid int) int64 { return procStatus(pid, "VmRSS:") }

// goHeapInuse is go_memstats_heap_inuse_bytes from the metrics at addr,
// 0 if it cannot be read.
func goHeapInuse(addr string) int64 {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

// rssAnon is the anonymous part of a process's resident memory in KiB: the
// rest are pages of mapped files (Badger's), which the kernel can reclaim.
func rssAnon(pid int) int64 { return procStatus(pid, "RssAnon:") }

func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// measure publishes o.Messages QoS 1 messages from pubs publishers to
// pubURL/pubTopic and receives them at subURL/subTopic.
func (b *bencher) measure(ctx context.Context, pubURL, subURL, pubTopic, subTopic string, pubs int, user, pass string, e *edgeProc) (benchResult, error) {
	n := b.o.Messages
	r := benchResult{publishers: pubs}
	lat := make([]time.Duration, n)
	var seen atomic.Int64
	flags := make([]atomic.Bool, n)
	all := make(chan struct{})
	sub, err := benchClient(subURL, "bench-sub", user, pass)
	if err != nil {
		return r, err
	}
	defer sub.Disconnect(0)
	t := sub.Subscribe(subTopic, 1, func(_ paho.Client, m paho.Message) {
		now := time.Now()
		p := m.Payload()
		if len(p) < 16 {
			return
		}
		i := int(binary.BigEndian.Uint64(p[8:]))
		if i >= n || flags[i].Swap(true) {
			return
		}
		lat[i] = now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(p))))
		if seen.Add(1) == int64(n) {
			close(all)
		}
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return r, fmt.Errorf("subscribe: %v", t.Error())
	}
	if e != nil {
		runtime.GC()
		r.rssIdle, r.anonIdle = rss(e.cmd.Process.Pid), rssAnon(e.cmd.Process.Pid)
	}
	var peak, anonPeak, heapPeak atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	if e != nil {
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				if v := rss(e.cmd.Process.Pid); v > peak.Load() {
					peak.Store(v)
				}
				if v := rssAnon(e.cmd.Process.Pid); v > anonPeak.Load() {
					anonPeak.Store(v)
				}
				if b.o.EdgeMetrics != "off" && i%5 == 0 { // the edge's own account, every 250 ms
					if v := goHeapInuse(b.o.EdgeMetrics); v > heapPeak.Load() {
						heapPeak.Store(v)
					}
				}
				select {
				case <-tick.C:
				case <-stopSampling:
					return
				}
			}
		}()
	}
	clients := make([]paho.Client, pubs)
	for p := range clients {
		if clients[p], err = benchClient(pubURL, fmt.Sprintf("bench-pub-%d", p), "", ""); err != nil {
			return r, err
		}
		defer clients[p].Disconnect(0)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := 0; p < pubs; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			toks := make(chan paho.Token, b.o.Window)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for tk := range toks {
					if !tk.WaitTimeout(60*time.Second) || tk.Error() != nil {
						select {
						case errs <- fmt.Errorf("publish not acknowledged: %v", tk.Error()):
						default:
						}
					}
				}
			}()
			for i := p; i < n; i += pubs {
				payload := make([]byte, b.o.Size)
				binary.BigEndian.PutUint64(payload[8:], uint64(i))
				binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
				toks <- clients[p].Publish(pubTopic, 1, false, payload)
			}
			close(toks)
			<-done
		}(p)
	}
	wg.Wait()
	select {
	case err := <-errs:
		close(stopSampling)
		sampler.Wait()
		return r, err
	default:
	}
	select {
	case <-all:
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	r.elapsed = time.Since(start)
	close(stopSampling)
	sampler.Wait()
	r.rssPeak, r.anonPeak, r.heapPeak = peak.Load(), anonPeak.Load(), heapPeak.Load()
	r.received = int(seen.Load())
	var got []time.Duration
	for i := range lat {
		if flags[i].Load() {
			got = append(got, lat[i])
		}
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if len(got) > 0 {
		r.p50, r.p99 = got[len(got)/2], got[len(got)*99/100]
	}
	return r, nil
}
