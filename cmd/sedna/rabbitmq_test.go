package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sedna rabbitmq users prints a definitions file with the users the flags
// name (numbered nodes as sim hollow names them), each with a password
// hash and its role's permissions; without a password, or with
// --node-prefix and no --nodes, it fails saying why.
func TestRabbitMQUsersDefinitions(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runSedna(t, "", "rabbitmq", "users", "--cloud-user", "cloud", "--operator", "ops",
		"--node-prefix", "hollow", "--nodes", "3", "--first", "5", "--password-file", pw)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var defs struct {
		Users []struct {
			Name string `json:"name"`
			Hash string `json:"password_hash"`
		} `json:"users"`
		Topic []struct {
			User, Write, Read string
		} `json:"topic_permissions"`
	}
	if err := json.Unmarshal([]byte(out), &defs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var names []string
	for _, u := range defs.Users {
		names = append(names, u.Name)
		if u.Hash == "" || strings.Contains(out, "s3cret") {
			t.Errorf("%s: hash %q", u.Name, u.Hash)
		}
	}
	if want := []string{"cloud", "hollow-0005", "hollow-0006", "hollow-0007", "ops"}; !slices.Equal(names, want) {
		t.Fatalf("users %v, want %v", names, want)
	}
	if len(defs.Topic) != 5 || defs.Topic[1].User != "hollow-0005" || !strings.Contains(defs.Topic[1].Read, "down") ||
		!strings.Contains(defs.Topic[4].Write, "api") {
		t.Errorf("topic permissions %+v", defs.Topic)
	}
	t.Setenv("SEDNA_PASSWORD", "")
	if out, err := runSedna(t, "", "rabbitmq", "users", "--node", "edge1"); err == nil || !strings.Contains(err.Error()+out, "no password") {
		t.Errorf("without a password: %v\n%s", err, out)
	}
	if out, err := runSedna(t, "", "rabbitmq", "users", "--node-prefix", "h", "--password-file", pw); err == nil ||
		!strings.Contains(err.Error()+out, "--node-prefix and --nodes go together") {
		t.Errorf("a prefix without a count: %v\n%s", err, out)
	}
}
