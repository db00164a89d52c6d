//go:build linux

// Package smalldisk runs a program with a directory on a small file system
// of its own, so that tests and the simulator can fill a disk for real
// (ENOSPC, and the faults of memory-mapped writes) without touching the
// machine's disks.
//
// The program runs in a private mount namespace made by util-linux's
// unshare(1), where a tmpfs of the given size is mounted on the directory;
// as root unshare needs no more, otherwise it maps the user to root in a
// user namespace (the kernel must allow unprivileged user namespaces). The
// file system is seen from outside through /proc/PID/root, which Fill and
// Free use to take and give back its space.
package smalldisk

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// ballast is the file Fill writes and Free removes.
const ballast = ".smalldisk-ballast"

// Command returns a command that runs name with args, with dir (absolute)
// on a tmpfs of size bytes that only it sees. The command is unshare's; its
// process becomes the program's (the shell in between execs it), so
// Cmd.Process.Pid is the program's PID.
func Command(dir string, size int64, name string, args ...string) (*exec.Cmd, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("smalldisk: %q is not an absolute path", dir)
	}
	if size < 1<<20 {
		return nil, fmt.Errorf("smalldisk: a file system of %d bytes is too small", size)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return nil, errors.New("smalldisk: unshare(1) not found (Debian package util-linux)")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	ns := []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		ns = append([]string{"--map-root-user"}, ns...)
	}
	script := `mount -t tmpfs -o size="$1" tmpfs "$2" || exit 97; shift 2; exec "$@"`
	full := append(append(ns, "sh", "-c", script, "smalldisk", strconv.FormatInt(size, 10), dir, name), args...)
	return exec.Command(unshare, full...), nil
}

// ExitMountFailed is the exit code of a Command whose mount failed.
const ExitMountFailed = 97

// Path is where this process reaches path of the mount namespace of pid.
func Path(pid int, path string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), "root", path)
}

// FreeBytes is the free space of dir's file system as pid sees it.
func FreeBytes(pid int, dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(Path(pid, dir), &st); err != nil {
		return 0, fmt.Errorf("smalldisk: %w", err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:unconvert // field types differ by platform
}

// Fill takes the space of dir's file system (as pid sees it) until at most
// left bytes are free, with a ballast file it allocates.
func Fill(pid int, dir string, left int64) error {
	free, err := FreeBytes(pid, dir)
	if err != nil {
		return err
	}
	if free <= left {
		return nil
	}
	f, err := os.OpenFile(Path(pid, filepath.Join(dir, ballast)), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("smalldisk: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("smalldisk: %w", err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, st.Size(), free-left); err != nil {
		return fmt.Errorf("smalldisk: allocate %d bytes: %w", free-left, err)
	}
	return nil
}

// Free gives back what Fill took.
func Free(pid int, dir string) error {
	err := os.Remove(Path(pid, filepath.Join(dir, ballast)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("smalldisk: %w", err)
	}
	return nil
}
