package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/access"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sedna-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// The cloud broker serves TLS and WebSocket listeners beside TCP, with the
// same authentication.
func TestTLSAndWebSocketListeners(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	srv, err := NewServer(Config{Role: access.RoleCloud, Credentials: testCredentials(t), Logger: quietLogger(),
		Listen: "127.0.0.1:0", WebSocket: "127.0.0.1:0",
		TLS: TLSConfig{Listen: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tlsConf := func(o *paho.ClientOptions) { o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}) }
	for i, url := range []string{"ssl://" + srv.Addr("tls"), "ws://" + srv.Addr("ws")} {
		// A client ID of its own per listener: the same ID would take the
		// first client's session over while it is still connected.
		c := dial(t, url, fmt.Sprintf("c%d", i), "app", tlsConf)
		got := make(chan string, 1)
		if tok := c.Subscribe("x/y", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: subscribe: %v", url, tok.Error())
		}
		if tok := c.Publish("x/y", 1, false, []byte(url)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: %v", url, tok.Error())
		}
		select {
		case p := <-got:
			if p != url {
				t.Fatalf("%s: got %q", url, p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no delivery", url)
		}
		if _, err := tryDial(url, "anon", "", tlsConf); err == nil {
			t.Errorf("%s: anonymous client accepted", url)
		}
	}
	// A client that does not trust the certificate cannot connect.
	if _, err := tryDial("ssl://"+srv.Addr("tls"), "untrusting", "app"); err == nil {
		t.Error("TLS connection without trusting the certificate succeeded")
	}
	bad, err := NewServer(Config{Role: access.RoleCloud, Credentials: testCredentials(t), Listen: "127.0.0.1:0", Logger: quietLogger(),
		TLS: TLSConfig{Listen: "127.0.0.1:0", CertFile: "/nonexistent", KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(); err == nil {
		t.Error("a TLS listener with a missing certificate started")
	}
	_ = bad.Close()
}
