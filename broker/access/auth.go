package access

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"

	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/topics"
)

// UserRole is what an authenticated client may do.
type UserRole string

// The roles of users.
const (
	// UserNode is an edge node's bridge: it writes only its own status,
	// frames and acknowledgements, and reads its downlink and broadcasts.
	UserNode UserRole = "node"
	// UserOperator runs jobs (the CLI, a pipeline): it applies and deletes
	// resources whose workers are the built-ins or commands of the cloud's
	// allowlist, pushes models, reads everything but other users' replies,
	// and writes nodes' app and KubeEdge topics and any topic outside the
	// project's tree.
	UserOperator UserRole = "operator"
	// UserViewer reads, and asks the control plane only what it reads.
	UserViewer UserRole = "viewer"
	// UserAdmin is an operator who may also apply workers with any
	// command. On an edge broker it has an app's rights.
	UserAdmin UserRole = "admin"
	// UserApp is a local application on an edge node that connects with
	// credentials (from another host): it has the local-app rights.
	UserApp UserRole = "app"
	// UserCloud is the old name of UserOperator, still read in credentials
	// files.
	UserCloud UserRole = "cloud"
)

// User is one entry of a credentials file. Passwords are stored as bcrypt
// hashes only; `sedna passwd` makes one.
type User struct {
	Username     string   `json:"username"`
	PasswordHash string   `json:"passwordHash"`
	Role         UserRole `json:"role"`
	// Node is the node a UserNode acts for; default the username.
	Node string `json:"node,omitempty"`
}

// Credentials are the users a broker accepts.
type Credentials struct {
	Users []User `json:"users"`
	// Certs, if set, lets nodes log in to the cloud by their client
	// certificates (mutual TLS), without a password.
	Certs *CertAuth `json:"-"`

	byName map[string]*User
}

// CertAuth authenticates nodes by the client certificates the broker's
// TLS listener verified.
type CertAuth struct {
	// NodeOf names the node a verified certificate is the identity of
	// ("" when it is no node's: the client then logs in by password).
	NodeOf func(cert *x509.Certificate) string
	// Refused, if set, says why node's certificate may no longer log in
	// (the node or the certificate revoked); "" lets it in.
	Refused func(node string, cert *x509.Certificate) string
}

// PeerCertificate is a connection that may carry a client certificate its
// listener verified (a TLS listener's connections).
type PeerCertificate interface {
	// PeerCertificate is the verified client certificate, nil when none.
	PeerCertificate() *x509.Certificate
}

// certNode is the node whose certificate cl logged in with ("" when none),
// and the certificate.
func (c *Credentials) certNode(cl *mqtt.Client) (string, *x509.Certificate) {
	if c == nil || c.Certs == nil || c.Certs.NodeOf == nil || cl.Net.Conn == nil {
		return "", nil
	}
	pc, ok := cl.Net.Conn.(PeerCertificate)
	if !ok {
		return "", nil
	}
	cert := pc.PeerCertificate()
	if cert == nil {
		return "", nil
	}
	return c.Certs.NodeOf(cert), cert
}

// LoadCredentials reads a credentials file (YAML or JSON):
//
//	users:
//	  - username: edge-1
//	    passwordHash: $2a$10$...
//	    role: node
func LoadCredentials(path string) (*Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("broker: credentials: %w", err)
	}
	var c Credentials
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("broker: credentials %s: %w", path, err)
	}
	if err := c.index(); err != nil {
		return nil, fmt.Errorf("broker: credentials %s: %w", path, err)
	}
	return &c, nil
}

// NewCredentials checks and indexes users.
func NewCredentials(users ...User) (*Credentials, error) {
	c := &Credentials{Users: users}
	if err := c.index(); err != nil {
		return nil, fmt.Errorf("broker: credentials: %w", err)
	}
	return c, nil
}

func (c *Credentials) index() error {
	c.byName = make(map[string]*User, len(c.Users))
	for i := range c.Users {
		u := &c.Users[i]
		if u.Username == "" {
			return fmt.Errorf("user %d has no username", i+1)
		}
		// A username is a level of its request and reply topics.
		if err := topics.ValidateName("user", u.Username); err != nil {
			return fmt.Errorf("user %d: %v", i+1, err)
		}
		if _, dup := c.byName[u.Username]; dup {
			return fmt.Errorf("user %q is listed twice", u.Username)
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return fmt.Errorf("user %q: passwordHash is not a bcrypt hash (make one with `sedna passwd`): %v", u.Username, err)
		}
		switch u.Role {
		case UserNode:
			if u.Node == "" {
				u.Node = u.Username
			}
			if err := topics.ValidateName("node", u.Node); err != nil {
				return fmt.Errorf("user %q: %v", u.Username, err)
			}
		case UserCloud:
			u.Role = UserOperator
		case UserOperator, UserViewer, UserApp, UserAdmin:
		default:
			return fmt.Errorf("user %q: unknown role %q (want node, operator, viewer, admin or app)", u.Username, u.Role)
		}
		if u.Role != UserNode && u.Node != "" {
			return fmt.Errorf("user %q: node is set, but the role is %s, not node", u.Username, u.Role)
		}
		c.byName[u.Username] = u
	}
	return nil
}

func (a *CertAuth) refused(node string, cert *x509.Certificate) string {
	if a.Refused == nil {
		return ""
	}
	return a.Refused(node, cert)
}

// HashPassword returns the bcrypt hash to put in a credentials file.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// Check returns the user if username and password match.
func (c *Credentials) Check(username, password []byte) (*User, bool) {
	if c == nil {
		return nil, false
	}
	u, ok := c.byName[string(username)]
	if !ok {
		// Spend the time a real check takes, so a probe cannot tell
		// unknown users from wrong passwords.
		_ = bcrypt.CompareHashAndPassword(dummyHash, password)
		return nil, false
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), password) != nil {
		return nil, false
	}
	return u, true
}

// Role returns the role of the user named username.
func (c *Credentials) Role(username string) (UserRole, bool) {
	if u := c.user([]byte(username)); u != nil {
		return u.Role, true
	}
	return "", false
}

func (c *Credentials) user(name []byte) *User {
	if c == nil || len(name) == 0 {
		return nil
	}
	return c.byName[string(name)]
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("sedna-dummy"), bcrypt.MinCost)

// BridgeClientID is the MQTT client ID of node's bridge. On the cloud
// broker only node's own credentials may use it.
func BridgeClientID(node string) string { return bridgeIDPrefix + node }

const bridgeIDPrefix = "sedna-bridge-"

// AuthHook authenticates clients at CONNECT. On the cloud every client
// needs valid credentials. On the edge, anonymous clients from loopback are
// local apps and mappers; other clients need credentials.
//
// Once a client's credentials pass, the CONNECT is still refused, logged
// and counted if:
//   - its will may not be published by this principal (Authorize with
//     PathWill): mochi publishes a will without any further check, so this
//     is the will's only gate;
//   - its client ID is a bridge's and the client is not that node, or it
//     names a session (connected or kept) of another user: a client ID
//     names a session, and taking over another user's session would kick
//     it off and take its queued messages.
type AuthHook struct {
	mqtt.HookBase
	role    Role
	node    string
	creds   *Credentials
	limits  topics.Limits
	log     *slog.Logger
	metrics *metrics.Set
	srv     *mqtt.Server
	// loggedIn, if set, is told of each client let in.
	loggedIn func(cl *mqtt.Client)

	// verified caches a SHA-256 of the last password that passed bcrypt
	// per user, so that a reconnecting bridge does not pay bcrypt each time.
	mu       sync.Mutex
	verified map[string][32]byte
}

// NewAuthHook makes the authentication hook of a broker; node is an edge
// broker's node, lim bounds wills.
func NewAuthHook(role Role, node string, creds *Credentials, lim topics.Limits, log *slog.Logger, m *metrics.Set) *AuthHook {
	return &AuthHook{role: role, node: node, creds: creds, limits: lim.OrDefault(), log: log, metrics: m, verified: map[string][32]byte{}}
}

// Attach gives the hook its broker, to answer a refused CONNECT with the
// reason and to find the sessions of client IDs, and loggedIn, if set,
// which is told of each client let in (the broker's connection guard
// lifts its limits of login). Call it before the broker starts.
func (h *AuthHook) Attach(srv *mqtt.Server, loggedIn func(cl *mqtt.Client)) {
	h.srv, h.loggedIn = srv, loggedIn
}

// ID names the hook.
func (h *AuthHook) ID() string { return "sedna-auth" }

// Provides says which events the hook handles.
func (h *AuthHook) Provides(b byte) bool { return b == mqtt.OnConnectAuthenticate }

// OnConnectAuthenticate accepts or refuses a client.
func (h *AuthHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if !h.authenticate(cl, pk) {
		h.refused("bad-credentials")
		return false
	}
	p := principalOf(h.role, h.creds, cl)
	if code, why := h.admit(cl, pk, p); why != "" {
		h.log.Warn("connection refused", "reason", why, "client", cl.ID, "principal", p.String(), "remote", cl.Net.Remote)
		// mochi answers a failed authentication with "bad username or
		// password"; the CONNACK sent first says what really failed.
		if h.srv != nil {
			_ = h.srv.SendConnack(cl, code, false, nil)
		}
		return false
	}
	if h.loggedIn != nil {
		h.loggedIn(cl)
	}
	return true
}

// admit checks what a client with valid credentials asks for at CONNECT.
func (h *AuthHook) admit(cl *mqtt.Client, pk packets.Packet, p Principal) (packets.Code, string) {
	if h.role == RoleCloud {
		if node, ok := strings.CutPrefix(cl.ID, bridgeIDPrefix); ok && (p.Kind != NodeBridge || p.Node != node) {
			h.refused("client-id")
			return packets.ErrClientIdentifierNotValid, "the client ID " + cl.ID + " belongs to node " + node + "'s bridge"
		}
		if h.srv != nil {
			if old, ok := h.srv.Clients.Get(cl.ID); ok && string(old.Properties.Username) != string(cl.Properties.Username) {
				h.refused("client-id")
				return packets.ErrClientIdentifierNotValid, "the client ID " + cl.ID + " names a session of another user"
			}
		}
	}
	if pk.Connect.WillFlag {
		topic := pk.Connect.WillTopic
		if err := Authorize(h.role, h.node, p, PathWill, topic); err != nil {
			h.refused("will")
			if h.metrics != nil {
				h.metrics.ACLDenied.WithLabelValues(PathWill.String()).Inc()
			}
			return packets.ErrNotAuthorized, err.Error()
		}
		if reason, detail := CheckPayload(topic, pk.Connect.WillPayload, h.limits); reason != "" {
			h.refused("will")
			return packets.ErrPayloadFormatInvalid, "will on " + topic + ": " + detail
		}
	}
	return packets.CodeSuccess, ""
}

func (h *AuthHook) refused(reason string) {
	if h.metrics != nil {
		h.metrics.ConnectRefused.WithLabelValues(reason).Inc()
	}
}

// authenticate checks the client's credentials: on the cloud, a node's
// client certificate, which the TLS listener verified, or a username and
// password.
func (h *AuthHook) authenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pass := pk.Connect.Username, pk.Connect.Password
	if h.role == RoleCloud {
		if node, cert := h.creds.certNode(cl); node != "" {
			if len(user) > 0 && string(user) != node {
				h.log.Warn("refused a node's certificate with another username", "client", cl.ID, "certificate", node,
					"username", string(user), "remote", cl.Net.Remote)
				return false
			}
			if why := h.creds.Certs.refused(node, cert); why != "" {
				h.log.Warn("refused node "+node+"'s certificate: "+why, "client", cl.ID, "serial", cert.SerialNumber.Text(16),
					"remote", cl.Net.Remote)
				return false
			}
			return true
		}
	}
	if h.role == RoleEdge && len(user) == 0 {
		if isLoopback(cl.Net.Remote) {
			return true
		}
		h.log.Warn("refused anonymous client from outside loopback", "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	if len(user) == 0 {
		h.log.Warn("refused unauthenticated client", "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	sum := sha256.Sum256(pass)
	h.mu.Lock()
	cached, ok := h.verified[string(user)]
	h.mu.Unlock()
	if ok && subtle.ConstantTimeCompare(cached[:], sum[:]) == 1 {
		return true
	}
	if _, ok := h.creds.Check(user, pass); !ok {
		h.log.Warn("refused client with bad credentials", "client", cl.ID, "username", string(user), "remote", cl.Net.Remote)
		return false
	}
	h.mu.Lock()
	h.verified[string(user)] = sum
	h.mu.Unlock()
	return true
}

// CheckPayload returns a reason if payload may not go to topic (in the
// cloud): over the size limit, not an envelope on an envelope topic, or a
// topic of the bridge's frames or of no known shape. The capture hook
// checks what it takes up so, and the AuthHook a will.
func CheckPayload(topic string, payload []byte, lim topics.Limits) (reason, detail string) {
	if len(payload) > lim.MaxBody {
		return "too-large", fmt.Sprintf("payload of %d bytes, over the limit of %d", len(payload), lim.MaxBody)
	}
	switch topics.PayloadOf(topic) {
	case topics.PayloadEnvelope:
		if _, err := topics.UnmarshalEnvelope(payload, lim); err != nil {
			return topics.ReasonOf(err), err.Error()
		}
	case topics.PayloadFrame, topics.PayloadInvalid:
		return "bad-topic", "nothing may be published on " + topic + ": the cloud refuses it"
	}
	return "", ""
}

// isLoopback reports whether a remote address ("host:port") is on loopback.
func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	host = strings.Trim(host, "[]")
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
