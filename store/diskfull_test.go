package store_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sedna-go/sedna/internal/smalldisk"
	"github.com/sedna-go/sedna/store"
)

// fillEnv, when set, makes TestFullDiskIsAnErrorNotACrash run its inner
// part: this test binary, started again on a small file system of its own.
const fillEnv = "SEDNA_STORE_FILL"

// A store on a 48 MiB file system is written until the disk is full. With
// the disk guard the write gets ErrFull, the process lives, and everything
// written before is there after a reopen. The control run, without the
// guard, dies of SIGBUS: Badger writes through memory maps, so a full disk
// is a fault, not an error, and the guard is what stands between them.
func TestFullDiskIsAnErrorNotACrash(t *testing.T) {
	if dir := os.Getenv(fillEnv); dir != "" {
		fillInner(t, dir)
		return
	}
	run := func(guard string) (string, error) {
		dir := filepath.Join(t.TempDir(), "disk")
		cmd, err := smalldisk.Command(dir, 48<<20, os.Args[0], "-test.run=^TestFullDiskIsAnErrorNotACrash$", "-test.v")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), fillEnv+"="+dir, "SEDNA_STORE_GUARD="+guard)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == smalldisk.ExitMountFailed {
			t.Fatalf("could not mount a small file system (needs root or unprivileged user namespaces): %s", out)
		}
		return string(out), err
	}
	out, err := run("on")
	if err != nil {
		t.Fatalf("with the guard: %v\n%s", err, tail(out))
	}
	if !strings.Contains(out, "refused: store: disk full") {
		t.Fatalf("with the guard, no ErrFull:\n%s", tail(out))
	}
	t.Log(line(out, "refused:"))
	out, err = run("off")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(out, "SIGBUS") {
		t.Fatalf("without the guard the store was expected to die of SIGBUS on the full disk; it ended with %v:\n%s", err, tail(out))
	}
	t.Log("control, without the guard: the process died of SIGBUS")
}

func fillInner(t *testing.T, dir string) {
	o := store.Options{Dir: filepath.Join(dir, "db"), GCInterval: -1}
	if os.Getenv("SEDNA_STORE_GUARD") == "off" {
		o.MinFreeBytes = -1
	}
	s, err := store.OpenBadger(o)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 2000) // over the value threshold: into the value log
	n := 0
	for ; ; n++ {
		var b store.Batch
		for k := range 20 {
			b.Put([]byte(fmt.Sprintf("k%09d-%02d", n, k)), val)
		}
		err = s.Write(&b)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("after %d batches: %v, want store.ErrFull", n, err)
	}
	fmt.Printf("refused: %v after %d batches\n", err, n)
	// Refused again, not crashed, on a second try of a batch as large (a
	// smaller one may still fit above the reserve: one of 2 KB did, once).
	var b store.Batch
	for k := range 20 {
		b.Put([]byte(fmt.Sprintf("again-%02d", k)), val)
	}
	if err := s.Write(&b); !errors.Is(err, store.ErrFull) {
		t.Fatalf("second write on a full disk: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = store.OpenBadger(o); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := 0
	if err := s.Scan([]byte("k"), nil, func(_, v []byte) error {
		if len(v) != len(val) {
			return fmt.Errorf("a value of %d bytes", len(v))
		}
		count++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if count != 20*n {
		t.Fatalf("after a reopen %d of the %d values written are there", count, 20*n)
	}
	var st syscall.Statfs_t
	_ = syscall.Statfs(dir, &st)
	fmt.Printf("reopened: all %d values there, %s bytes still free\n", count, strconv.FormatInt(int64(st.Bavail)*int64(st.Bsize), 10))
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

func line(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
