// Package brokertest holds what the tests of the broker and its parts (the
// bridge, the cloud's link) share: MQTT clients, users with one password,
// a store, a certificate. It imports no broker package, so package
// broker's own tests use it too; servertest starts a broker.
package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/store"
)

// Password is the password of every user of Credentials.
const Password = "pw"

// QuietLogger discards the log, unless SEDNA_TEST_LOG is set.
func QuietLogger() *slog.Logger {
	if os.Getenv("SEDNA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Credentials are the users node-a and node-b (nodes), app (an operator)
// and admin, all with Password.
func Credentials(t testing.TB) *access.Credentials {
	h, _ := bcrypt.GenerateFromPassword([]byte(Password), bcrypt.MinCost)
	c, err := access.NewCredentials(
		access.User{Username: "node-a", PasswordHash: string(h), Role: access.UserNode},
		access.User{Username: "node-b", PasswordHash: string(h), Role: access.UserNode},
		access.User{Username: "app", PasswordHash: string(h), Role: access.UserOperator},
		access.User{Username: "admin", PasswordHash: string(h), Role: access.UserAdmin},
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// OpenStore opens a Badger store in dir, without its value log GC.
func OpenStore(t testing.TB, dir string) *store.Badger {
	t.Helper()
	s, err := store.OpenBadger(store.Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Dial connects a clean-session client to url as user (with Password; ""
// is anonymous), disconnected when the test ends.
func Dial(t testing.TB, url, id, user string, configure ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := TryDial(url, id, user, configure...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

// TryDial is Dial that returns its error.
func TryDial(url, id, user string, configure ...func(*paho.ClientOptions)) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).SetConnectTimeout(5 * time.Second)
	if user != "" {
		o.SetPassword(Password)
	}
	for _, f := range configure {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s: timeout", url)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	return c, nil
}

// SelfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func SelfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
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

// Server is what Serve starts: a broker.
type Server interface {
	Start() error
	Close() error
}

// Serve makes a server with open, starts it and closes it when the test
// ends.
func Serve[S Server](t testing.TB, open func() (S, error)) S {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
