//go:build linux

package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release releases the mappings of the executable's code and read-only
// data (never a writable mapping: those hold the program's variables).
func Release() (Released, error) {
	var r Released
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return r, err
	}
	r.BeforeKiB = rssKiB()
	for _, m := range readOnlyMappings(maps, exe) {
		// The range is not Go memory: the system call takes it as numbers.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m[0], m[1]-m[0], unix.MADV_DONTNEED); errno != 0 {
			return r, fmt.Errorf("memtrim: madvise %#x-%#x: %w", m[0], m[1], errno)
		}
		r.Mappings++
	}
	r.AfterKiB = rssKiB()
	return r, nil
}

// readOnlyMappings are the address ranges of /proc/self/maps mapping the
// file exe without write permission.
func readOnlyMappings(maps []byte, exe string) [][2]uintptr {
	var out [][2]uintptr
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.Join(f[5:], " ") != exe || len(f[1]) < 2 || f[1][1] != '-' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		out = append(out, [2]uintptr{uintptr(a), uintptr(b)})
	}
	return out
}

// rssKiB is the process's VmRSS, 0 if unknown.
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
