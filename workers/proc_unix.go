//go:build unix

package workers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// setProcess puts the worker in its own process group, so that a stop
// reaches the programs it started too, and runs it as c when that is
// another user than the supervisor's.
func setProcess(cmd *exec.Cmd, c *Credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c != nil && (int(c.UID) != os.Geteuid() || int(c.GID) != os.Getegid()) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups}
	}
}

// stopProcess sends SIGTERM to the worker's group, then SIGKILL after grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration, waited <-chan error) {
	pgid := -cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-waited:
	case <-t.C:
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-waited
	}
}

// exitCode is the process's exit status, or 128 plus the signal that ended
// it, as a shell reports it.
func exitCode(cmd *exec.Cmd) int {
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// handOver gives the run's directory dir to c: when the supervisor runs
// as another user (root), dir and the files in it become readable by c's
// group alone, and dir/OutDir is c's. Nothing changes when c is the
// supervisor's own user.
func handOver(dir string, c *Credential) error {
	if c == nil || int(c.UID) == os.Geteuid() {
		return nil
	}
	out := filepath.Join(dir, OutDir)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// What the worker wrote (out) and links are not touched: a
		// chmod follows a link, and a worker's link may point anywhere.
		if path == out {
			return fs.SkipDir
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		mode := os.FileMode(0o640)
		if d.IsDir() {
			mode = 0o750
		}
		if err := os.Lchown(path, os.Geteuid(), int(c.GID)); err != nil {
			return err
		}
		return os.Chmod(path, mode)
	})
	if err != nil {
		return err
	}
	if err := os.Lchown(out, int(c.UID), int(c.GID)); err != nil {
		return err
	}
	return os.Chmod(out, 0o700)
}

// openOutput opens a file a worker wrote, refusing a link, anything but a
// regular file, and (when the worker ran as another user) a file that is
// not the worker's.
func openOutput(path string, c *Credential) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("workers: output %s is a link", filepath.Base(path))
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("workers: output %s is not a regular file", filepath.Base(path))
	}
	if err == nil && c != nil && int(c.UID) != os.Geteuid() {
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != c.UID {
			err = fmt.Errorf("workers: output %s is not the worker's user's (%s)", filepath.Base(path), c.Name)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
