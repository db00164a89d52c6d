// Package pki is the fleet's certificate authority: the cloud's CA, made
// on its first start (or the operator's), which signs the cloud broker's
// server certificate and each node's client certificate, the node's
// identity on the mutual-TLS link (docs/SECURITY.md, "Nodes' identities").
// A node's key never leaves it: it sends a certificate request when it
// joins and when it renews.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sedna-go/sedna/topics"
)

// NodeURIPrefix starts the URI name a node's certificate carries:
// sedna://node/NAME.
const NodeURIPrefix = "sedna://node/"

// Backdate is how far before its signing a certificate is valid from,
// for clocks a little behind the cloud's.
const Backdate = time.Minute

// Files of a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CA is a certificate authority: its certificate and key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Now is the clock of what it signs; default time.Now.
	Now func() time.Time
}

// LoadOrCreateCA reads the CA of dir (ca.crt and ca.key, PEM), or makes
// one there (an ECDSA P-256 key, ten years) when neither file exists;
// created says which. An operator's own CA is used by putting its files
// there first.
func LoadOrCreateCA(dir, name string) (ca *CA, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, errCert := os.Stat(certPath)
	_, errKey := os.Stat(keyPath)
	if errors.Is(errCert, os.ErrNotExist) && errors.Is(errKey, os.ErrNotExist) {
		ca, err := NewCA(name, 10*365*24*time.Hour)
		if err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, false, err
		}
		key, err := MarshalKey(ca.Key)
		if err != nil {
			return nil, false, err
		}
		if err := WriteFile(keyPath, key, 0o600); err != nil {
			return nil, false, err
		}
		if err := WriteFile(certPath, ca.PEM(), 0o644); err != nil {
			return nil, false, err
		}
		return ca, true, nil
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, false, fmt.Errorf("pki: the CA's certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, false, fmt.Errorf("pki: the CA's key: %w", err)
	}
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, false, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, false, fmt.Errorf("pki: %s: %w", keyPath, err)
	}
	if !cert.IsCA {
		return nil, false, fmt.Errorf("pki: %s is not a CA's certificate", certPath)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, false, fmt.Errorf("pki: %s is not the key of %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key}, false, nil
}

// NewCA makes a CA of a new key, valid for ttl.
func NewCA(name string, ttl time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"sedna"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(ttl), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

func (ca *CA) now() time.Time {
	if ca.Now != nil {
		return ca.Now()
	}
	return time.Now()
}

// PEM is the CA's certificate in PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool is a pool of the CA's certificate alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Pin is the CA's fingerprint, the SHA-256 of its certificate in hex: a
// join token carries it, so that a joining node knows the cloud before it
// has the CA.
func (ca *CA) Pin() string { return Pin(ca.Cert) }

// Pin is a certificate's SHA-256 in hex.
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ServerCert signs a server certificate for hosts (names and IP
// addresses), valid for ttl, with the CA in its chain.
func (ca *CA) ServerCert(hosts []string, ttl time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "sedna cloud", Organization: []string{"sedna"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(ttl), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// SignNode signs a node's certificate request (PEM) as node's client
// certificate, valid for ttl: the node's name as its common name and URI
// name (sedna://node/NAME), client authentication only. The request's own
// subject is ignored: the cloud, not the node, names it.
func (ca *CA) SignNode(csrPEM []byte, node string, ttl time.Duration) (certPEM []byte, cert *x509.Certificate, err error) {
	if err := topics.ValidateName("node", node); err != nil {
		return nil, nil, err
	}
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, nil, errors.New("pki: not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: the certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("pki: the certificate request's signature: %w", err)
	}
	u, _ := url.Parse(NodeURIPrefix + node)
	now := ca.now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: node, Organization: []string{"sedna nodes"}},
		NotBefore: now.Add(-Backdate), NotAfter: now.Add(ttl), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// NodeOf is the node a certificate is the identity of ("" when it is not
// a node's): its URI name sedna://node/NAME, for client authentication.
func NodeOf(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	client := false
	for _, u := range cert.ExtKeyUsage {
		client = client || u == x509.ExtKeyUsageClientAuth
	}
	if !client {
		return ""
	}
	// Read from the URL's fields, not its String: the broker asks this
	// of every message a node's connection sends or receives.
	for _, u := range cert.URIs {
		if u.Scheme != "sedna" || u.Host != "node" || u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
			continue
		}
		if name, ok := strings.CutPrefix(u.Path, "/"); ok && topics.ValidateName("node", name) == nil {
			return name
		}
	}
	return ""
}

// NewKey makes a node's key (ECDSA P-256).
func NewKey() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// CSR is a certificate request (PEM) of key for node.
func CSR(key crypto.Signer, node string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: node}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// MarshalKey is a key in PEM (PKCS #8).
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a PEM key (PKCS #8, EC or PKCS #1).
func ParseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("not a PEM key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("a key that cannot sign")
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("not a PKCS #8, EC or PKCS #1 key")
	}
	return k, nil
}

// ParseCert reads the first certificate of PEM data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// VerifyPinned checks a server's chain as a node that has no CA yet
// does: the chain's last certificate must be the CA whose Pin is pin, and
// the server's certificate signed by it for a server. It is a
// tls.Config's VerifyPeerCertificate (with InsecureSkipVerify: the name
// is not checked, the pin is).
func VerifyPinned(pin string) func(raw [][]byte, _ [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) < 2 {
			return errors.New("the cloud sent no CA with its certificate: it is not a Sedna cloud's join listener")
		}
		ca, err := x509.ParseCertificate(raw[len(raw)-1])
		if err != nil {
			return err
		}
		if got := Pin(ca); got != pin {
			return fmt.Errorf("the cloud's CA is %s, the token pins %s: not the cloud that made the token", got, pin)
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// WriteFile writes data at path whole, a temporary file renamed over it:
// a reader sees the old file or the new, never a part.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
