package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/examples/lifelong/comfort"
	"github.com/sedna-go/sedna/internal/shareddir"
	"github.com/sedna-go/sedna/topics"
)

// Issue 21, must-show 2, the secret canary: a Dataset names a secret
// (credentialName); until the secret exists the job says it waits for it.
// `sedna secret create` keeps it (sealed for the cloud's key by the CLI),
// and the job's train command on the Dataset's node gets its keys as
// environment variables (it writes their SHA-256, which the test checks).
// Then the two canary values are searched for, as text, in every payload
// that crossed the cloud broker, every line the cloud and the node logged,
// `sedna describe`, `sedna secret list`, and every file of the cloud's and
// the node's data directories (the cloud's store keeps it encrypted, the
// node's sealed): none is found. The
// positive controls: the files' search finds the secret's key names (kept
// in clear), and a canary a node publishes on purpose is found in the
// payloads.
func TestSecretsNeverInClear(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	dir := t.TempDir()
	logs := &lines{}
	m := startIdentityCloud(t, filepath.Join(dir, "cloud"), logs)
	spy := spyOn(t, m)
	url := m.BrokerURL()
	p := joinEdge(t, m, filepath.Join(dir, "edge1"), newToken(t, url, "edge1"), "--config", edgeConfig(t, dir))
	waitJoined(t, url, "edge1")

	canaryKey, canarySecret := "AKIA-CANARY-7f3e9b1c", "CANARY-SECRET-d41d8cd98f00b204"
	shared := shareddir.New(t)
	out := filepath.Join(shared, "env.sha256")
	o := comfort.Options{Dir: filepath.Join(dir, "data"), Node: "edge1", PerTask: 50, TrainAfter: 100}.WithDefaults()
	if err := comfort.Write(o); err != nil {
		t.Fatal(err)
	}
	yaml := comfort.YAML(o)
	for old, repl := range map[string]string{
		"format: csv, nodeName: edge1}": "format: csv, nodeName: edge1, credentialName: s3-creds}",
		"          - name: train\n            env:\n": "          - name: train\n            command: [/bin/sh, -c, 'printf %s \"$ACCESS_KEY_ID:$SECRET_ACCESS_KEY\" | sha256sum > " +
			out + "; exit 1']\n            env:\n",
	} {
		if !strings.Contains(yaml, old) {
			t.Fatalf("the example's YAML changed (no %q); update the test", old)
		}
		yaml = strings.Replace(yaml, old, repl, 1)
	}
	applyAdmin(t, url, yaml)
	ref := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: o.Job}
	f := &flFleet{dir: dir, ctx: t.Context(), api: adminClient(t, url)}
	st := f.waitStatus(t, ref, "waiting for its secret", 30*time.Second, func(st api.Status) bool {
		return strings.Contains(strings.Join(st.Pending, ";"), "no secret s3-creds")
	})
	t.Logf("before the secret: %s", strings.Join(st.Pending, "; "))

	envFile := filepath.Join(dir, "s3.env")
	if err := os.WriteFile(envFile, []byte("# the canary\nACCESS_KEY_ID="+canaryKey+"\nSECRET_ACCESS_KEY="+canarySecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, e, err := sednaAdmin(url, "secret", "create", "s3-creds", "--from-env-file", envFile); err != nil || !strings.Contains(o, "ACCESS_KEY_ID, SECRET_ACCESS_KEY") {
		t.Fatalf("sedna secret create: %v %s%s", err, o, e)
	}
	want := sha256.Sum256([]byte(canaryKey + ":" + canarySecret))
	waitOutput(t, "the train command's output", 3*time.Minute, func() string { return readFile(out) }, hex.EncodeToString(want[:]))
	t.Logf("the train command on edge1 got the secret's two keys (their SHA-256 matches)")

	describe, _, _ := sednaAdmin(url, "describe", "ll", o.Job)
	list, _, _ := sednaAdmin(url, "secret", "list")
	if !strings.Contains(list, "s3-creds") || !strings.Contains(list, "ACCESS_KEY_ID,SECRET_ACCESS_KEY") {
		t.Errorf("sedna secret list: %q", list)
	}
	places := map[string][]byte{"the cloud's log": []byte(logs.String()), "the node's log": []byte(p.output()),
		"sedna describe": []byte(describe), "sedna secret list": []byte(list)}
	spy.mu.Lock()
	for i, pl := range spy.payloads {
		places["payload "+strconv.Itoa(i)] = pl
	}
	seen := len(spy.payloads)
	spy.mu.Unlock()
	files := 0
	for _, d := range []string{"cloud", "edge1"} {
		_ = filepath.Walk(filepath.Join(dir, d), func(path string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				if b, err := os.ReadFile(path); err == nil {
					places[d+" file "+path] = b
					files++
				}
			}
			return nil
		})
	}
	find := func() []string {
		var found []string
		for where, b := range places {
			for _, c := range []string{canaryKey, canarySecret} {
				if strings.Contains(string(b), c) {
					found = append(found, c+" in "+where)
				}
			}
		}
		return found
	}
	if found := find(); len(found) > 0 {
		t.Fatalf("a secret in clear: %v", found)
	}
	// The files' search sees the store: the secret's keys (not its
	// values) are kept in clear, and found.
	keysFound := false
	for where, b := range places {
		if strings.HasPrefix(where, "cloud file ") && strings.Contains(string(b), "SECRET_ACCESS_KEY") {
			keysFound = true
		}
	}
	if !keysFound {
		t.Fatal("the search of the cloud's files does not see its store: the secret's key names are not found either")
	}
	t.Logf("the two canary values searched in %d payloads through the cloud broker, both logs, describe, secret list and %d files of the cloud's and the node's data directories: none found", seen, files)

	// Positive control: edge1 publishes a canary on purpose.
	pub := client(t, "tcp://"+p.addr, "leaker", "", true)
	if tok := pub.Publish("sensors/leak", 1, false, []byte("oops "+canaryKey)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		spy.mu.Lock()
		for i, pl := range spy.payloads[seen:] {
			places["payload "+strconv.Itoa(seen+i)] = pl
		}
		seen = len(spy.payloads)
		spy.mu.Unlock()
		if found := find(); len(found) > 0 && !slices.ContainsFunc(found, func(f string) bool { return !strings.HasPrefix(f, canaryKey+" in payload") }) {
			t.Logf("positive control: the canary a node published on purpose is found: %v", found)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the positive control's canary not found: %v", find())
		}
		<-time.After(100 * time.Millisecond) // polling the spy
	}
}

// applyAdmin applies YAML as the admin with the CLI.
func applyAdmin(t *testing.T, url, yaml string) {
	t.Helper()
	cmd := exec.Command(sednaBin, "apply", "-f", "-", "--cloud", url, "--username", "admin", "--password", password)
	cmd.Stdin = strings.NewReader(yaml)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sedna apply: %v\n%s", err, out)
	}
}
