package hil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/pkg/sftp"
)

// Agent is how Deploy starts each board's edge agent.
type Agent struct {
	// Binaries are the sedna binaries by architecture (arm64, armv7,
	// amd64): make cross builds bin/sedna-linux-ARCH.
	Binaries map[string]string
	// CloudURL is the cloud broker as the boards reach it (a fault proxy
	// on the host, in a run); Password the boards' password there.
	CloudURL, Password string
	// Listen is the board's broker address (default 0.0.0.0:1883).
	Listen string
	// TrustNewHostKeys adds the key of a board known_hosts has none of.
	TrustNewHostKeys bool
	// Config, if set, is the agent's configuration file (YAML, as for
	// `sedna edge --config`), installed beside it.
	Config []byte
}

// Deployed is a board's agent once it is ready.
type Deployed struct {
	Board string
	// Broker is the agent's broker address as it printed it.
	Broker string
	// SHA256 is the binary's, checked on the board.
	SHA256 string
	// Supervisor says how it runs: "systemd" or "process".
	Supervisor string
}

var readyRE = regexp.MustCompile(`ready: broker (\S+)`)

// Deploy copies the board's binary (checked by its SHA-256 on the board),
// writes its configuration and starts its agent (a systemd unit where the
// board runs systemd and the user is root; otherwise a supervisor script
// that restarts it), and waits for it to say it is ready.
func Deploy(ctx context.Context, b *Board, a Agent) (*Deployed, error) {
	if err := a.hasBinary(b); err != nil {
		return nil, err
	}
	c, err := dial(ctx, b, a.TrustNewHostKeys)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.deploy(a)
}

// hasBinary says whether a has a sedna binary for b's architecture.
func (a Agent) hasBinary(b *Board) error {
	if a.Binaries[b.Arch] == "" {
		return fmt.Errorf("board %s is %s: no sedna binary for it (make cross builds bin/sedna-linux-%s)", b.Name, b.Arch, b.Arch)
	}
	return nil
}

// deploy is Deploy on a connection.
func (c *conn) deploy(a Agent) (*Deployed, error) {
	b := c.b
	bin := a.Binaries[b.Arch]
	dir := b.DataDir
	if _, err := c.run("mkdir -p " + dir + "/data && chmod 700 " + dir); err != nil {
		return nil, err
	}
	sum, err := c.copyFile(bin, path.Join(dir, "sedna.part"))
	if err != nil {
		return nil, err
	}
	out, err := c.run("sha256sum " + dir + "/sedna.part")
	if err != nil {
		return nil, err
	}
	if got := strings.Fields(out); len(got) == 0 || got[0] != sum {
		return nil, fmt.Errorf("board %s: the binary's SHA-256 on the board is %q, not %s: the copy is damaged", b.Name, out, sum)
	}
	// A running agent is stopped before its binary is replaced.
	if err := c.stop(); err != nil {
		return nil, err
	}
	if _, err := c.run("rm -f " + dir + "/hold && chmod 755 " + dir + "/sedna.part && mv " + dir + "/sedna.part " + dir + "/sedna"); err != nil {
		return nil, err
	}
	if err := c.writeFile(path.Join(dir, "password"), []byte(a.Password), 0o600); err != nil {
		return nil, err
	}
	listen := b.Listen
	if listen == "" {
		listen = a.Listen
	}
	if listen == "" {
		listen = "0.0.0.0:1883"
	}
	cmd := fmt.Sprintf("%s edge --node %s --data %s/data --listen %s --cloud %s --username %s --password-file %s/password --metrics off --log-level info",
		c.exe(), b.Name, dir, listen, a.CloudURL, b.Name, dir)
	if a.Config != nil {
		if err := c.writeFile(path.Join(dir, "edge.yaml"), a.Config, 0o600); err != nil {
			return nil, err
		}
		cmd += " --config " + dir + "/edge.yaml"
	}
	d := &Deployed{Board: b.Name, SHA256: sum}
	if _, err := c.run(": > " + dir + "/edge.log"); err != nil {
		return nil, err
	}
	if c.hasSystemd() {
		d.Supervisor = "systemd"
		err = c.startSystemd(cmd)
	} else {
		d.Supervisor = "process"
		err = c.startProcess(cmd)
	}
	if err != nil {
		return nil, err
	}
	if d.Broker, err = c.waitReady(1); err != nil {
		return nil, err
	}
	return d, nil
}

// exe is the command that runs the board's sedna binary.
func (c *conn) exe() string {
	if c.b.Emulator != "" {
		return c.b.Emulator + " " + c.b.DataDir + "/sedna"
	}
	return c.b.DataDir + "/sedna"
}

// waitReady waits until the agent's log says it was ready n times since
// it was deployed, and returns its broker's address as it said it last.
func (c *conn) waitReady(n int) (string, error) {
	dir := c.b.DataDir
	out, err := c.run(fmt.Sprintf("timeout 60 sh -c 'until [ $(grep -c \"ready: broker\" %s/edge.log) -ge %d ]; do sleep 0.1; done' && "+
		"grep -o 'ready: broker [^ ]*' %s/edge.log | tail -1", dir, n, dir))
	if err != nil {
		log, _ := c.run("tail -5 " + dir + "/edge.log")
		return "", fmt.Errorf("board %s: the agent was not ready within 60 s: %v; its log ends:\n%s", c.b.Name, err, log)
	}
	m := readyRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("board %s: the agent's log does not say its broker's address: %q", c.b.Name, out)
	}
	return m[1], nil
}

// agentShell is the shell command that becomes the agent: it waits while
// a run holds the agent down (the file hold, during a timeline's kill),
// records its process ID, and runs cmd with its output in edge.log.
func agentShell(dir, cmd string) string {
	return fmt.Sprintf("while [ -f %[1]s/hold ]; do sleep 0.1; done; echo $$ > %[1]s/agent.pid; exec %[2]s >> %[1]s/edge.log 2>&1", dir, cmd)
}

// copyFile copies a local file to the board over SFTP and returns its
// SHA-256.
func (c *conn) copyFile(local, remote string) (string, error) {
	f, err := os.Open(local)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc, err := sftp.NewClient(c.c)
	if err != nil {
		return "", fmt.Errorf("board %s: sftp: %w", c.b.Name, err)
	}
	defer sc.Close()
	dst, err := sc.Create(remote)
	if err != nil {
		return "", fmt.Errorf("board %s: sftp create %s: %w", c.b.Name, remote, err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), f); err != nil {
		dst.Close()
		return "", fmt.Errorf("board %s: sftp copy to %s: %w", c.b.Name, remote, err)
	}
	if err := dst.Close(); err != nil {
		return "", fmt.Errorf("board %s: sftp %s: %w", c.b.Name, remote, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFile writes data to a file of the board with mode.
func (c *conn) writeFile(remote string, data []byte, mode os.FileMode) error {
	sc, err := sftp.NewClient(c.c)
	if err != nil {
		return fmt.Errorf("board %s: sftp: %w", c.b.Name, err)
	}
	defer sc.Close()
	f, err := sc.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("board %s: sftp %s: %w", c.b.Name, remote, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return sc.Chmod(remote, mode)
}

func (c *conn) unit() string { return "sedna-edge-" + c.b.Name }

// hasSystemd says whether the board runs systemd and the user may
// install units (root); asked once per connection.
func (c *conn) hasSystemd() bool {
	if c.systemd == nil {
		out, err := c.run("test -d /run/systemd/system && command -v systemctl >/dev/null && id -u")
		has := err == nil && strings.TrimSpace(out) == "0"
		c.systemd = &has
	}
	return *c.systemd
}

// unitFile is the systemd unit that runs the board's agent by cmd, with
// the board's limits.
func unitFile(b *Board, cmd string) string {
	var limits string
	if b.CPUPercent > 0 {
		limits += fmt.Sprintf("CPUQuota=%d%%\n", b.CPUPercent)
	}
	if b.MemoryMiB > 0 {
		limits += fmt.Sprintf("MemoryMax=%dM\n", b.MemoryMiB)
	}
	// systemd expands $ and % in ExecStart: doubled, they pass as is.
	shell := strings.NewReplacer("$", "$$", "%", "%%").Replace(agentShell(b.DataDir, cmd))
	return fmt.Sprintf("[Unit]\nDescription=Sedna-Go edge agent %s (sedna hil)\nAfter=network-online.target\n\n[Service]\n"+
		"ExecStart=/bin/sh -c '%s'\nRestart=always\nRestartSec=1\n%s\n[Install]\nWantedBy=multi-user.target\n",
		b.Name, shell, limits)
}

func (c *conn) startSystemd(cmd string) error {
	if err := c.writeFile("/etc/systemd/system/"+c.unit()+".service", []byte(unitFile(c.b, cmd)), 0o644); err != nil {
		return err
	}
	_, err := c.run("systemctl daemon-reload && systemctl enable --now " + c.unit())
	return err
}

// startProcess starts the agent under a supervisor script that restarts
// it when it exits, detached from the SSH session.
func (c *conn) startProcess(cmd string) error {
	dir := c.b.DataDir
	limit := ""
	if c.b.MemoryMiB > 0 {
		limit = fmt.Sprintf("ulimit -v %d\n", c.b.MemoryMiB*1024)
	}
	script := fmt.Sprintf("#!/bin/sh\n# Written by sedna hil: runs the edge agent, restarted when it exits.\n%secho $$ > %s/supervisor.pid\n"+
		"while :; do\n  sh -c '%s' &\n  wait $!\n  echo \"sedna hil: the agent exited ($?); restarting in 1 s\" >> %s/edge.log\n  sleep 1\ndone\n",
		limit, dir, agentShell(dir, cmd), dir)
	if err := c.writeFile(path.Join(dir, "run.sh"), []byte(script), 0o700); err != nil {
		return err
	}
	// The supervisor holds none of the session's descriptors, or the
	// session would wait for it.
	_, err := c.run(fmt.Sprintf("setsid -f sh %s/run.sh > /dev/null 2>&1 < /dev/null", dir))
	return err
}

// stop stops the board's agent, however it runs (nothing when none does).
func (c *conn) stop() error {
	dir := c.b.DataDir
	if c.hasSystemd() {
		if _, err := c.run("systemctl disable --now " + c.unit() + " 2>/dev/null; rm -f /etc/systemd/system/" + c.unit() + ".service; systemctl daemon-reload"); err != nil {
			return err
		}
	}
	_, err := c.run(fmt.Sprintf("for f in supervisor agent; do if [ -f %s/$f.pid ]; then kill $(cat %s/$f.pid) 2>/dev/null; rm -f %s/$f.pid; fi; done; true",
		dir, dir, dir))
	return err
}

// Clean stops the board's agent and removes its directory.
func Clean(ctx context.Context, b *Board, trustNew bool) error {
	c, err := dial(ctx, b, trustNew)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.stop(); err != nil {
		return err
	}
	_, err = c.run("rm -rf " + b.DataDir)
	return err
}
