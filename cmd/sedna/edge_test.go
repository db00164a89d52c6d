package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker/access"
)

// TestEdgeFailFast: `sedna edge --fail-fast` exits non-zero at start when
// the cloud refuses its credentials at the first attempt, saying so and
// what to check.
func TestEdgeFailFast(t *testing.T) {
	m := cloudWithUsers(t, map[string]access.UserRole{"edge1": access.UserNode})
	t.Setenv("SEDNA_PASSWORD", "wrong")
	done := make(chan error, 1)
	go func() {
		_, _, err := runSednaErr(t, "", "edge", "--node", "edge1", "--fail-fast", "--cloud", m.BrokerURL(),
			"--data", filepath.Join(t.TempDir(), "edge1"), "--listen", "127.0.0.1:0", "--metrics", "off")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "--fail-fast") || !strings.Contains(err.Error(), `refused user "edge1"`) ||
			!strings.Contains(err.Error(), "SEDNA_PASSWORD") {
			t.Fatalf("sedna edge --fail-fast with a wrong password: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sedna edge --fail-fast with a wrong password did not exit")
	}
}
