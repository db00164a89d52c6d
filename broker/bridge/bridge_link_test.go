package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/internal/brokertest"
	"github.com/sedna-go/sedna/broker/internal/servertest"
	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/topics"
)

// logRecorder is a slog.Handler that keeps every record and signals each.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRec
	kick chan struct{}
}

type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder { return &logRecorder{kick: make(chan struct{}, 1)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) snapshot() []logRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRec(nil), h.recs...)
}

// waitFor waits until cond holds of the records, failing the test after
// 20 s.
func (h *logRecorder) waitFor(t *testing.T, what string, cond func([]logRec) bool) []logRec {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		recs := h.snapshot()
		if cond(recs) {
			return recs
		}
		select {
		case <-h.kick:
		case <-deadline.C:
			t.Fatalf("%s: not within 20 s; log:\n%s", what, dumpLog(recs))
		}
	}
}

func dumpLog(recs []logRec) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.level.String() + " " + r.msg)
		for k, v := range r.attrs {
			b.WriteString(" " + k + "=" + v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// attempts returns the failed connection attempts logged (one record
// each, WARN or DEBUG) and the WARN ones, from index from on.
func attempts(recs []logRec, from int) (failed, warned []logRec) {
	for _, r := range recs[min(from, len(recs)):] {
		switch r.msg {
		case "cannot connect to the cloud":
			failed = append(failed, r)
			warned = append(warned, r)
		case "cloud connect failed":
			failed = append(failed, r)
		}
	}
	return failed, warned
}

// trailing reports whether the last n failed attempts all had reason.
func trailing(failed []logRec, n int, reason string) bool {
	if len(failed) < n {
		return false
	}
	for _, r := range failed[len(failed)-n:] {
		if r.attrs["reason"] != reason {
			return false
		}
	}
	return true
}

// linkSetup is an edge node whose bridge reaches a cloud broker at url
// (the cloud's own address, or a proxy in front of it).
type linkSetup struct {
	edge   *broker.Server
	bridge *Bridge
	log    *logRecorder
}

// startLinked starts an edge node "node-a" whose bridge connects to url
// with password; configure may change the bridge's config and the bridge
// itself before it starts.
func startLinked(t *testing.T, url, password string, configure func(*Config), prepare func(*Bridge)) *linkSetup {
	t.Helper()
	ls := &linkSetup{log: newLogRecorder()}
	st := brokertest.OpenStore(t, filepath.Join(t.TempDir(), "edge"))
	t.Cleanup(func() { _ = st.Close() })
	var err error
	ls.edge, err = broker.NewServer(broker.Config{Role: access.RoleEdge, Node: "node-a", Listen: "127.0.0.1:0", Store: st, Logger: brokertest.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Node: "node-a", CloudURL: url, Username: "node-a", Password: password, Store: st, Server: ls.edge,
		Logger: slog.New(ls.log), MinBackoff: time.Millisecond, FastBackoff: 2 * time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		ConnectTimeout: 5 * time.Second}
	if configure != nil {
		configure(&cfg)
	}
	if ls.bridge, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(ls.bridge)
	}
	if err := ls.edge.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ls.edge.Close() })
	ls.bridge.Start()
	t.Cleanup(func() { _ = ls.bridge.Close() }) // runs first: the bridge stops before its broker
	return ls
}

// waitLink waits until the bridge's link is up (or down).
func waitLink(t *testing.T, b *Bridge, up bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		now, changed := b.Connected()
		if now == up {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("link up = %v not within 20 s", up)
		}
	}
}

// closeLink closes a proxy once a connection accepted while the link was
// up is registered, so that the proxy's reads of its closed flag for the
// connections it refused while down are ordered before Close's write of it.
// (netfault's accept loop reads that flag after unlocking; the race
// detector reports it when a proxy that refused connections is closed.)
// Polled: the proxy signals no event for it.
func closeLink(t *testing.T, link *netfault.Proxy) {
	link.SetDown(false)
	link.SetStall(false)
	if c, err := net.Dial("tcp", link.Addr()); err == nil {
		tick := time.NewTicker(time.Millisecond)
		for deadline := time.Now().Add(10 * time.Second); link.Stats().Open == 0 && time.Now().Before(deadline); {
			<-tick.C
		}
		tick.Stop()
		_ = c.Close()
	}
	_ = link.Close()
}

func firstAttempt(t *testing.T, b *Bridge) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := b.FirstAttempt(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the first connection attempt did not end within 20 s")
	}
	return err
}

// The first attempt's error says why, against real listeners: a broker
// that refuses the password, a closed port, a TLS listener whose
// certificate the node does not trust or that names another host.
func TestFirstAttemptSaysWhy(t *testing.T) {
	certFile, keyFile, pool := brokertest.SelfSigned(t)
	cloud := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t),
		TLS: broker.TLSConfig{Listen: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	_, tlsPort, _ := net.SplitHostPort(cloud.Addr("tls"))
	trusting := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	for _, tc := range []struct {
		name     string
		url      string
		password string
		tls      *tls.Config
		want     LinkFailure // LinkUnknown: connected
	}{
		{"connected", cloud.URL(), brokertest.Password, nil, LinkUnknown},
		{"wrong password", cloud.URL(), "not the password", nil, LinkBadCredentials},
		{"nothing listening", "tcp://" + closed, brokertest.Password, nil, LinkUnreachable},
		{"untrusted certificate", "ssl://" + cloud.Addr("tls"), brokertest.Password, &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}, LinkTLS},
		{"certificate of another host", "ssl://localhost:" + tlsPort, brokertest.Password, trusting, LinkTLS},
		{"TLS connected", "ssl://" + cloud.Addr("tls"), brokertest.Password, trusting, LinkUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := startLinked(t, tc.url, tc.password, func(c *Config) { c.TLS = tc.tls }, nil)
			err := firstAttempt(t, ls.bridge)
			if tc.want == LinkUnknown {
				if err != nil {
					t.Fatalf("first attempt: %v, want connected", err)
				}
				return
			}
			var lerr *LinkError
			if !errors.As(err, &lerr) || lerr.Failure != tc.want {
				t.Fatalf("first attempt: %v, want a %v LinkError", err, tc.want)
			}
		})
	}
}

// A failure is logged at WARN once per reason, with what to check; when
// the reason changes it is logged again. The reasons here are real: a link
// that is down, then a cloud that refuses the node's password, then the
// link down again.
func TestLinkFailureLoggedOncePerReason(t *testing.T) {
	cloud := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t)})
	link, err := netfault.New(cloud.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeLink(t, link) }) // after the bridge stops (cleanups run last first)
	link.SetDown(true)
	ls := startLinked(t, "tcp://"+link.Addr(), "not the password", nil, nil)

	const n = 4 // failed attempts of each reason before looking
	phases := []struct {
		down   bool
		reason string
		check  string
	}{
		{true, "unreachable", "--cloud HOST:PORT"},
		{false, "refused credentials", "SEDNA_PASSWORD"},
		{true, "unreachable", "--cloud HOST:PORT"},
	}
	for i, ph := range phases {
		link.SetDown(ph.down)
		recs := ls.log.waitFor(t, ph.reason, func(recs []logRec) bool {
			failed, _ := attempts(recs, 0)
			return trailing(failed, n, ph.reason)
		})
		_, warned := attempts(recs, 0)
		if len(warned) != i+1 {
			t.Fatalf("phase %d (%s): %d warnings, want %d:\n%s", i, ph.reason, len(warned), i+1, dumpLog(recs))
		}
		w := warned[i]
		if w.level != slog.LevelWarn || w.attrs["reason"] != ph.reason || !strings.Contains(w.attrs["check"], ph.check) {
			t.Fatalf("phase %d: warning %s %q %v, want reason %q and a check naming %q", i, w.level, w.msg, w.attrs, ph.reason, ph.check)
		}
	}
}

// watchFrames subscribes to node-a's events frames on the cloud broker at
// url; the channel gets a token per frame (dropped when it is full).
func watchFrames(t *testing.T, url string) <-chan struct{} {
	t.Helper()
	watcher := brokertest.Dial(t, url, "watcher", "admin")
	frames := make(chan struct{}, 16)
	if tok := watcher.Subscribe(topics.Uplink("node-a", topics.StreamEvents), 1, func(paho.Client, paho.Message) {
		select {
		case frames <- struct{}{}:
		default:
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return frames
}

// When the link comes back the bridge connects again and sends what was
// queued meanwhile, and the next failure is logged at WARN again.
func TestLinkReturnReconnectsAndLogsAgain(t *testing.T) {
	cloud := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t)})
	link, err := netfault.New(cloud.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeLink(t, link) }) // after the bridge stops (cleanups run last first)
	ls := startLinked(t, "tcp://"+link.Addr(), brokertest.Password, nil, nil)
	frames := watchFrames(t, cloud.URL())
	waitLink(t, ls.bridge, true)

	for round := 1; round <= 2; round++ {
		link.SetDown(true)
		waitLink(t, ls.bridge, false)
		recs := ls.log.waitFor(t, "failed attempts", func(recs []logRec) bool {
			failed, _ := attempts(recs, 0)
			return trailing(failed, 3*round, "unreachable")
		})
		if _, warned := attempts(recs, 0); len(warned) != round {
			t.Fatalf("round %d: %d warnings of a failed connection, want %d (once per outage):\n%s", round, len(warned), round, dumpLog(recs))
		}
		if err := ls.bridge.Send(topics.StreamEvents, topics.NodeEvents("node-a", "test"), []byte("queued while down"), false); err != nil {
			t.Fatal(err)
		}
		link.SetDown(false)
		waitLink(t, ls.bridge, true)
		select {
		case <-frames:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the message queued during the outage did not reach the cloud", round)
		}
	}
}

// One attempt is one connection: paho, unless told the protocol version,
// tries a refused or broken CONNECT again as MQTT 3.1 on a second
// connection, with a fresh timeout (a black-holed attempt took twice its
// time, and refused credentials were reported as the 3.1 attempt's error).
// And an attempt on a link that swallows everything ends, as a timeout.
func TestOneConnectionPerAttempt(t *testing.T) {
	cloud := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t)})
	t.Run("refused", func(t *testing.T) {
		link, err := netfault.New(cloud.Addr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeLink(t, link) }) // after the bridge stops (cleanups run last first)
		// Steps of an hour at most, drawn at their longest: no second
		// attempt while the test looks.
		ls := startLinked(t, "tcp://"+link.Addr(), "not the password",
			func(c *Config) { c.MinBackoff, c.FastBackoff, c.MaxBackoff = time.Hour, time.Hour, time.Hour },
			func(b *Bridge) { b.jitter = func(n int64) int64 { return n - 1 } })
		var lerr *LinkError
		if err := firstAttempt(t, ls.bridge); !errors.As(err, &lerr) || lerr.Failure != LinkBadCredentials {
			t.Fatalf("first attempt: %v, want refused credentials", err)
		}
		if got := link.Stats().Accepted; got != 1 {
			t.Fatalf("the attempt made %d connections, want 1", got)
		}
	})
	t.Run("black hole", func(t *testing.T) {
		link, err := netfault.New(cloud.Addr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeLink(t, link) }) // after the bridge stops (cleanups run last first)
		link.SetStall(true)
		ls := startLinked(t, "tcp://"+link.Addr(), brokertest.Password,
			func(c *Config) { c.ConnectTimeout = 300 * time.Millisecond }, nil)
		err = firstAttempt(t, ls.bridge)
		var lerr *LinkError
		if !errors.As(err, &lerr) || lerr.Failure != LinkUnreachable || !isTimeout(err) {
			t.Fatalf("first attempt on a dead link: %v, want an unreachable timeout", err)
		}
		recs := ls.log.waitFor(t, "timed-out attempts", func(recs []logRec) bool {
			failed, _ := attempts(recs, 0)
			return len(failed) >= 3
		})
		failed, _ := attempts(recs, 0)
		if got := link.Stats().Accepted; got > int64(len(failed))+1 {
			t.Fatalf("%d attempts made %d connections", len(failed), got)
		}
		link.SetStall(false)
		waitLink(t, ls.bridge, true)
	})
}

// With several cloud URLs (the nodes of one broker cluster), a bridge
// whose broker went away connects to the next one in the list while the
// first stays away, and sends what it queued meanwhile. Two proxies in
// front of one cloud broker stand for two broker nodes.
func TestFailoverToTheNextBroker(t *testing.T) {
	cloud := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t)})
	var links [2]*netfault.Proxy
	for i := range links {
		l, err := netfault.New(cloud.Addr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		links[i] = l
		t.Cleanup(func() { closeLink(t, l) })
	}
	urls := "tcp://" + links[0].Addr() + ", tcp://" + links[1].Addr()
	ls := startLinked(t, urls, brokertest.Password, nil, nil)
	frames := watchFrames(t, cloud.URL())
	upVia := func(from int) (string, int) {
		recs := ls.log.waitFor(t, "the link up", func(recs []logRec) bool {
			for _, r := range recs[min(from, len(recs)):] {
				if r.msg == "cloud link up" {
					return true
				}
			}
			return false
		})
		for i, r := range recs[min(from, len(recs)):] {
			if r.msg == "cloud link up" {
				return r.attrs["url"], from + i + 1
			}
		}
		return "", len(recs)
	}
	url, seen := upVia(0)
	if url != "tcp://"+links[0].Addr() {
		t.Fatalf("first link up via %q, want the first URL", url)
	}
	waitLink(t, ls.bridge, true)
	for round, dead := range []int{0, 1, 0} {
		links[dead].SetDown(true)
		links[1-dead].SetDown(false)
		waitLink(t, ls.bridge, false)
		if err := ls.bridge.Send(topics.StreamEvents, topics.NodeEvents("node-a", "test"), []byte("queued"), false); err != nil {
			t.Fatal(err)
		}
		url, seen = upVia(seen)
		if want := "tcp://" + links[1-dead].Addr(); url != want {
			t.Fatalf("round %d: link up via %q, want %q (the broker still up)", round, url, want)
		}
		select {
		case <-frames:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the message queued while failing over did not reach the cloud", round)
		}
	}
}

func TestSplitURLs(t *testing.T) { // broker.SplitURLs, as the bridge reads its CloudURL
	for in, want := range map[string][]string{
		"tcp://a:1883":                {"tcp://a:1883"},
		"tcp://a:1883, ssl://b:8883 ": {"tcp://a:1883", "ssl://b:8883"},
		"ws://a/mqtt,wss://b/mqtt":    {"ws://a/mqtt", "wss://b/mqtt"},
	} {
		got, err := broker.SplitURLs(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("SplitURLs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "tcp://a,", "a:1883", "http://a", "tcp://a,,tcp://b"} {
		if _, err := broker.SplitURLs(bad); err == nil {
			t.Errorf("SplitURLs(%q) accepted", bad)
		}
	}
}

// The bridge answers the cloud's status requests on its own request
// topic, below the downlink it subscribes to: a request with no spread
// brings its online status again, of the same session; one it cannot read
// is logged; the link stays up throughout.
func TestStatusRequestAnswered(t *testing.T) {
	cloud := servertest.StartServer(t, broker.Config{Role: access.RoleCloud, Credentials: brokertest.Credentials(t)})
	watcher := brokertest.Dial(t, cloud.URL(), "watcher", "admin")
	statuses := make(chan topics.NodeStatus, 16)
	if tok := watcher.Subscribe(topics.NodeStatusTopic("node-a"), 1, func(_ paho.Client, m paho.Message) {
		env, err := topics.UnmarshalEnvelope(m.Payload(), topics.Limits{})
		var st topics.NodeStatus
		if err == nil {
			err = env.DecodeBody(&st)
		}
		if err != nil {
			t.Errorf("status not read: %v", err)
			return
		}
		statuses <- st
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	ls := startLinked(t, cloud.URL(), brokertest.Password, nil, nil)
	waitLink(t, ls.bridge, true)
	next := func(what string) topics.NodeStatus {
		t.Helper()
		select {
		case st := <-statuses:
			return st
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no status within 20 s", what)
			return topics.NodeStatus{}
		}
	}
	first := next("connected")
	if first.State != topics.NodeOnline {
		t.Fatalf("first status %+v", first)
	}
	system := access.SystemPrincipal("test")
	if err := cloud.Publish(system, topics.StatusRequestTopic("node-a"), []byte("not msgpack"), false, 1); err != nil {
		t.Fatal(err)
	}
	ls.log.waitFor(t, "the unreadable request logged", func(recs []logRec) bool {
		for _, r := range recs {
			if r.msg == "a status request not read" {
				return true
			}
		}
		return false
	})
	env, err := topics.NewEnvelope(topics.KindStatusRequest, "cloud/control", topics.StatusRequest{Asked: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := cloud.Publish(system, topics.StatusRequestTopic("node-a"), raw, false, 1); err != nil {
		t.Fatal(err)
	}
	again := next("asked")
	if again.State != topics.NodeOnline || again.Session != first.Session || again.Epoch != first.Epoch {
		t.Fatalf("answer %+v after %+v", again, first)
	}
	if up, _ := ls.bridge.Connected(); !up {
		t.Fatal("the link went down")
	}
}
