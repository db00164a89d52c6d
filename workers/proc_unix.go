//go:build unix

package workers

import (
	"os"
	"os/exec"
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
