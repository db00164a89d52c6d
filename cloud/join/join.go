// Package join is how nodes get their identities from the cloud, as
// `keadm join` gets a KubeEdge node's: an admin makes a one-time token for
// a node (`sedna token create --node NAME`); the node presents it on the
// cloud's join listener (HTTPS, whose CA the token pins) with a
// certificate request, and gets its client certificate, the CA and its
// settings. Tokens expire, are single-use and revocable; a node revoked
// (`sedna node revoke NAME`) is refused by its certificates from then on.
// A node renews its certificate on the same listener, authenticated by
// the certificate it has, before it expires.
package join

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Paths of the join listener.
const (
	JoinPath  = "/sedna/v1/join"
	RenewPath = "/sedna/v1/renew"
)

// Token is a join token as the cloud keeps it (its secret as a hash).
type Token struct {
	ID      string    `msgpack:"id" json:"id"`
	Node    string    `msgpack:"node" json:"node"`
	Created time.Time `msgpack:"created" json:"created"`
	Expires time.Time `msgpack:"expires" json:"expires"`
	// Used is when a node joined with it (zero: not yet).
	Used    time.Time `msgpack:"used,omitempty" json:"used,omitzero"`
	Revoked bool      `msgpack:"revoked,omitempty" json:"revoked,omitempty"`
	Hash    []byte    `msgpack:"hash" json:"-"`
}

// State is what a token can be used for now.
func (t Token) State(now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !t.Used.IsZero():
		return "used"
	case !now.Before(t.Expires):
		return "expired"
	}
	return "valid"
}

// issued is a certificate the cloud signed for a node.
type issued struct {
	Node    string    `msgpack:"node"`
	Serial  string    `msgpack:"serial"`
	Expires time.Time `msgpack:"expires"`
}

// Request is a node's join (JoinPath) or renewal (RenewPath) request:
// the token (join only) and a certificate request of the node's key.
type Request struct {
	Token string `json:"token,omitempty"`
	CSR   string `json:"csr"`
	// SealKey (join only) is the node's X25519 public key (32 bytes), which
	// the cloud seals the secrets it sends the node for.
	SealKey []byte `json:"sealKey,omitempty"`
}

// Reply answers a Request: the node's name, its certificate and the CA
// (PEM), and its settings: where the cloud broker's mutual-TLS listener
// is (its port; the node's host for it is the one it joined by, unless
// Broker names one). Error, when set, says why the request was refused.
type Reply struct {
	Node      string `json:"node,omitempty"`
	Cert      string `json:"cert,omitempty"`
	CA        string `json:"ca,omitempty"`
	Broker    string `json:"broker,omitempty"`
	TLSPort   string `json:"tlsPort,omitempty"`
	NotBefore string `json:"notBefore,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Config configures a Service.
type Config struct {
	CA    *pki.CA
	Store store.Store
	// CertTTL is how long a node's certificate is valid; default 90 days.
	// A node renews it when two thirds of it have passed.
	CertTTL time.Duration
	// Broker is the cloud broker's mutual-TLS URL given to joining nodes
	// (ssl://HOST:PORT); when empty, TLSPort is, and nodes use the host
	// they joined by.
	Broker, TLSPort string
	Logger          *slog.Logger
	Now             func() time.Time
	// Kick, if set, disconnects a node's bridge (it is revoked).
	Kick func(node string)
}

// Service issues and revokes nodes' identities.
type Service struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex // orders the token and revocation writes
	// revoked caches the serials of revoked certificates.
	revoked map[string]bool
	srv     *http.Server
	done    chan struct{}
}

// Store keys.
const (
	tokenPrefix   = "join/token/"
	issuedPrefix  = "join/issued/"
	revokedPrefix = "join/revoked/"
	sealPrefix    = "join/seal/"
)

// New makes the service; the revoked certificates are read from the store.
func New(cfg Config) (*Service, error) {
	if cfg.CA == nil || cfg.Store == nil {
		return nil, errors.New("join: a CA and a store are needed")
	}
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = 90 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, revoked: map[string]bool{}}
	err := cfg.Store.Scan([]byte(revokedPrefix), nil, func(k, _ []byte) error {
		s.revoked[strings.TrimPrefix(string(k), revokedPrefix)] = true
		return nil
	})
	return s, err
}

// CreateToken makes a one-time token for node, valid for ttl (default 24
// hours). The token's text, which only this call returns, is ID.SECRET.PIN:
// the CA's fingerprint lets the node check the cloud it joins.
func (s *Service) CreateToken(node string, ttl time.Duration) (string, Token, error) {
	if err := topics.ValidateName("node", node); err != nil {
		return "", Token{}, err
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	id, secret := randomHex(4), randomHex(16)
	sum := sha256.Sum256([]byte(secret))
	now := s.cfg.Now()
	t := Token{ID: id, Node: node, Created: now, Expires: now.Add(ttl), Hash: sum[:]}
	if err := s.putToken(t); err != nil {
		return "", Token{}, err
	}
	s.log.Info("join token created", "id", id, "node", node, "expires", t.Expires.Format(time.RFC3339))
	return id + "." + secret + "." + s.cfg.CA.Pin(), t, nil
}

// ParseToken splits a token's text into its ID, secret and the CA's pin.
func ParseToken(text string) (id, secret, pin string, err error) {
	f := strings.Split(strings.TrimSpace(text), ".")
	if len(f) != 3 || len(f[0]) != 8 || len(f[1]) != 32 || len(f[2]) != 64 {
		return "", "", "", errors.New("not a join token (ID.SECRET.PIN, as `sedna token create` prints it)")
	}
	return f[0], f[1], f[2], nil
}

func (s *Service) putToken(t Token) error {
	raw, err := msgpack.Marshal(t)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Put([]byte(tokenPrefix+t.ID), raw)
	return s.cfg.Store.Write(&b)
}

func (s *Service) token(id string) (Token, error) {
	raw, err := s.cfg.Store.Get([]byte(tokenPrefix + id))
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, fmt.Errorf("no token %s", id)
	}
	if err != nil {
		return Token{}, err
	}
	var t Token
	if err := msgpack.Unmarshal(raw, &t); err != nil {
		return Token{}, fmt.Errorf("token %s: %w", id, err)
	}
	return t, nil
}

// Tokens lists the tokens, newest first.
func (s *Service) Tokens() ([]Token, error) {
	var out []Token
	err := s.cfg.Store.Scan([]byte(tokenPrefix), nil, func(_, v []byte) error {
		var t Token
		if err := msgpack.Unmarshal(v, &t); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	slices.SortFunc(out, func(a, b Token) int { return b.Created.Compare(a.Created) })
	return out, err
}

// RevokeToken makes a token unusable.
func (s *Service) RevokeToken(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.token(id)
	if err != nil {
		return err
	}
	t.Revoked = true
	if err := s.putToken(t); err != nil {
		return err
	}
	s.log.Info("join token revoked", "id", id, "node", t.Node)
	return nil
}

// RevokeNode refuses every certificate issued to node until now, and
// disconnects its bridge; it returns how many certificates that was. The
// node may join again with a new token.
func (s *Service) RevokeNode(node string) (int, error) {
	if err := topics.ValidateName("node", node); err != nil {
		return 0, err
	}
	s.mu.Lock()
	var b store.Batch
	var serials []string
	err := s.cfg.Store.Scan([]byte(issuedPrefix+node+"/"), nil, func(k, _ []byte) error {
		serial := string(k[len(issuedPrefix)+len(node)+1:])
		if !s.revoked[serial] {
			b.Put([]byte(revokedPrefix+serial), []byte(node))
			serials = append(serials, serial)
		}
		return nil
	})
	if err == nil && b.Len() > 0 {
		err = s.cfg.Store.Write(&b)
	}
	if err == nil {
		for _, sn := range serials {
			s.revoked[sn] = true
		}
	}
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	s.log.Warn("node revoked: its certificates are refused from now on", "node", node, "certificates", len(serials))
	if s.cfg.Kick != nil {
		s.cfg.Kick(node)
	}
	return len(serials), nil
}

// SealKey is the key node joined with for the secrets the cloud sends it;
// an error says why there is none (the node joined without one, or logs
// in by password).
func (s *Service) SealKey(node string) (*ecdh.PublicKey, error) {
	raw, err := s.cfg.Store.Get([]byte(sealPrefix + node))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("node %s has no key for secrets: secrets go to nodes that joined with a token (sedna token create)", node)
	}
	if err != nil {
		return nil, err
	}
	return pki.ParseSealPublic(raw)
}

// Refused says why a node's certificate may not log in: it is revoked, or
// the cloud did not issue it to node (access.CertAuth.Refused).
func (s *Service) Refused(node string, cert *x509.Certificate) string {
	serial := cert.SerialNumber.Text(16)
	s.mu.Lock()
	revoked := s.revoked[serial]
	s.mu.Unlock()
	if revoked {
		return "the node's certificate is revoked (sedna node revoke): join again with a new token"
	}
	if _, err := s.cfg.Store.Get([]byte(issuedPrefix + node + "/" + serial)); err != nil {
		return "a certificate this cloud did not issue to node " + node
	}
	return ""
}

// redeem uses a token: it must exist, match, be unused, unexpired and not
// revoked. It returns the token's node.
func (s *Service) redeem(text string) (string, error) {
	id, secret, pin, err := ParseToken(text)
	if err != nil {
		return "", err
	}
	if pin != s.cfg.CA.Pin() {
		return "", errors.New("the token was made by another cloud (its CA's pin differs)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.token(id)
	if err != nil {
		return "", errors.New("unknown token " + id)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], t.Hash) != 1 {
		return "", errors.New("token " + id + " does not match")
	}
	now := s.cfg.Now()
	switch t.State(now) {
	case "revoked":
		return "", errors.New("token " + id + " is revoked")
	case "used":
		return "", fmt.Errorf("token %s was used at %s: a token joins one node once", id, t.Used.Format(time.RFC3339))
	case "expired":
		return "", fmt.Errorf("token %s expired at %s", id, t.Expires.Format(time.RFC3339))
	}
	t.Used = now
	if err := s.putToken(t); err != nil {
		return "", err
	}
	return t.Node, nil
}

// sign signs a node's certificate request and records it as issued.
func (s *Service) sign(node, csr string) (Reply, error) {
	certPEM, cert, err := s.cfg.CA.SignNode([]byte(csr), node, s.cfg.CertTTL)
	if err != nil {
		return Reply{}, err
	}
	rec, _ := msgpack.Marshal(issued{Node: node, Serial: cert.SerialNumber.Text(16), Expires: cert.NotAfter})
	var b store.Batch
	b.Put([]byte(issuedPrefix+node+"/"+cert.SerialNumber.Text(16)), rec)
	if err := s.cfg.Store.Write(&b); err != nil {
		return Reply{}, err
	}
	return Reply{Node: node, Cert: string(certPEM), CA: string(s.cfg.CA.PEM()), Broker: s.cfg.Broker, TLSPort: s.cfg.TLSPort,
		NotBefore: cert.NotBefore.Format(time.RFC3339)}, nil
}

// SetTLSPort sets the port of the mutual-TLS listener given to joining
// nodes, once it is bound; call it before Listen.
func (s *Service) SetTLSPort(port string) { s.cfg.TLSPort = port }

// Handler serves JoinPath and RenewPath.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+JoinPath, func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := readJSON(r, &req); err != nil {
			s.refuse(w, r, http.StatusBadRequest, "join", err)
			return
		}
		if len(req.SealKey) > 0 {
			if _, err := pki.ParseSealPublic(req.SealKey); err != nil {
				s.refuse(w, r, http.StatusBadRequest, "join", fmt.Errorf("the node's sealing key: %w", err))
				return
			}
		}
		node, err := s.redeem(req.Token)
		if err != nil {
			s.refuse(w, r, http.StatusForbidden, "join", err)
			return
		}
		if len(req.SealKey) > 0 {
			var b store.Batch
			b.Put([]byte(sealPrefix+node), req.SealKey)
			if err := s.cfg.Store.Write(&b); err != nil {
				s.refuse(w, r, http.StatusInternalServerError, "join", err)
				return
			}
		}
		rep, err := s.sign(node, req.CSR)
		if err != nil {
			s.refuse(w, r, http.StatusBadRequest, "join", err)
			return
		}
		s.log.Info("node joined", "node", node, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("POST "+RenewPath, func(w http.ResponseWriter, r *http.Request) {
		var node string
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			cert := r.TLS.VerifiedChains[0][0]
			if node = pki.NodeOf(cert); node != "" {
				if why := s.Refused(node, cert); why != "" {
					s.refuse(w, r, http.StatusForbidden, "renew", errors.New(why))
					return
				}
			}
		}
		if node == "" {
			s.refuse(w, r, http.StatusUnauthorized, "renew", errors.New("no node certificate of this cloud presented"))
			return
		}
		var req Request
		if err := readJSON(r, &req); err != nil {
			s.refuse(w, r, http.StatusBadRequest, "renew", err)
			return
		}
		rep, err := s.sign(node, req.CSR)
		if err != nil {
			s.refuse(w, r, http.StatusBadRequest, "renew", err)
			return
		}
		s.log.Info("node certificate renewed", "node", node)
		writeJSON(w, http.StatusOK, rep)
	})
	return mux
}

func (s *Service) refuse(w http.ResponseWriter, r *http.Request, code int, what string, err error) {
	s.log.Warn(what+" refused: "+err.Error(), "remote", r.RemoteAddr)
	writeJSON(w, code, Reply{Error: err.Error()})
}

// Listen serves the join listener on addr over TLS with cert, which
// asks for (but does not require) a client certificate of the CA.
func (s *Service) Listen(addr string, cert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{GetCertificate: cert, ClientCAs: s.cfg.CA.Pool(), ClientAuth: tls.VerifyClientCertIfGiven,
			MinVersion: tls.VersionTLS12}}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("join listener stopped", "error", err)
		}
	}()
	return ln.Addr(), nil
}

// Close stops the join listener.
func (s *Service) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

const maxRequest = 64 << 10

func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		return err
	}
	if len(body) > maxRequest {
		return errors.New("a request over 64 KiB")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("a request that is not JSON: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
