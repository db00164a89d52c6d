package edge

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker/pki"
)

// A certificate is renewed when two thirds of its life from its signing
// have passed: its backdating is not counted (a 6 s certificate is
// renewed at 4 s, not at once).
func TestRenewAt(t *testing.T) {
	signed := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		ttl, want time.Duration
	}{{6 * time.Second, 4 * time.Second}, {90 * 24 * time.Hour, 60 * 24 * time.Hour}, {30 * time.Second, 20 * time.Second}} {
		cert := &x509.Certificate{NotBefore: signed.Add(-pki.Backdate), NotAfter: signed.Add(c.ttl)}
		if got := RenewAt(cert).Sub(signed); got != c.want {
			t.Errorf("a certificate of %v: renewed %v after its signing, want %v", c.ttl, got, c.want)
		}
	}
}
