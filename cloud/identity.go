package cloud

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/cloud/join"
	"github.com/sedna-go/sedna/topics"
)

// IdentityConfig configures nodes' identities (docs/SECURITY.md, "Nodes'
// identities"): the cloud's CA, the embedded broker's mutual-TLS listener
// where nodes bridge with their certificates, and the join listener
// where they get them with a token.
type IdentityConfig struct {
	// TLSListen is the address of the mutual-TLS listener ("" or "off":
	// none; `sedna cloud` listens on :8883 unless told otherwise). Clients
	// without a certificate log in there by password, over TLS.
	TLSListen string `json:"tlsListen,omitempty"`
	// JoinListen is the address of the join listener, HTTPS ("" or
	// "off": none; `sedna cloud`: :10002).
	JoinListen string `json:"joinListen,omitempty"`
	// CADir holds the CA (ca.crt, ca.key), made there on the first start
	// unless the operator's is; default {dataDir}/pki.
	CADir string `json:"caDir,omitempty"`
	// Hosts are the names and addresses nodes reach the cloud by, beside
	// localhost, the host's name and its interfaces' addresses: the
	// server certificate is for all of them.
	Hosts []string `json:"hosts,omitempty"`
	// NodeCertTTL is how long a node's certificate is valid (default 90
	// days); a node renews it when two thirds have passed.
	NodeCertTTL broker.Duration `json:"nodeCertTTL,omitempty"`
	// Broker is the mutual-TLS URL joining nodes are given; default
	// ssl://{the host they joined by}:{TLSListen's port}.
	Broker string `json:"broker,omitempty"`
}

func (c IdentityConfig) on() bool {
	return (c.TLSListen != "" && c.TLSListen != "off") || (c.JoinListen != "" && c.JoinListen != "off")
}

// identity is the cloud's side of nodes' identities.
type identity struct {
	ca   *pki.CA
	join *join.Service
	mu   sync.Mutex
	cert *tls.Certificate // the server certificate, renewed before it expires
	host []string
	log  func(msg string, args ...any)
}

// serverCertTTL is the life of the cloud's server certificate; it is
// made again at start and when a third is left.
const serverCertTTL = 365 * 24 * time.Hour

// startIdentity loads (or makes) the CA, makes the server certificate,
// gives the broker its mutual-TLS listener and the credentials their
// certificate check, and starts the join listener.
func (m *Manager) startIdentity(creds *access.Credentials) error {
	c := m.cfg.Identity
	dir := c.CADir
	if dir == "" {
		dir = filepath.Join(m.cfg.DataDir, "pki")
	}
	ca, created, err := pki.LoadOrCreateCA(dir, "sedna cloud CA")
	if err != nil {
		return err
	}
	if created {
		m.log.Info("cloud CA created", "dir", dir, "pin", ca.Pin())
	}
	id := &identity{ca: ca, host: serverHosts(c.Hosts), log: m.log.Warn}
	if err := id.renewServerCert(); err != nil {
		return err
	}
	tlsPort := ""
	if c.TLSListen != "" && c.TLSListen != "off" {
		if m.cfg.Broker.TLS.Listen != "" {
			return errors.New("cloud: identity.tlsListen and broker.tls.listen are two TLS listeners: give one")
		}
		_, tlsPort, err = net.SplitHostPort(c.TLSListen)
		if err != nil {
			return fmt.Errorf("cloud: identity.tlsListen %q: %w", c.TLSListen, err)
		}
		m.cfg.Broker.TLS = broker.TLSConfig{Listen: c.TLSListen, Config: &tls.Config{GetCertificate: id.certificate,
			ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}}
	}
	m.identity = id
	id.join, err = join.New(join.Config{CA: ca, Store: m.store, CertTTL: time.Duration(c.NodeCertTTL), Broker: c.Broker, TLSPort: tlsPort,
		Logger: m.log, Kick: func(node string) {
			if m.srv != nil {
				m.srv.Disconnect(access.BridgeClientID(node), errors.New("node revoked"))
			}
		}})
	if err != nil {
		return err
	}
	creds.Certs = &access.CertAuth{NodeOf: pki.NodeOf, Refused: id.join.Refused}
	return nil
}

// listenJoin starts the join listener once the broker listens (its TLS
// port is known then, for a tlsListen of port 0).
func (m *Manager) listenJoin() error {
	c := m.cfg.Identity
	if m.identity == nil || c.JoinListen == "" || c.JoinListen == "off" {
		return nil
	}
	if tls := m.TLSAddr(); tls != "" {
		_, port, _ := net.SplitHostPort(tls)
		m.identity.join.SetTLSPort(port)
	}
	addr, err := m.identity.join.Listen(c.JoinListen, m.identity.certificate)
	if err != nil {
		return err
	}
	m.joinAddr = addr.String()
	m.log.Info("join listener started", "addr", m.joinAddr)
	return nil
}

// JoinAddr is the join listener's address ("" when none).
func (m *Manager) JoinAddr() string { return m.joinAddr }

// TLSAddr is the mutual-TLS listener's address ("" when none).
func (m *Manager) TLSAddr() string {
	if m.srv == nil || m.cfg.Broker.TLS.Listen == "" {
		return ""
	}
	return m.srv.Addr("tls")
}

// CA is the cloud's CA (nil without IdentityConfig).
func (m *Manager) CA() *pki.CA {
	if m.identity == nil {
		return nil
	}
	return m.identity.ca
}

func (id *identity) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	id.mu.Lock()
	cert := id.cert
	id.mu.Unlock()
	if time.Until(cert.Leaf.NotAfter) < serverCertTTL/3 {
		if err := id.renewServerCert(); err != nil {
			id.log("the cloud's server certificate not renewed", "error", err)
		}
		id.mu.Lock()
		cert = id.cert
		id.mu.Unlock()
	}
	return cert, nil
}

func (id *identity) renewServerCert() error {
	cert, err := id.ca.ServerCert(id.host, serverCertTTL)
	if err != nil {
		return err
	}
	id.mu.Lock()
	id.cert = &cert
	id.mu.Unlock()
	return nil
}

// serverHosts are the names the server certificate is for: localhost,
// the host's name, its interfaces' addresses and extra.
func serverHosts(extra []string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				hosts = append(hosts, n.IP.String())
			}
		}
	}
	hosts = append(hosts, extra...)
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// Identity operations of the control plane (admin only).
const (
	OpTokenCreate = "token.create"
	OpTokenList   = "token.list"
	OpTokenRevoke = "token.revoke"
	OpNodeRevoke  = "node.revoke"
)

// TokenRequest is the body of OpTokenCreate (Node, TTL), OpTokenRevoke
// (ID) and OpNodeRevoke (Node).
type TokenRequest struct {
	Node string `json:"node,omitempty"`
	TTL  string `json:"ttl,omitempty"`
	ID   string `json:"id,omitempty"`
}

// TokenReply answers them: a new token's text (shown once) and record,
// the tokens, the certificates a node revocation refused.
type TokenReply struct {
	Token   string       `json:"token,omitempty"`
	Created *join.Token  `json:"created,omitempty"`
	Tokens  []join.Token `json:"tokens,omitempty"`
	Revoked int          `json:"revoked,omitempty"`
}

// identityOp serves an identity operation.
func (m *Manager) identityOp(op string, body []byte) ([]byte, error) {
	if m.identity == nil {
		return nil, errors.New("this cloud gives nodes no identities: start it with a join listener (--join-listen) and a mutual-TLS listener (--tls-listen)")
	}
	var req TokenRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	svc := m.identity.join
	var rep TokenReply
	switch op {
	case OpTokenCreate:
		ttl := 24 * time.Hour
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("--ttl %q: want a duration such as 1h or 30m", req.TTL)
			}
			ttl = d
		}
		if err := topics.ValidateName("node", req.Node); err != nil {
			return nil, fmt.Errorf("--node: %w", err)
		}
		text, t, err := svc.CreateToken(req.Node, ttl)
		if err != nil {
			return nil, err
		}
		rep.Token, rep.Created = text, &t
	case OpTokenList:
		ts, err := svc.Tokens()
		if err != nil {
			return nil, err
		}
		rep.Tokens = ts
	case OpTokenRevoke:
		if err := svc.RevokeToken(req.ID); err != nil {
			return nil, err
		}
	case OpNodeRevoke:
		n, err := svc.RevokeNode(req.Node)
		if err != nil {
			return nil, err
		}
		rep.Revoked = n
	default:
		return nil, fmt.Errorf("unknown operation %q", op)
	}
	return json.Marshal(rep)
}
