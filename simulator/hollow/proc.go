package hollow

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage is what a process has used: its resident memory now and the CPU
// time it has had since it started (Linux's /proc).
type Usage struct {
	PID    int
	RSS    int64   // bytes
	CPU    float64 // seconds, user and system
	Thread int
}

// clockTick is the kernel's USER_HZ, the unit of /proc's CPU times: 100 on
// every Linux architecture Go runs on.
const clockTick = 100

// ProcUsage reads pid's usage from /proc.
func ProcUsage(pid int) (Usage, error) {
	u := Usage{PID: pid}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name is in parentheses and may hold spaces: the fields
	// are counted after its closing one.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return u, fmt.Errorf("hollow: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(0) ... utime(11) stime(12) ... num_threads(17).
	if len(f) < 18 {
		return u, fmt.Errorf("hollow: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	th, err3 := strconv.Atoi(f[17])
	if err1 != nil || err2 != nil || err3 != nil {
		return u, fmt.Errorf("hollow: /proc/%d/stat: unreadable times", pid)
	}
	u.CPU, u.Thread = float64(ut+st)/clockTick, th
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return u, fmt.Errorf("hollow: /proc/%d/status: VmRSS %q", pid, v)
			}
			u.RSS = kb << 10
		}
	}
	return u, nil
}
