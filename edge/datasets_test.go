package edge

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// readLines takes the complete lines after an offset: a last line without
// its newline waits for it, blank lines and a CSV's header are not
// samples, a batch stops short of its byte bound (a first line is taken
// whatever its size), and a file shorter than the offset was replaced and
// is read from its start. No broker, a real file.
func TestReadLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.txt")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(offset int64, csv bool, max int) (string, int64) {
		t.Helper()
		lines, off, err := readLines(path, offset, csv, max, 64)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range lines {
			out = append(out, string(l))
		}
		return strings.Join(out, "|"), off
	}
	for _, tc := range []struct {
		name, file string
		offset     int64
		csv        bool
		max        int
		want       string
		wantOff    int64
	}{
		{"complete lines", "a\nb\n", 0, false, 1 << 20, "a|b", 4},
		{"a partial last line waits", "a\nb", 0, false, 1 << 20, "a", 2},
		{"from an offset", "a\nb\nc\n", 2, false, 1 << 20, "b|c", 6},
		{"blank lines and CRLF", "a\r\n\n  \nb\n", 0, false, 1 << 20, "a|b", 9},
		{"a csv's header is not a sample", "label,x\n1,2\n", 0, true, 1 << 20, "1,2", 12},
		{"a csv read on: no header", "label,x\n1,2\n3,4\n", 12, true, 1 << 20, "3,4", 16},
		{"bounded: the first line whatever its size", "aaaa\nbbbb\n", 0, false, 10, "aaaa", 5},
		{"a replaced, shorter file is read from its start", "x\n", 100, false, 1 << 20, "x", 2},
		{"nothing new", "a\n", 2, false, 1 << 20, "", 2},
	} {
		write(tc.file)
		got, off := read(tc.offset, tc.csv, tc.max)
		if got != tc.want || off != tc.wantOff {
			t.Errorf("%s: got %q at %d, want %q at %d", tc.name, got, off, tc.want, tc.wantOff)
		}
	}
	if _, _, err := readLines(filepath.Join(t.TempDir(), "missing"), 0, false, 1<<20, 64); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v, want its error", err)
	}
}

// A dataset file far larger than one write of a node's store (1 MiB
// memtables take about 118 KiB) is kept a write's worth at a time: every
// line a sample, in more than one write, none refused as too large.
func TestAFileLargerThanAWriteIsKeptWhole(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir(), MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &datasets{st: st}
	ds := &dataset{key: "Dataset/default/" + strings.Repeat("d", 40)}
	path := filepath.Join(t.TempDir(), "big.txt")
	var file strings.Builder
	const lines = 6000
	for i := range lines {
		fmt.Fprintf(&file, "%d,0.125,0.25,0.5,0.75,1.0,1.25,1.5\n", i%10) // 34 bytes a line, 204 KB
	}
	if err := os.WriteFile(path, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var count uint64
	var offset int64
	writes := 0
	for {
		got, next, err := readLines(path, offset, false, d.budget(), perSample(ds))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if count, err = d.keep(ds, count, got, next, nil); err != nil {
			t.Fatalf("write %d: %v", writes+1, err)
		}
		offset = next
		writes++
	}
	if count != lines || writes < 2 {
		t.Fatalf("%d samples in %d writes, want %d in more than one", count, writes, lines)
	}
}

// A Dataset's first status comes after its file was tried: a missing file
// is reported as missing, never first as Ready with 0 samples (a status
// the control plane showed until the next poll, and a restart then
// changed); a file that is there is reported with its samples counted.
func TestFirstStatusAfterTheFileWasTried(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	present := filepath.Join(t.TempDir(), "d.txt")
	if err := os.WriteFile(present, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.txt")
	statuses := make(chan topics.DatasetStatus, 16)
	d := newDatasets("edge1", st, nil, nil, time.Hour, slog.New(slog.DiscardHandler))
	d.emit = func(_ *dataset, s topics.DatasetStatus) { statuses <- s }
	defer d.close()
	for _, tc := range []struct {
		name, url string
		samples   int64
		problem   string
	}{
		{"missing", missing, 0, "no file " + missing + " on node edge1"},
		{"present", present, 3, ""},
	} {
		d.onSpec("Dataset/default/"+tc.name, &api.Resource{Kind: "Dataset", Spec: &api.DatasetSpec{URL: tc.url, Format: "txt", NodeName: "edge1"}}, false)
		s := <-statuses
		if s.NumberOfSamples != tc.samples || !strings.HasPrefix(s.Problem, tc.problem) || (tc.problem == "") != (s.Problem == "") {
			t.Errorf("%s: first status %d samples, problem %q; want %d, %q", tc.name, s.NumberOfSamples, s.Problem, tc.samples, tc.problem)
		}
	}
}
