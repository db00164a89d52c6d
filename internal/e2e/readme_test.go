package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeSection returns the first sh block after the README's heading.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatalf("README.md's %q has no sh block", heading)
	}
	block, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("README.md's %q: the sh block does not end", heading)
	}
	return block + "\n"
}

// copyTracked copies the repository's tracked files into dir: a new clone's
// working tree, without what this one built or ran.
func copyTracked(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", "../..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files (the test copies the repository's tracked files): %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join("../..", f)
		st, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in this working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(w, in)
		in.Close()
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadmeRunningItByHand runs the README's "Running it by hand" block,
// taken from the README itself, as a user who pastes it would: in a copy
// of the repository, in a network namespace of its own (its fixed ports
// are free there, and nothing of this machine's is reached). Every command
// must succeed; the nodes and the cloud stop at its end (or when it fails).
func TestReadmeRunningItByHand(t *testing.T) {
	t.Parallel() // long, and no bound a test beside it could make it miss (doc.go)
	block := readmeSection(t, "## Running it by hand")
	dir := t.TempDir()
	copyTracked(t, dir)
	// The block as pasted, with the shell told to stop at the first
	// failure, and to stop what it started however it ends.
	script := "set -e -o pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + block
	if err := os.WriteFile(filepath.Join(dir, "readme.sh"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--map-root-user", "--",
		"bash", "-c", "ip link set lo up && exec bash readme.sh")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A user's environment: none of the test's SEDNA_ settings, and Go's
	// caches where they are (the namespace has no network to fetch with).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SEDNA_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "GOPROXY=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	logs := ""
	for _, f := range []string{"run/cloud.log", "run/edge1.log", "run/edge2.log"} {
		if b, rerr := os.ReadFile(filepath.Join(dir, f)); rerr == nil && err != nil {
			logs += "\n--- " + f + " (last 3000 bytes) ---\n" + tail(string(b), 3000)
		}
	}
	if err != nil {
		t.Fatalf("the README's block failed after %v: %v\n%s%s", time.Since(start).Round(time.Second), err, ends(out.String(), 10000, 10000), logs)
	}
	t.Logf("the README's block ran in %v", time.Since(start).Round(time.Second))
	for _, want := range []string{
		"Dataset/default/edge1-surface-defect-detection-dataset created",
		"FederatedLearningJob/default/digits-fl created",
		"phase Completed",
		`{"topic":"sedna/v1/node/edge1/kubeedge/$hw/events/upload/dev1"`, // the KubeEdge device's message, in the cloud
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the block's output has no %q:\n%s", want, ends(out.String(), 15000, 5000))
		}
	}
}

// ends is the start and the end of s, at most head and tail bytes.
func ends(s string, head, tail int) string {
	if len(s) <= head+tail {
		return s
	}
	return s[:head] + "\n...\n" + s[len(s)-tail:]
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
