// Package storetest is the conformance suite of store.Store: every backend
// runs it from its own tests, so a second backend (for 32-bit boards, say)
// is held to exactly what the first one promises.
package storetest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sedna-go/sedna/store"
)

// Opener opens the store kept in dir, creating it if dir is empty. The
// suite closes what it opens.
type Opener func(t *testing.T, dir string) store.Store

// Run runs every conformance test against the backend open makes.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"ScanOrderAndBounds", testScan},
		{"Last", testLast},
		{"BatchesAreAtomic", testAtomic},
		{"ConcurrentWriters", testConcurrent},
		{"SurvivesReopen", testReopen},
		{"SubViews", testSub},
		{"Blobs", testBlobs},
		{"Closed", testClosed},
		{"SurvivesKill", testKilled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func mustWrite(t *testing.T, s store.Store, kv ...string) {
	t.Helper()
	var b store.Batch
	for i := 0; i+1 < len(kv); i += 2 {
		b.Put([]byte(kv[i]), []byte(kv[i+1]))
	}
	if err := s.Write(&b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func openTemp(t *testing.T, open Opener) store.Store {
	s := open(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testGetPutDelete(t *testing.T, open Opener) {
	s := openTemp(t, open)
	if _, err := s.Get([]byte("missing")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	mustWrite(t, s, "a", "1", "b", "2")
	v, err := s.Get([]byte("a"))
	if err != nil || string(v) != "1" {
		t.Fatalf("Get a = %q, %v", v, err)
	}
	v[0] = 'x' // the caller owns the copy
	if v2, _ := s.Get([]byte("a")); string(v2) != "1" {
		t.Fatal("Get returned a slice the store still uses")
	}
	var b store.Batch
	b.Delete([]byte("a"))
	b.Put([]byte("b"), []byte("3"))
	b.Put([]byte("empty"), nil)
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("a")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if v, _ := s.Get([]byte("b")); string(v) != "3" {
		t.Fatalf("overwrite: %q", v)
	}
	if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("empty value: %q %v", v, err)
	}
	if err := s.Write(&store.Batch{}); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	if s.Mode() != store.Sync && s.Mode() != store.Process {
		t.Fatalf("mode %q", s.Mode())
	}
}

func scanAll(t *testing.T, s store.Store, prefix, start string) []string {
	t.Helper()
	var out []string
	var st []byte
	if start != "" {
		st = []byte(start)
	}
	if err := s.Scan([]byte(prefix), st, func(k, v []byte) error {
		out = append(out, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func testScan(t *testing.T, open Opener) {
	s := openTemp(t, open)
	mustWrite(t, s, "p/b", "2", "p/a", "1", "p/\xff", "ff", "p/c/x", "3", "q/a", "out", "p", "parent", "o/z", "out")
	got := fmt.Sprint(scanAll(t, s, "p/", ""))
	if want := fmt.Sprint([]string{"p/a=1", "p/b=2", "p/c/x=3", "p/\xff=ff"}); got != want {
		t.Fatalf("scan p/ = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(scanAll(t, s, "p/", "p/b")), fmt.Sprint([]string{"p/b=2", "p/c/x=3", "p/\xff=ff"}); got != want {
		t.Fatalf("scan from p/b = %s, want %s", got, want)
	}
	if got := scanAll(t, s, "p/", "a"); len(got) != 4 {
		t.Fatalf("start below the prefix must scan the whole prefix: %v", got)
	}
	if got := scanAll(t, s, "p/", "z"); len(got) != 0 {
		t.Fatalf("start above the prefix: %v", got)
	}
	n := 0
	err := s.Scan([]byte("p/"), nil, func(k, v []byte) error {
		n++
		if n == 2 {
			return store.ErrStop
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("ErrStop: n=%d err=%v", n, err)
	}
	boom := errors.New("boom")
	if err := s.Scan([]byte("p/"), nil, func(k, v []byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error not returned: %v", err)
	}
	if got := scanAll(t, s, "", ""); len(got) != 7 {
		t.Fatalf("scan of everything: %v", got)
	}
}

func testLast(t *testing.T, open Opener) {
	s := openTemp(t, open)
	if _, _, err := s.Last([]byte("p/")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Last on empty = %v", err)
	}
	mustWrite(t, s, "p/a", "1", "p/b", "2", "q", "after", "o", "before")
	if k, v, err := s.Last([]byte("p/")); err != nil || string(k) != "p/b" || string(v) != "2" {
		t.Fatalf("Last = %q %q %v", k, v, err)
	}
	mustWrite(t, s, "p/\xff\xff", "ff")
	if k, _, _ := s.Last([]byte("p/")); string(k) != "p/\xff\xff" {
		t.Fatalf("Last with 0xff = %q", k)
	}
	mustWrite(t, s, "\xff\xff", "top")
	if k, _, _ := s.Last([]byte("\xff")); string(k) != "\xff\xff" {
		t.Fatalf("Last of an all-0xff prefix = %q", k)
	}
	if k, _, _ := s.Last(nil); string(k) != "\xff\xff" {
		t.Fatalf("Last of everything = %q", k)
	}
	if _, _, err := s.Last([]byte("p/c")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Last of an empty prefix between keys = %v", err)
	}
}

// testAtomic: a reader never sees part of a batch.
func testAtomic(t *testing.T, open Opener) {
	s := openTemp(t, open)
	const keys = 20
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var writeErr error
	go func() {
		defer wg.Done()
		defer close(stop)
		for round := 0; round < 200; round++ {
			var b store.Batch
			for i := 0; i < keys; i++ {
				b.Put([]byte(fmt.Sprintf("atom/%02d", i)), []byte(fmt.Sprint(round)))
			}
			if err := s.Write(&b); err != nil {
				writeErr = err
				return
			}
		}
	}()
	checks := 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		vals := map[string]bool{}
		n := 0
		if err := s.Scan([]byte("atom/"), nil, func(k, v []byte) error {
			vals[string(v)] = true
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != 0 && (n != keys || len(vals) != 1) {
			t.Fatalf("saw a partial batch: %d keys, values %v", n, vals)
		}
		checks++
	}
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	if checks == 0 {
		t.Fatal("reader never ran")
	}
}

func testConcurrent(t *testing.T, open Opener) {
	s := openTemp(t, open)
	const writers, each = 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var b store.Batch
				b.Put([]byte(fmt.Sprintf("c/%d/%04d", w, i)), []byte("v"))
				if err := s.Write(&b); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := len(scanAll(t, s, "c/", "")); got != writers*each {
		t.Fatalf("%d keys, want %d", got, writers*each)
	}
}

func testReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	epoch := s.Epoch()
	if epoch == 0 {
		t.Fatal("epoch is zero")
	}
	mustWrite(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
	if s.Epoch() != epoch {
		t.Fatalf("epoch changed across reopen: %x -> %x", epoch, s.Epoch())
	}
	other := openTemp(t, open)
	if other.Epoch() == epoch {
		t.Fatal("a new store has the same epoch")
	}
}

func testSub(t *testing.T, open Opener) {
	s := openTemp(t, open)
	a := store.Sub(s, "a/")
	ab := store.Sub(a, "b/")
	mustWrite(t, a, "k", "1")
	mustWrite(t, ab, "k", "2")
	mustWrite(t, s, "k", "0")
	if v, _ := s.Get([]byte("a/b/k")); string(v) != "2" {
		t.Fatalf("nested view wrote %q", v)
	}
	if v, _ := a.Get([]byte("k")); string(v) != "1" {
		t.Fatalf("view read %q", v)
	}
	if got := fmt.Sprint(scanAll(t, a, "", "")); got != fmt.Sprint([]string{"b/k=2", "k=1"}) {
		t.Fatalf("view scan = %s", got)
	}
	if k, _, err := ab.Last(nil); err != nil || string(k) != "k" {
		t.Fatalf("view Last = %q %v", k, err)
	}
	if a.Epoch() != s.Epoch() || a.Mode() != s.Mode() {
		t.Fatal("view differs in epoch or mode")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("k")); err != nil {
		t.Fatalf("closing a view closed the store: %v", err)
	}
}

func testBlobs(t *testing.T, open Opener) {
	s := openTemp(t, open)
	data := make([]byte, 3*store.DefaultChunkSize+1234)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	info, err := store.PutBlob(s, "model/v1", bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.Chunks != 4 || info.Size != int64(len(data)) {
		t.Fatalf("info %+v", info)
	}
	r, err := store.OpenBlob(s, "model/v1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	// Overwrite with a smaller blob: the old chunks go away.
	if _, err := store.PutBlob(s, "model/v1", bytes.NewReader(data[:10]), 0); err != nil {
		t.Fatal(err)
	}
	if n := len(scanAll(t, s, "blob/c/", "")); n != 1 {
		t.Fatalf("%d chunks after overwrite, want 1", n)
	}
	r, _ = store.OpenBlob(s, "model/v1")
	if got, _ := io.ReadAll(r); !bytes.Equal(got, data[:10]) {
		t.Fatal("overwrite not read back")
	}
	// Empty blob.
	if info, err := store.PutBlob(s, "empty", bytes.NewReader(nil), 0); err != nil || info.Chunks != 0 {
		t.Fatalf("empty blob: %+v %v", info, err)
	}
	r, _ = store.OpenBlob(s, "empty")
	if got, err := io.ReadAll(r); err != nil || len(got) != 0 {
		t.Fatalf("empty blob read: %v %v", got, err)
	}
	// A corrupted chunk is detected.
	if _, err := store.PutBlob(s, "c", bytes.NewReader(data[:100]), 0); err != nil {
		t.Fatal(err)
	}
	info, _ = store.StatBlob(s, "c")
	var ck []byte
	_ = s.Scan([]byte("blob/c/c\x00"), nil, func(k, v []byte) error { ck = append([]byte{}, k...); return store.ErrStop })
	var b store.Batch
	b.Put(ck, append(make([]byte, 32), data[:100]...))
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadChunk(s, info, 0); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("corrupt chunk: %v", err)
	}
	r, _ = store.OpenBlob(s, "c")
	if _, err := io.ReadAll(r); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("corrupt blob read: %v", err)
	}
	if err := store.DeleteBlob(s, "model/v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.StatBlob(s, "model/v1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted blob: %v", err)
	}
	if err := store.DeleteBlob(s, "never"); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	if _, err := store.PutBlob(s, "", bytes.NewReader(nil), 0); err == nil {
		t.Fatal("empty blob key accepted")
	}
}

func testClosed(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var b store.Batch
	b.Put([]byte("k"), []byte("v"))
	if err := s.Write(&b); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

// KillDirEnv, set, makes testKilled the writer of a child process: the
// test binary run again for the same test, writing in that directory
// until it is killed. KillExecEnv, set, is a command (and its arguments,
// space-separated) the child is run under: "qemu-arm" when the test binary
// is an armv7 one.
const (
	KillDirEnv  = "STORETEST_KILL_DIR"
	KillExecEnv = "STORETEST_EXEC"
)

// testKilled: a process that writes batches and is killed with SIGKILL
// leaves a store that opens, holds every batch whose Write returned (each
// whole: its two keys, or neither of a batch not acknowledged), and takes
// writes again.
func testKilled(t *testing.T, open Opener) {
	if dir := os.Getenv(KillDirEnv); dir != "" {
		killChild(t, open, dir)
		return
	}
	dir := t.TempDir()
	var args []string
	if e := os.Getenv(KillExecEnv); e != "" {
		args = strings.Fields(e)
	}
	args = append(args, os.Args[0], "-test.run", "^"+strings.ReplaceAll(t.Name(), "/", "$/^")+"$", "-test.count", "1")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), KillDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	lines := bufio.NewScanner(out)
	for acked < 300 && lines.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(lines.Text(), "acked ")); err == nil {
			acked = n
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if acked < 300 {
		t.Fatalf("the child acknowledged %d batches before it ended:\n%s", acked+1, stderr.String())
	}
	s := open(t, dir)
	defer s.Close()
	for i := 0; ; i++ {
		a, errA := s.Get([]byte(fmt.Sprintf("a/%08d", i)))
		b, errB := s.Get([]byte(fmt.Sprintf("b/%08d", i)))
		if errors.Is(errA, store.ErrNotFound) && errors.Is(errB, store.ErrNotFound) {
			if i <= acked {
				t.Fatalf("batch %d was acknowledged but is gone after the kill", i)
			}
			t.Logf("after SIGKILL: %d batches acknowledged, %d found", acked+1, i)
			break
		}
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("batch %d is half there after the kill: %v %v", i, errA, errB)
		}
	}
	mustWrite(t, s, "after", "kill")
	if v, err := s.Get([]byte("after")); err != nil || string(v) != "kill" {
		t.Fatalf("a write after the kill: %q %v", v, err)
	}
}

// killChild writes batches of two keys in dir, saying each one acknowledged
// on its standard output, until it is killed.
func killChild(t *testing.T, open Opener, dir string) {
	s := open(t, dir)
	val := make([]byte, 2048)
	for i := 0; ; i++ {
		var b store.Batch
		copy(val, fmt.Sprint(i))
		b.Put([]byte(fmt.Sprintf("a/%08d", i)), append([]byte(nil), val...))
		b.Put([]byte(fmt.Sprintf("b/%08d", i)), append([]byte(nil), val...))
		if err := s.Write(&b); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(2)
		}
		fmt.Printf("acked %d\n", i)
		if i == 100_000 {
			select {} // the parent kills long before; a child it lost stops writing here
		}
	}
}
