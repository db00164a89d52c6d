package e2e

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// startIdentityCloud starts a cloud manager whose nodes join with tokens
// and bridge over mutual TLS, both listeners on loopback; its log lines
// (info and above) are in logs too.
func startIdentityCloud(t *testing.T, dir string, logs *lines, set ...func(*cloud.IdentityConfig)) *cloud.Manager {
	t.Helper()
	cfg := cloud.Config{DataDir: dir, Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off",
		Identity: cloud.IdentityConfig{TLSListen: "127.0.0.1:0", JoinListen: "127.0.0.1:0"}}
	for _, f := range set {
		f(&cfg.Identity)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	m, err := cloud.Start(cfg, cloud.Options{Paradigms: all.All(), Logger: log, Credentials: credentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// lines keeps what is written to it.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sednaAdmin runs the CLI as the admin; it returns stdout, stderr and
// the error.
func sednaAdmin(url string, args ...string) (string, string, error) {
	cmd := exec.Command(sednaBin, append(args, "--cloud", url, "--username", "admin", "--password", password)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func newToken(t *testing.T, url, node string, extra ...string) string {
	t.Helper()
	out, errOut, err := sednaAdmin(url, append([]string{"token", "create", "--node", node}, extra...)...)
	if err != nil {
		t.Fatalf("sedna token create: %v\n%s%s", err, out, errOut)
	}
	return strings.TrimSpace(out)
}

// joinEdge runs `sedna edge --join` and returns the process once it is
// ready.
func joinEdge(t *testing.T, m *cloud.Manager, dir, token string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"edge", "--join", token, "--cloud", m.JoinAddr(), "--data", dir, "--listen", "127.0.0.1:0",
		"--metrics", "off", "--log-level", "info"}, extra...)
	return startProc(t, args...)
}

// joinFails runs `sedna edge --join` expecting it to exit at once, and
// returns its one line of error.
func joinFails(t *testing.T, m *cloud.Manager, dir, token string) string {
	t.Helper()
	cmd := exec.Command(sednaBin, "edge", "--join", token, "--cloud", m.JoinAddr(), "--data", dir, "--listen", "127.0.0.1:0", "--metrics", "off")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("sedna edge --join with a bad token ran:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// waitOutput waits until what get returns (a log) says want.
func waitOutput(t *testing.T, what string, within time.Duration, get func() string, want string) {
	t.Helper()
	for deadline := time.Now().Add(within); !strings.Contains(get(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v:\n%s", what, want, within, get())
		}
		<-time.After(50 * time.Millisecond) // polling another process's output
	}
}

// Issue 21, must-show 1: a node joins with a one-time token
// (`sedna token create`, `sedna edge --join TOKEN --cloud HOST:PORT`),
// keeps the identity the cloud signed, and bridges over mutual TLS with no
// password: 2,000 messages published at the node arrive in the cloud,
// each once. Another joins with --join-only (as a systemd unit's node
// does) and comes online when `sedna edge --data DIR` runs alone. Refused, each with one line on both sides: a token used
// already, an expired one, a revoked one, and a node revoked (its bridge
// cut, its reconnection refused); a client presenting one node's
// certificate under another node's bridge ID; and a plaintext client on
// the TLS listener. A token whose pin is not the cloud's CA is refused by
// the node, before it sends anything (one line, naming both pins).
func TestTokenJoinOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	logs := &lines{}
	m := startIdentityCloud(t, filepath.Join(dir, "cloud"), logs)
	url := m.BrokerURL()

	// Join and bridge.
	token := newToken(t, url, "edge1")
	p := joinEdge(t, m, filepath.Join(dir, "edge1"), token, "--config", edgeConfig(t, dir))
	waitOutput(t, "the edge's output", 10*time.Second, p.output, "joined the cloud as node edge1")
	waitJoined(t, url, "edge1")
	id, err := edge.LoadIdentity(filepath.Join(dir, "edge1"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Node != "edge1" || !strings.HasPrefix(id.BrokerURL, "ssl://") || id.Certificate().Issuer.CommonName != m.CA().Cert.Subject.CommonName {
		t.Fatalf("the identity: node %s, broker %s, issuer %s", id.Node, id.BrokerURL, id.Certificate().Issuer)
	}
	if key, err := os.Stat(filepath.Join(dir, "edge1", edge.IdentityDir, "node.key")); err != nil || key.Mode().Perm() != 0o600 {
		t.Fatalf("the node's key file: %v %v", key.Mode(), err)
	}
	topic := topics.NodeAppPrefix("edge1") + "sensors/t"
	_, cnt := startConsumer(t, url, "join-consumer", openStore(t, filepath.Join(dir, "consumer")), 1, topic)
	pub := client(t, "tcp://"+p.addr, "pub", "", true)
	publishAll(t, pub, "sensors/t", 1, 0, 2000, 64)
	cnt.wait(t, 2000, time.Minute)
	cnt.check(t, 2000, true)
	t.Logf("edge1 joined with a token and bridged over mutual TLS (%s): 2,000 of 2,000 messages arrived", id.BrokerURL)

	// The systemd flow: join once with --join-only (exits), then run the
	// agent with its data directory alone.
	onlyDir := filepath.Join(dir, "edge4")
	if out, err := exec.Command(sednaBin, "edge", "--join", newToken(t, url, "edge4"), "--join-only", "--cloud", m.JoinAddr(),
		"--data", onlyDir).CombinedOutput(); err != nil || !strings.Contains(string(out), "joined the cloud as node edge4") {
		t.Fatalf("sedna edge --join --join-only: %v\n%s", err, out)
	}
	startProc(t, "edge", "--data", onlyDir, "--listen", "127.0.0.1:0", "--metrics", "off")
	waitJoined(t, url, "edge4")

	// A used token.
	line := joinFails(t, m, filepath.Join(dir, "again"), token)
	t.Logf("a used token: %s", line)
	if !strings.Contains(line, "was used at") {
		t.Errorf("a used token: %q", line)
	}
	waitOutput(t, "the cloud's log", 5*time.Second, logs.String, "join refused: token "+strings.SplitN(token, ".", 2)[0]+" was used")

	// An expired token: valid for 1 s, used after 1.5 s.
	expiring := newToken(t, url, "edge2", "--ttl", "1s")
	<-time.After(1500 * time.Millisecond) // the token's life passing, not an event
	line = joinFails(t, m, filepath.Join(dir, "edge2"), expiring)
	t.Logf("an expired token: %s", line)
	if !strings.Contains(line, "expired at") {
		t.Errorf("an expired token: %q", line)
	}
	waitOutput(t, "the cloud's log", 5*time.Second, logs.String, "join refused: token "+strings.SplitN(expiring, ".", 2)[0]+" expired at")

	// A revoked token.
	revoked := newToken(t, url, "edge3")
	if out, errOut, err := sednaAdmin(url, "token", "revoke", strings.SplitN(revoked, ".", 2)[0]); err != nil {
		t.Fatalf("sedna token revoke: %v %s%s", err, out, errOut)
	}
	line = joinFails(t, m, filepath.Join(dir, "edge3"), revoked)
	t.Logf("a revoked token: %s", line)
	if !strings.Contains(line, "is revoked") {
		t.Errorf("a revoked token: %q", line)
	}
	waitOutput(t, "the cloud's log", 5*time.Second, logs.String, "join refused: token "+strings.SplitN(revoked, ".", 2)[0]+" is revoked")
	// A token of another cloud (its pin changed).
	forged := token[:len(token)-4] + "0000"
	line = joinFails(t, m, filepath.Join(dir, "forged"), forged)
	t.Logf("a token pinning another CA: %s", line)
	if !strings.Contains(line, "not the cloud that made the token") {
		t.Errorf("a token pinning another CA: %q", line)
	}

	// Another node's certificate under a bridge's client ID of its own.
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "edge1", edge.IdentityDir, "node.crt"), filepath.Join(dir, "edge1", edge.IdentityDir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	tlsURL := "ssl://" + m.TLSAddr()
	stolen := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: m.CA().Pool(), ServerName: "127.0.0.1"}
	if err := tryConnect(tlsURL, access.BridgeClientID("edge9"), stolen); err == nil {
		t.Error("edge1's certificate logged in as edge9's bridge")
	} else {
		t.Logf("edge1's certificate as edge9's bridge: %v", err)
	}
	waitOutput(t, "the cloud's log", 5*time.Second, logs.String, "the client ID sedna-bridge-edge9 belongs to node edge9's bridge")

	// A plaintext client on the TLS listener.
	if err := tryConnect("tcp://"+m.TLSAddr(), "plain", nil); err == nil {
		t.Error("a plaintext client logged in on the TLS listener")
	} else {
		t.Logf("a plaintext client on the TLS listener: %v", err)
	}
	waitOutput(t, "the cloud's log", 5*time.Second, logs.String, "a plaintext connection on the TLS listener")
	plain := startProc(t, edgeArgs("edge2", filepath.Join(dir, "plain"), "tcp://"+m.TLSAddr())...)
	waitOutput(t, "the plaintext edge's log", 10*time.Second, plain.output, "may also be a TLS listener's")
	t.Logf("an edge bridging in plaintext to the TLS listener says: %s", lastLine(plain.output(), "may also be a TLS listener's"))

	// The node revoked: its bridge is cut and refused from then on.
	out, errOut, err := sednaAdmin(url, "node", "revoke", "edge1")
	if err != nil || !strings.Contains(out, "node edge1 revoked (1 certificates)") {
		t.Fatalf("sedna node revoke: %v %s%s", err, out, errOut)
	}
	waitOutput(t, "the cloud's log", 10*time.Second, logs.String, "refused node edge1's certificate: the node's certificate is revoked")
	waitOutput(t, "the edge's log", 10*time.Second, p.output, "the cloud refused the node's certificate")
	t.Logf("edge1 revoked; the edge says: %s", lastLine(p.output(), "the cloud refused the node's certificate"))
}

// tryConnect connects once to url as clientID with tlsConf and no
// password, and disconnects.
func tryConnect(url, clientID string, tlsConf *tls.Config) error {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second)
	if tlsConf != nil {
		o.SetTLSConfig(tlsConf)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("no answer")
	}
	if tok.Error() != nil {
		return tok.Error()
	}
	c.Disconnect(50)
	return nil
}

func lastLine(s, with string) string {
	out := ""
	for l := range strings.Lines(s) {
		if strings.Contains(l, with) {
			out = strings.TrimSpace(l)
		}
	}
	return out
}

// Issue 21, must-show 5: certificates rotate under load. Nodes'
// certificates live 3 s here (the cloud's identity.nodeCertTTL), so the
// node renews every 2 s (two thirds of their life) while 8,000 messages
// are published at it over about 9 s: the link stays up through every
// renewal (no "cloud link lost" until the test cuts it). The test cuts
// the link for a second after the first certificate has expired: the
// bridge reconnects with a renewed certificate within 2 s of the link's
// return. Every message arrives, once.
func TestCertificateRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	logs := &lines{}
	tlsAddr := freeAddr(t)
	link := proxyTo(t, "tcp://"+tlsAddr)
	m := startIdentityCloud(t, filepath.Join(dir, "cloud"), logs, func(c *cloud.IdentityConfig) {
		c.TLSListen, c.Broker, c.NodeCertTTL = tlsAddr, "ssl://"+link.Addr(), broker.Duration(3*time.Second)
	})
	url := m.BrokerURL()
	p := joinEdge(t, m, filepath.Join(dir, "edge1"), newToken(t, url, "edge1"), "--config", edgeConfig(t, dir))
	waitJoined(t, url, "edge1")
	joined := time.Now()
	online := make(chan time.Time, 64)
	watcher := client(t, url, "status-watcher", "app", true)
	if tok := watcher.Subscribe(topics.NodeStatusTopic("edge1"), 1, func(_ paho.Client, msg paho.Message) {
		env, err := topics.UnmarshalEnvelope(msg.Payload(), topics.Limits{})
		var st topics.NodeStatus
		if err == nil && env.DecodeBody(&st) == nil && st.State == topics.NodeOnline {
			online <- time.Now()
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	<-online // the retained online status
	topic := topics.NodeAppPrefix("edge1") + "sensors/t"
	_, cnt := startConsumer(t, url, "rotation-consumer", openStore(t, filepath.Join(dir, "consumer")), 2, topic)
	pub := client(t, "tcp://"+p.addr, "pub", "", true)
	const batches, per = 16, 500
	var cut, back time.Time
	for i := range batches {
		publishAll(t, pub, "sensors/t", 2, uint64(i*per), per, 64)
		if i == 8 && time.Since(joined) > 3*time.Second { // the first certificate has expired
			if n := strings.Count(p.output(), "cloud link lost"); n != 0 {
				t.Fatalf("the link was lost %d times through the renewals:\n%s", n, p.output())
			}
			link.SetDown(true)
			cut = time.Now()
			<-time.After(time.Second) // the link down for a second
			link.SetDown(false)
			back = time.Now()
		}
		<-time.After(500 * time.Millisecond) // the load is paced over the certificates' lives
	}
	cnt.wait(t, batches*per, time.Minute)
	cnt.check(t, batches*per, true)
	renewals := strings.Count(p.output(), "the node's certificate renewed")
	var reconnected time.Time
	for len(online) > 0 {
		if at := <-online; at.After(back) && reconnected.IsZero() {
			reconnected = at
		}
	}
	if cut.IsZero() {
		t.Fatal("the link was not cut: the test ran too fast to see a certificate expire")
	}
	t.Logf("%d of %d messages arrived once; %d renewals in %v; the link cut for 1 s after the first certificate expired came back online %v after its return",
		batches*per, batches*per, renewals, time.Since(joined).Round(time.Second), reconnected.Sub(back).Round(10*time.Millisecond))
	if renewals < 3 {
		t.Errorf("%d renewals of a 3 s certificate in %v: want 3 at least", renewals, time.Since(joined).Round(time.Second))
	}
	if reconnected.IsZero() || reconnected.Sub(back) > 2*time.Second {
		t.Errorf("reconnected %v after the link came back (zero: never): want within 2 s", reconnected.Sub(back))
	}
	if strings.Contains(logs.String(), "refused node edge1") {
		t.Errorf("the cloud refused a certificate of edge1:\n%s", logs.String())
	}
}
