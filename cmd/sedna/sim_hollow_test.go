package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sedna-go/sedna/broker/access"
)

// sim hollow with --consumer: 20 hollow nodes against a cloud manager's
// embedded broker send 5 messages each; the command's consumer reports
// every one of the 100 consumed once, none missing or duplicated, and the
// cloud tier's figures for the --pid given; held idle for a second, the
// nodes stay connected (no reconnection).
func TestSimHollowCountsWhatReachesTheCloud(t *testing.T) {
	users := map[string]access.UserRole{"ops": access.UserOperator}
	for i := range 20 {
		users[fmt.Sprintf("hollow-%04d", i)] = access.UserNode
	}
	m := cloudWithUsers(t, users)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SEDNA_CONSUMER_PASSWORD", "pw")
	out, err := runSedna(t, "", "sim", "hollow", "--cloud", m.BrokerURL(), "--nodes", "20", "--messages", "5",
		"--password-file", pw, "--consumer", "ops", "--pid", fmt.Sprint(os.Getpid()), "--timeout", "2m", "--hold", "1s")
	if err != nil {
		t.Fatalf("sim hollow: %v\n%s", err, out)
	}
	for _, want := range []string{
		`20 hollow nodes connected in `,
		`100 messages acknowledged by the cloud in `,
		`consumed in the cloud \S+ after the first was sent: 100 of 100 once, 0 missing, 0 duplicated`,
		`the cloud tier \(1 processes\): `,
		`held 20 nodes idle for 1s: 0 reconnections, \d+ status requests answered; the cloud tier: `,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
