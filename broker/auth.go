package broker

import (
	"crypto/sha256"
	"crypto/subtle"
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

	"github.com/sedna-go/sedna/topics"
)

// UserRole is what an authenticated client may do.
type UserRole string

// The roles of users.
const (
	// UserNode is an edge node's bridge: it writes only under its own
	// subtree and reads its downlink and broadcasts.
	UserNode UserRole = "node"
	// UserCloud is a cloud application (the CLI, a dashboard): it reads
	// everything and writes anything except a node's subtree or downlink.
	UserCloud UserRole = "cloud"
	// UserApp is a local application on an edge node that connects with
	// credentials (from another host): it has the local-app rights.
	UserApp UserRole = "app"
	// UserAdmin may do anything.
	UserAdmin UserRole = "admin"
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

	byName map[string]*User
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
		case UserCloud, UserApp, UserAdmin:
		default:
			return fmt.Errorf("user %q: unknown role %q (want node, cloud, app or admin)", u.Username, u.Role)
		}
		c.byName[u.Username] = u
	}
	return nil
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

func (c *Credentials) user(name []byte) *User {
	if c == nil || len(name) == 0 {
		return nil
	}
	return c.byName[string(name)]
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("sedna-dummy"), bcrypt.MinCost)

// AuthHook authenticates clients at CONNECT. On the cloud every client
// needs valid credentials. On the edge, anonymous clients from loopback are
// local apps and mappers; other clients need credentials.
type AuthHook struct {
	mqtt.HookBase
	role  Role
	creds *Credentials
	log   *slog.Logger

	// verified caches a SHA-256 of the last password that passed bcrypt
	// per user, so that a reconnecting bridge does not pay bcrypt each time.
	mu       sync.Mutex
	verified map[string][32]byte
}

// NewAuthHook makes the authentication hook of a broker.
func NewAuthHook(role Role, creds *Credentials, log *slog.Logger) *AuthHook {
	return &AuthHook{role: role, creds: creds, log: log, verified: map[string][32]byte{}}
}

// ID names the hook.
func (h *AuthHook) ID() string { return "sedna-auth" }

// Provides says which events the hook handles.
func (h *AuthHook) Provides(b byte) bool { return b == mqtt.OnConnectAuthenticate }

// OnConnectAuthenticate accepts or refuses a client.
func (h *AuthHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pass := pk.Connect.Username, pk.Connect.Password
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
