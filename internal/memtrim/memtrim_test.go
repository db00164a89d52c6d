//go:build linux

package memtrim

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// Only the executable's mappings without write permission are taken, by
// the whole path (one with a space in it included).
func TestReadOnlyMappings(t *testing.T) {
	maps := `00400000-00e1a000 r-xp 00000000 08:01 123 /opt/my bin/sedna
00e1a000-01bd5000 r--p 00a1a000 08:01 123 /opt/my bin/sedna
01bd5000-01c8d000 rw-p 017d5000 08:01 123 /opt/my bin/sedna
01c8d000-03cdd000 rw-p 00000000 00:00 0
7f45df864000-7f45df9ba000 r-xp 00028000 08:01 456 /usr/lib/libc.so.6
7f45df9ba000-7f45df9bb000 r--p 00000000 08:01 124 /opt/my bin/sedna2
`
	got := readOnlyMappings([]byte(maps), "/opt/my bin/sedna")
	want := [][2]uintptr{{0x400000, 0xe1a000}, {0xe1a000, 0x1bd5000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%x, want %x", got, want)
	}
}

// Release in a real process: the executable's read-only mappings are
// found and released, the process's resident set is not larger after,
// and the process goes on running its code (a child runs the test binary
// again after the release and exits cleanly).
func TestReleaseKeepsTheProcessRunning(t *testing.T) {
	if os.Getenv("MEMTRIM_CHILD") == "1" {
		r, err := Release()
		if err != nil || r.Mappings < 2 || r.AfterKiB <= 0 || r.AfterKiB > r.BeforeKiB {
			t.Fatalf("released %+v: %v", r, err)
		}
		// Code and data of the executable still work: a map, strings,
		// the test framework itself.
		m := map[string]int{}
		for i := range 1000 {
			m[strings.Repeat("x", i%7)] += i
		}
		if len(m) != 7 {
			t.Fatal("a map lost its entries")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestReleaseKeepsTheProcessRunning$", "-test.v")
	cmd.Env = append(os.Environ(), "MEMTRIM_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("the child: %v\n%s", err, out)
	}
}
