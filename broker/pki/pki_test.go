package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A CA made on the first start is the one read on the next; a key that
// is not the certificate's is refused.
func TestCAIsMadeOnceAndReadAfter(t *testing.T) {
	dir := t.TempDir()
	ca, created, err := LoadOrCreateCA(dir, "test CA")
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the CA's key file: %v %v", fi.Mode(), err)
	}
	again, created, err := LoadOrCreateCA(dir, "test CA")
	if err != nil || created || again.Pin() != ca.Pin() {
		t.Fatalf("second start: created %v, pin %s (was %s), %v", created, again.Pin(), ca.Pin(), err)
	}
	other, _ := NewCA("other", time.Hour)
	key, _ := MarshalKey(other.Key)
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateCA(dir, "test CA"); err == nil || !strings.Contains(err.Error(), "is not the key of") {
		t.Fatalf("a key of another CA: %v", err)
	}
}

// A node's certificate names the node the CA says, whatever the request
// says, verifies against the CA for client authentication, and NodeOf
// reads the node back; a server certificate is no node's.
func TestNodeCertificates(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NewKey()
	csr, _ := CSR(key, "someone-else")
	certPEM, cert, err := ca.SignNode(csr, "edge-7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := NodeOf(cert); got != "edge-7" {
		t.Errorf("NodeOf: %q", got)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the node's certificate does not verify: %v", err)
	}
	keyPEM, _ := MarshalKey(key)
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("the certificate is not of the request's key: %v", err)
	}
	srv, err := ca.ServerCert([]string{"cloud.example", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if NodeOf(srv.Leaf) != "" {
		t.Error("a server certificate read as a node's")
	}
	if err := srv.Leaf.VerifyHostname("cloud.example"); err != nil {
		t.Error(err)
	}
	for _, c := range []struct{ name, node, csr, want string }{
		{"not PEM", "edge-1", "junk", "not a PEM certificate request"},
		{"bad node name", "edge/1", string(csr), "node"},
	} {
		if _, _, err := ca.SignNode([]byte(c.csr), c.node, time.Hour); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// A node that has no CA yet checks the cloud by the pin: the cloud's own
// chain passes, another CA's is refused naming both.
func TestVerifyPinned(t *testing.T) {
	ca, _ := NewCA("test CA", time.Hour)
	other, _ := NewCA("other CA", time.Hour)
	srv, _ := ca.ServerCert([]string{"127.0.0.1"}, time.Hour)
	if err := VerifyPinned(ca.Pin())(srv.Certificate, nil); err != nil {
		t.Errorf("the cloud's own chain: %v", err)
	}
	if err := VerifyPinned(other.Pin())(srv.Certificate, nil); err == nil || !strings.Contains(err.Error(), "not the cloud that made the token") {
		t.Errorf("another CA's pin: %v", err)
	}
	forged, _ := other.ServerCert([]string{"127.0.0.1"}, time.Hour)
	chain := [][]byte{forged.Certificate[0], ca.Cert.Raw} // the right CA, a leaf it did not sign
	if err := VerifyPinned(ca.Pin())(chain, nil); err == nil {
		t.Error("a leaf the pinned CA did not sign passed")
	}
	if err := VerifyPinned(ca.Pin())(srv.Certificate[:1], nil); err == nil {
		t.Error("a chain without its CA passed")
	}
}
