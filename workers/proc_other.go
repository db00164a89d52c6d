//go:build !unix

package workers

import (
	"os"
	"os/exec"
	"time"
)

func setProcess(*exec.Cmd, *Credential) {}

func stopProcess(cmd *exec.Cmd, grace time.Duration, waited <-chan error) {
	_ = cmd.Process.Kill()
	<-waited
}

func exitCode(cmd *exec.Cmd) int { return cmd.ProcessState.ExitCode() }

func handOver(string, *Credential) error { return nil }

func openOutput(path string, _ *Credential) (*os.File, error) { return os.Open(path) }
