package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `sedna hil` refuses what it cannot act on before any SSH connection: a
// missing inventory flag, an inventory that does not validate, a board it
// does not list, a deploy without the cloud it should join, a --bin that is
// not ARCH=PATH.
func TestHILRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "boards.yaml")
	if err := os.WriteFile(inv, []byte("boards:\n  - {name: pi-1, arch: armv7, address: 127.0.0.1:1, user: pi, keyFile: k, knownHosts: kh, dataDir: /tmp/pi-1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("boards: [{name: pi-1, arch: sparc}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"hil", "clean"}, `"inventory" not set`},
		{[]string{"hil", "clean", "--inventory", bad}, `arch "sparc"`},
		{[]string{"hil", "clean", "--inventory", inv, "--board", "pi-9"}, "--board pi-9: not in"},
		{[]string{"hil", "deploy", "--inventory", inv}, "give --cloud"},
		{[]string{"hil", "deploy", "--inventory", inv, "--cloud", "tcp://127.0.0.1:1", "--password-file", pw, "--bin", "armv7"}, "--bin armv7: want ARCH=PATH"},
	} {
		_, stderr, err := runSednaErr(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error()+stderr, c.want) {
			t.Errorf("sedna %s: %v %s, want %q", strings.Join(c.args, " "), err, stderr, c.want)
		}
	}
}
