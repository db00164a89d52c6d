package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/topics"
)

func TestVersionAndPasswd(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "sedna ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
	root = newRoot()
	out.Reset()
	root.SetOut(&out)
	root.SetIn(strings.NewReader("s3cret\n"))
	root.SetArgs([]string{"passwd"})
	if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "$2a$") {
		t.Fatalf("passwd: %q %v", out.String(), err)
	}
	root = newRoot()
	root.SetIn(strings.NewReader(""))
	root.SetArgs([]string{"passwd"})
	if err := root.Execute(); err == nil {
		t.Fatal("empty password accepted")
	}
}

func TestConfigFileIsStrict(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "edge.yaml")
	os.WriteFile(good, []byte("node: edge-1\ncloud:\n  url: tcp://c:1884\nqueue:\n  maxBytes: 1000\n  policy: drop-oldest\n"), 0o600)
	var cfg edge.Config
	if err := loadConfig(good, &cfg); err != nil || cfg.Node != "edge-1" || cfg.Queue.Policy != "drop-oldest" {
		t.Fatalf("%+v %v", cfg, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("node: edge-1\nnodee: typo\n"), 0o600)
	if err := loadConfig(bad, &cfg); err == nil || !strings.Contains(err.Error(), "nodee") {
		t.Fatalf("unknown field accepted: %v", err)
	}
}

func TestEventsLines(t *testing.T) {
	env, _ := topics.NewEnvelope(topics.KindNodeStatus, "edge/bridge", topics.NodeStatus{Node: "n", State: topics.NodeOnline})
	env.ID = topics.ID{Node: "n", Stream: topics.StreamEvents, Epoch: 1, Seq: 2}
	raw, _ := env.Marshal()
	f := topics.Frame{Node: "n", Stream: topics.StreamBulk, Epoch: 3, Messages: []topics.FrameMessage{{Seq: 1, Topic: "t", Payload: []byte("abc")}}}
	fraw, _ := f.Marshal()
	var out bytes.Buffer
	writeEvent(&out, topics.NodeStatusTopic("n"), raw, true)
	writeEvent(&out, topics.Uplink("n", topics.StreamBulk), fraw, false)
	writeEvent(&out, "sensors/x", []byte("21.5"), false)
	writeEvent(&out, "sensors/bin", []byte{0xff, 0}, false)
	writeEvent(&out, topics.NodeStatusTopic("n"), []byte{0xc1}, false)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	var m []map[string]any
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		m = append(m, v)
	}
	if m[0]["kind"] != topics.KindNodeStatus || m[0]["id"] != env.ID.String() || m[0]["body"].(map[string]any)["state"] != "online" {
		t.Errorf("envelope line: %s", lines[0])
	}
	if fr := m[1]["frame"].(map[string]any); fr["stream"] != "bulk" || len(fr["messages"].([]any)) != 1 {
		t.Errorf("frame line: %s", lines[1])
	}
	if m[2]["payload"] != "21.5" || m[3]["payloadBase64"] != "/wA=" {
		t.Errorf("raw lines: %s %s", lines[2], lines[3])
	}
	if !strings.Contains(m[4]["error"].(string), "malformed") {
		t.Errorf("error line: %s", lines[4])
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The example configuration files parse into the configurations they are for.
func TestExampleConfigs(t *testing.T) {
	var e edge.Config
	if err := loadConfig("../../examples/edge.yaml", &e); err != nil || e.Node != "edge-1" || len(e.ExtraRules) != 2 {
		t.Fatalf("edge.yaml: %+v %v", e, err)
	}
	var c cloud.Config
	if err := loadConfig("../../examples/cloud.yaml", &c); err != nil || c.Broker.Listen != "127.0.0.1:1884" ||
		c.Identity.TLSListen != ":8883" || c.Identity.JoinListen != ":10002" {
		t.Fatalf("cloud.yaml: %+v %v", c, err)
	}
	creds, err := access.LoadCredentials("../../examples/credentials.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := creds.Check([]byte("ops"), []byte("change-me")); !ok {
		t.Fatal("the example password does not match its hash")
	}
	if _, err := bridge.NewRules(e.Node, append(bridge.DefaultRules(), e.ExtraRules...)); err != nil {
		t.Fatalf("edge.yaml rules: %v", err)
	}
}

// Finding 10 of issue 14: a flag's default taken from the environment was
// printed by --help, the password included. No command's help shows a
// secret of the environment.
func TestHelpShowsNoSecret(t *testing.T) {
	const secret = "hunter2-not-for-help"
	t.Setenv("SEDNA_PASSWORD", secret)
	t.Setenv("SEDNA_USERNAME", "ops-"+secret)
	t.Setenv("SEDNA_CLOUD_URL", "tcp://"+secret+":1884")
	for _, cmd := range [][]string{{"apply"}, {"get"}, {"describe"}, {"delete"}, {"watch"}, {"model", "push"}, {"edge"}, {"cloud"}, {"events"}, {"logs"}} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(cmd, "--help"))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v --help: %v", cmd, err)
		}
		if strings.Contains(out.String(), secret) {
			t.Errorf("%v --help shows the environment's secret:\n%s", cmd, out.String())
		}
		if !strings.Contains(out.String(), "Usage") {
			t.Fatalf("%v --help printed no usage:\n%s", cmd, out.String())
		}
	}
}

// A build stamped as the Makefile stamps it (-X main.version, main.commit,
// main.date) says so in `sedna version`, in words and in JSON.
func TestVersionStamped(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sedna")
	ldflags := "-X main.version=v1.2.3 -X main.commit=0123abc -X main.date=2026-12-03T10:00:00Z"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "sedna v1.2.3 (commit 0123abc, built 2026-12-03T10:00:00Z, go") {
		t.Fatalf("sedna version: %q %v", out, err)
	}
	out, err = exec.Command(bin, "version", "-o", "json").Output()
	var b buildInfo
	if err != nil || json.Unmarshal(out, &b) != nil || b.Version != "v1.2.3" || b.Commit != "0123abc" || b.Date != "2026-12-03T10:00:00Z" ||
		b.Arch != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("sedna version -o json: %q %v", out, err)
	}
}
