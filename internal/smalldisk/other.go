//go:build !linux

// Package smalldisk runs a program with a directory on a small file system
// of its own; it needs Linux (mount namespaces, tmpfs).
package smalldisk

import (
	"errors"
	"os/exec"
)

var errLinux = errors.New("smalldisk: a small file system of its own needs Linux")

// Command is not available here.
func Command(dir string, size int64, name string, args ...string) (*exec.Cmd, error) {
	return nil, errLinux
}

// ExitMountFailed is the exit code of a Command whose mount failed.
const ExitMountFailed = 97

// FreeBytes is not available here.
func FreeBytes(pid int, dir string) (int64, error) { return 0, errLinux }

// Fill is not available here.
func Fill(pid int, dir string, left int64) error { return errLinux }

// Free is not available here.
func Free(pid int, dir string) error { return errLinux }
