package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
)

// runSednaErr runs the CLI with stdin, returning what it wrote to stdout
// and to stderr.
func runSednaErr(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append(args, "--log-level", "error"))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

const typoJob = `apiVersion: sedna.io/v1alpha1
kind: Dataset
metadata: {name: typo}
spec: {url: /data/a.txt, format: txt, nodeName: edge1, nodename: edge2}
`

// TestApplyFromStdinWarnsOfUnknownFields: `apply -f -` reads standard
// input; a field Sedna's CRDs do not define is named in a warning and the
// command exits 0; with --strict it is an error and nothing is applied; a
// kind Sedna defines but Sedna-Go does not run is refused in one line.
func TestApplyFromStdinWarnsOfUnknownFields(t *testing.T) {
	m := cloudWithUsers(t, map[string]access.UserRole{"ops": access.UserOperator})
	conn := []string{"--cloud", m.BrokerURL(), "--username", "ops", "--password", "pw"}

	out, errOut, err := runSednaErr(t, strings.Replace(typoJob, "typo", "strict", 1), append([]string{"apply", "-f", "-", "--strict"}, conn...)...)
	if err == nil || !strings.Contains(err.Error(), `stdin#1: unknown field "spec.nodename"`) || strings.Contains(out, "created") {
		t.Fatalf("--strict: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = runSednaErr(t, typoJob, append([]string{"apply", "-f", "-"}, conn...)...)
	if err != nil || !strings.Contains(out, "Dataset/default/typo created") ||
		!strings.Contains(errOut, `Warning: Dataset/default/typo: unknown field "spec.nodename"`) {
		t.Fatalf("apply from stdin: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	out, _, err = runSednaErr(t, "", append([]string{"get", "datasets"}, conn...)...)
	if err != nil || strings.Contains(out, "strict") || !strings.Contains(out, "typo") {
		t.Fatalf("get after --strict: %v\n%s", err, out)
	}
	_, _, err = runSednaErr(t, "apiVersion: sedna.io/v1alpha1\nkind: ReidJob\nmetadata: {name: r}\nspec: {}\n", append([]string{"apply", "-f", "-"}, conn...)...)
	if err == nil || !strings.Contains(err.Error(), "ReidJob is a Sedna kind that Sedna-Go does not run yet (it runs Dataset, Model,") {
		t.Fatalf("ReidJob: %v", err)
	}
}

// TestCloudNameFlag: `sedna cloud --name` sets the cloud's node name over
// the config file's; a name that is not a valid node name is refused.
func TestCloudNameFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cloud.yaml")
	if err := os.WriteFile(file, []byte("name: from-file\ndataDir: /tmp/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
		err  string
	}{
		{args: nil, want: "from-file"},
		{args: []string{"--name", "gpu-cloud"}, want: "gpu-cloud"},
		{args: []string{"--name", "bad name!"}, err: "--name:"},
	} {
		cmd := newCloudCmd(&globals{})
		if err := cmd.ParseFlags(append([]string{"--config", file}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		name, _ := cmd.Flags().GetString("name")
		cfg, err := cloudConfig(cmd, file, cloud.Config{Name: name}, "")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || cfg.Name != tc.want || cfg.DataDir != "/tmp/x" {
			t.Errorf("%v: %+v %v, want name %s", tc.args, cfg, err, tc.want)
		}
	}
}
