package edge

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/cloud/join"
)

// IdentityDir is where a node keeps the identity it joined with, in its
// data directory.
const IdentityDir = "identity"

// ErrNoIdentity is LoadIdentity's error for a node that has not joined.
var ErrNoIdentity = errors.New("edge: this node has not joined a cloud (sedna edge --join TOKEN --cloud HOST:PORT)")

// Identity is a node's identity from joining a cloud with a token: its
// name, its key and certificate, the cloud's CA, where the cloud broker's
// mutual-TLS listener is and where to renew. Its certificate is renewed
// before it expires (Renew, RenewLoop); the bridge's TLS configuration
// (TLS) presents the newest on each connection.
type Identity struct {
	dir string
	// Node is the node's name; BrokerURL the cloud broker (ssl://); Join
	// the cloud's join listener (HOST:PORT).
	Node, BrokerURL, Join string

	ca   *x509.CertPool
	seal *ecdh.PrivateKey // opens the secrets the cloud seals for the node
	mu   sync.Mutex
	cert *tls.Certificate
}

// identityFile is the identity's settings.
type identityFile struct {
	Node   string `json:"node"`
	Broker string `json:"broker"`
	Join   string `json:"join"`
}

// Join asks the cloud's join listener at cloud (HOST:PORT) for this node's
// identity with token, checking the cloud by the CA fingerprint the token
// carries, and keeps it in dataDir/identity: the key made here (it never
// leaves the node), the certificate, the CA and the settings.
func Join(ctx context.Context, cloud, token, dataDir string) (*Identity, error) {
	_, _, pin, err := join.ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("edge: join: %w", err)
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.CSR(key, "")
	if err != nil {
		return nil, err
	}
	seal, err := pki.NewSealKey()
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, VerifyPeerCertificate: pki.VerifyPinned(pin), MinVersion: tls.VersionTLS12}}}
	rep, err := post(ctx, client, "https://"+cloud+join.JoinPath, join.Request{Token: token, CSR: string(csr), SealKey: seal.PublicKey().Bytes()})
	if err != nil {
		return nil, fmt.Errorf("edge: join %s: %w", cloud, err)
	}
	dir := filepath.Join(dataDir, IdentityDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	keyPEM, err := pki.MarshalKey(key)
	if err != nil {
		return nil, err
	}
	broker := rep.Broker
	if broker == "" {
		host, _, err := net.SplitHostPort(cloud)
		if err != nil {
			return nil, fmt.Errorf("edge: join: the cloud's address %q: %w", cloud, err)
		}
		broker = "ssl://" + net.JoinHostPort(host, rep.TLSPort)
	}
	settings, _ := json.MarshalIndent(identityFile{Node: rep.Node, Broker: broker, Join: cloud}, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"node.key", keyPEM, 0o600}, {"seal.key", seal.Bytes(), 0o600}, {"node.crt", []byte(rep.Cert), 0o644}, {"ca.crt", []byte(rep.CA), 0o644},
		{"identity.json", settings, 0o644}} {
		if err := pki.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return LoadIdentity(dataDir)
}

// LoadIdentity reads the identity a node joined with (ErrNoIdentity when
// it has not).
func LoadIdentity(dataDir string) (*Identity, error) {
	dir := filepath.Join(dataDir, IdentityDir)
	raw, err := os.ReadFile(filepath.Join(dir, "identity.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoIdentity
	}
	if err != nil {
		return nil, err
	}
	var f identityFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("edge: %s: %w", filepath.Join(dir, "identity.json"), err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("edge: %s: no certificate", filepath.Join(dir, "ca.crt"))
	}
	sealRaw, err := os.ReadFile(filepath.Join(dir, "seal.key"))
	if err != nil {
		return nil, fmt.Errorf("edge: the node's key for secrets: %w", err)
	}
	seal, err := pki.ParseSealKey(sealRaw)
	if err != nil {
		return nil, fmt.Errorf("edge: %s: %w", filepath.Join(dir, "seal.key"), err)
	}
	id := &Identity{dir: dir, Node: f.Node, BrokerURL: f.Broker, Join: f.Join, ca: pool, seal: seal}
	if err := id.load(); err != nil {
		return nil, err
	}
	return id, nil
}

func (id *Identity) load() error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(id.dir, "node.crt"), filepath.Join(id.dir, "node.key"))
	if err != nil {
		return fmt.Errorf("edge: the node's certificate: %w", err)
	}
	id.mu.Lock()
	id.cert = &cert
	id.mu.Unlock()
	return nil
}

// Certificate is the node's current certificate.
func (id *Identity) Certificate() *x509.Certificate {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.cert.Leaf
}

// TLS is the configuration of a connection to the cloud at serverName: the
// cloud's CA, and the node's newest certificate at each handshake.
func (id *Identity) TLS(serverName string) *tls.Config {
	return &tls.Config{RootCAs: id.ca, ServerName: serverName, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			id.mu.Lock()
			defer id.mu.Unlock()
			return id.cert, nil
		}}
}

// Renew asks the cloud for a new certificate of a new key, authenticated
// by the current one, and keeps it: the key and certificate files are
// replaced, and the next connection presents it.
func (id *Identity) Renew(ctx context.Context) error {
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.CSR(key, id.Node)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(id.Join)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: id.TLS(host)}}
	defer client.CloseIdleConnections()
	rep, err := post(ctx, client, "https://"+id.Join+join.RenewPath, join.Request{CSR: string(csr)})
	if err != nil {
		return fmt.Errorf("edge: renew the node's certificate: %w", err)
	}
	keyPEM, err := pki.MarshalKey(key)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair([]byte(rep.Cert), keyPEM)
	if err != nil {
		return fmt.Errorf("edge: the renewed certificate: %w", err)
	}
	// The key first: a crash between the two leaves the old pair's
	// certificate with the new key, which LoadIdentity refuses loudly,
	// rather than a pair that silently fails the handshake; the cert is
	// written second so that the common case (both) is whole.
	if err := pki.WriteFile(filepath.Join(id.dir, "node.key"), keyPEM, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(id.dir, "node.crt"), []byte(rep.Cert), 0o644); err != nil {
		return err
	}
	id.mu.Lock()
	id.cert = &cert
	id.mu.Unlock()
	return nil
}

// SecretEnv opens the secret ns/name the cloud sealed for this node and
// gives its keys as environment entries (KEY=VALUE).
func (id *Identity) SecretEnv(ns, name string, box []byte) ([]string, error) {
	plain, err := pki.Open(id.seal, box, pki.NodeSecretAAD(id.Node, ns, name))
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return pki.SecretEnv(plain)
}

// RenewAt is when a certificate is renewed: when two thirds of its life
// have passed, its life counted from its signing (its NotBefore is
// backdated by pki.Backdate).
func RenewAt(cert *x509.Certificate) time.Time {
	signed := cert.NotBefore
	if cert.NotAfter.Sub(signed) > pki.Backdate {
		signed = signed.Add(pki.Backdate)
	}
	return cert.NotAfter.Add(-cert.NotAfter.Sub(signed) / 3)
}

// RenewLoop renews the node's certificate when RenewAt says, until ctx
// ends; a failed renewal is logged and tried again after a tenth of what
// is left of the certificate's life (at least a second, at most a minute).
func (id *Identity) RenewLoop(ctx context.Context, log *slog.Logger) {
	for {
		cert := id.Certificate()
		wait := time.Until(RenewAt(cert))
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if err := id.Renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			retry := min(max(time.Until(cert.NotAfter)/10, time.Second), time.Minute)
			log.Warn("the node's certificate not renewed; trying again", "error", err, "expires", cert.NotAfter.Format(time.RFC3339), "retry", retry)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			continue
		}
		next := id.Certificate()
		log.Info("the node's certificate renewed", "serial", next.SerialNumber.Text(16), "expires", next.NotAfter.Format(time.RFC3339))
	}
}

// post sends req as JSON and reads the cloud's Reply; a refusal is the
// cloud's reason.
func post(ctx context.Context, client *http.Client, url string, req join.Request) (join.Reply, error) {
	body, _ := json.Marshal(req)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return join.Reply{}, err
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(r)
	if err != nil {
		return join.Reply{}, unwrapURLError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return join.Reply{}, err
	}
	var rep join.Reply
	if err := json.Unmarshal(raw, &rep); err != nil {
		return join.Reply{}, fmt.Errorf("the cloud answered %s, not a join reply", resp.Status)
	}
	if rep.Error != "" || resp.StatusCode != http.StatusOK {
		return join.Reply{}, fmt.Errorf("refused by the cloud: %s", rep.Error)
	}
	return rep, nil
}

// unwrapURLError drops net/http's "Post URL:" wrapping of a transport
// error, to keep the reason in one short line.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
