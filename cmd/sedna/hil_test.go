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
// not ARCH=PATH; a run without a scenario, or with one whose node count is
// not the inventory's, that runs the simulator's own nodes, or that moves
// a board's clock; a report that is not one, or a chart format not drawn.
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
	scenario := func(name, body string) string {
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte("name: "+name+"\nduration: 1s\ndevices: [{kind: sensor, rate: 1}]\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	three := scenario("three", "nodes: {count: 3}\n")
	sub := scenario("sub", "nodes: {count: 1, subprocess: 1}\n")
	clock := scenario("clock", "nodes: {count: 1}\nfaults: [{at: 0s, nodes: [all], action: clockSkew, value: 1h}]\n")
	notReport := filepath.Join(dir, "report.json")
	if err := os.WriteFile(notReport, []byte(`{"scenario": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"hil", "run", "--inventory", inv}, "give --scenario"},
		{[]string{"hil", "run", "--inventory", inv, "--scenario", three, "--out", dir}, "nodes.count is 3, the inventory has 1 boards"},
		{[]string{"hil", "run", "--inventory", inv, "--scenario", sub, "--out", dir}, "on boards the inventory says it"},
		{[]string{"hil", "run", "--inventory", inv, "--scenario", clock, "--out", dir}, "clockSkew: not on boards"},
		{[]string{"hil", "report", filepath.Join(dir, "none.json")}, "no such file"},
		{[]string{"hil", "report", notReport}, "not a sedna hil report"},
		{[]string{"hil", "report", "../../docs/hil-example/report.json", "--format", "gif", "--out", dir}, `--format "gif": want svg or png`},
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

// The committed three-board report (docs/hil-example) is what `sedna hil
// report` writes from its JSON today: its Markdown is regenerated equal,
// and its chart is an SVG of the three boards.
func TestHILReportOfTheCommittedExample(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, err := runSednaErr(t, "", "hil", "report", "../../docs/hil-example/report.json", "--out", dir); err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../docs/hil-example/report.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("docs/hil-example/report.md is not what sedna hil report writes now: run it again\n%s", got)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "chart.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"arm64-emulated", "armv7-emulated", "amd64-native"} {
		if !strings.Contains(string(svg), b) {
			t.Errorf("the chart has no line for %s", b)
		}
	}
}
