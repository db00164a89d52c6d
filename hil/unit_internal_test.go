package hil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The unit written for a board with systemd passes systemd-analyze verify
// (Debian's systemd), carries the board's limits, and escapes the agent's
// shell line for systemd ($$ and %% become $ and % when systemd reads it).
func TestUnitFileVerifies(t *testing.T) {
	b := &Board{Name: "pi-1", DataDir: "/var/lib/sedna-hil", CPUPercent: 50, MemoryMiB: 256}
	unit := unitFile(b, "/var/lib/sedna-hil/sedna edge --node pi-1 --data /var/lib/sedna-hil/data --cloud tcp://10.0.0.2:1884")
	for _, want := range []string{"CPUQuota=50%\n", "MemoryMax=256M\n", "echo $$$$ > /var/lib/sedna-hil/agent.pid",
		"ExecStart=/bin/sh -c 'while [ -f /var/lib/sedna-hil/hold ]", "Restart=always\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("no %q in the unit:\n%s", want, unit)
		}
	}
	path := filepath.Join(t.TempDir(), "sedna-edge-pi-1.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "sedna-edge-pi-1") {
		t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, out, unit)
	}
}
