package hil_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/hil"
)

// An inventory file is read strictly; relative key paths are the file's
// directory's; what is wrong is said board by board.
func TestLoadInventory(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "boards.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inv, err := hil.LoadInventory(write(`boards:
  - {name: pi-1, arch: armv7, address: 10.0.0.21, user: pi, keyFile: keys/id, knownHosts: /etc/kh, dataDir: /home/pi/sedna}
`))
	if err != nil {
		t.Fatal(err)
	}
	if b := inv.Boards[0]; b.KeyFile != filepath.Join(dir, "keys/id") || b.KnownHosts != "/etc/kh" {
		t.Fatalf("paths: %+v", b)
	}
	for _, c := range []struct{ doc, want string }{
		{"boards: []", "no boards"},
		{"boards: [{name: Pi, arch: armv7, address: a, user: u, keyFile: k, knownHosts: h, dataDir: /d}]", "name"},
		{"boards: [{name: p, arch: mips, address: a, user: u, keyFile: k, knownHosts: h, dataDir: /d}]", `arch "mips"`},
		{"boards: [{name: p, arch: arm64, user: u, keyFile: k, knownHosts: h, dataDir: /d}]", "address, user, keyFile and knownHosts"},
		{"boards: [{name: p, arch: arm64, address: a, user: u, keyFile: k, knownHosts: h, dataDir: relative}]", "dataDir"},
		{"boards: [{name: p, arch: arm64, address: a, user: u, keyFile: k, knownHosts: h, dataDir: '/d; rm -rf /'}]", "dataDir"},
		{"boards: [{name: p, arch: arm64, address: a, user: u, keyFile: k, knownHosts: h, dataDir: /d, emulator: 'qemu-arm; x'}]", "emulator"},
		{"boards: [{name: p, arch: arm64, address: a, user: u, keyFile: k, knownHosts: h, dataDir: /d, colour: red}]", "unknown field"},
	} {
		_, err := hil.LoadInventory(write(c.doc))
		if !errors.Is(err, hil.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q in it", c.doc, err, c.want)
		}
	}
}

// The example inventory (examples/hil/boards.yaml) is valid, its key paths
// taken from its directory.
func TestTheExampleInventoryIsValid(t *testing.T) {
	inv, err := hil.LoadInventory("../examples/hil/boards.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Boards) != 3 || inv.Boards[1].Arch != "armv7" || !strings.HasSuffix(inv.Boards[0].KeyFile, filepath.Join("examples", "hil", "keys", "id_ed25519")) {
		t.Fatalf("%+v", inv.Boards)
	}
}
