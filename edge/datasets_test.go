package edge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		lines, off, err := readLines(path, offset, csv, max)
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
	if _, _, err := readLines(filepath.Join(t.TempDir(), "missing"), 0, false, 1<<20); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v, want its error", err)
	}
}
