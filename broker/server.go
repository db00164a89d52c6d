package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Role says which side of the bridge a broker serves.
type Role string

// The roles.
const (
	// RoleEdge: the broker of an edge node; anonymous clients on loopback
	// are local apps and mappers, as KubeEdge expects.
	RoleEdge Role = "edge"
	// RoleCloud: the cloud broker; every client authenticates and nodes
	// are confined to their own subtree.
	RoleCloud Role = "cloud"
)

// Default listen addresses: the edge listens where KubeEdge's EventBus
// broker does; the cloud on another port, on every interface.
const (
	DefaultEdgeListen  = "127.0.0.1:1883"
	DefaultCloudListen = ":1884"
)

// DefaultMaxPacketSize bounds one MQTT packet: room for a full frame of
// the bridge (4 MiB) with its overhead.
const DefaultMaxPacketSize = 8 << 20

// TLSConfig enables a TLS listener.
type TLSConfig struct {
	// Listen is the address of the TLS listener.
	Listen string `json:"listen"`
	// CertFile and KeyFile are the server's PEM certificate and key.
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	// ClientCAFile, if set, requires clients to present a certificate
	// signed by one of these CAs.
	ClientCAFile string `json:"clientCAFile,omitempty"`
}

// Config configures a Server. The zero value of each field is a working
// default for the Role.
type Config struct {
	Role Role
	// Node is the name of this edge node (RoleEdge only).
	Node string
	// Listen is the plain TCP listener; "" takes the role's default and
	// "off" disables it.
	Listen string
	// TLS adds a TLS listener when TLS.Listen is set.
	TLS TLSConfig
	// WebSocket, if set, is the address of an MQTT-over-WebSocket listener.
	WebSocket string
	// MaxPacketSize bounds every packet; default DefaultMaxPacketSize.
	MaxPacketSize int
	// Credentials authenticate clients. On the cloud, clients without
	// valid credentials are refused; on the edge, credentials are for
	// clients that are not on loopback.
	Credentials *Credentials
	// Store, if set, keeps sessions, subscriptions, in-flight and retained
	// messages across restarts.
	Store store.Store
	// SlowSubscribers configures back-pressure for slow QoS 1 subscribers.
	SlowSubscribers SlowSubscriberOptions
	// Metrics, if set, receives the broker's counters.
	Metrics *Metrics
	// Logger receives the broker's log; default slog.Default().
	Logger *slog.Logger
	// Hooks are added after the built-in ones (bridge capture, ingress, ...).
	Hooks []mqtt.Hook
	// Clock stamps and expires messages; nil means the system clock.
	Clock Clock
}

// Server is an embedded MQTT broker with the project's hooks.
type Server struct {
	cfg   Config
	mochi *mqtt.Server
	log   *slog.Logger
	bp    *SlowSubscriberHook

	mu       sync.Mutex
	ackSeen  func(c *gatedConn, pid uint16)
	started  bool
	closed   bool
	addrs    map[string]string
	gated    []*gatedListener
	sessions *SessionHook
}

// NewServer makes a broker from cfg; call Start to listen.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Role != RoleEdge && cfg.Role != RoleCloud {
		return nil, fmt.Errorf("broker: unknown role %q", cfg.Role)
	}
	if cfg.Role == RoleEdge {
		if err := topics.ValidateName("node", cfg.Node); err != nil {
			return nil, fmt.Errorf("broker: edge needs its node name: %w", err)
		}
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultEdgeListen
		if cfg.Role == RoleCloud {
			cfg.Listen = DefaultCloudListen
		}
	}
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Role == RoleCloud && cfg.Credentials == nil {
		return nil, fmt.Errorf("broker: the cloud broker needs credentials (a credentials file): it refuses anonymous clients")
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	caps.MaximumMessageExpiryInterval = 0 // expiry belongs to the bridge, by message
	bp := NewSlowSubscriberHook(cfg.SlowSubscribers, cfg.Metrics, cfg.Logger)
	// Room for the back-pressure high-water mark with margin, so a QoS 1
	// message is never dropped for a full client queue.
	if !bp.opts.Disabled {
		caps.MaximumClientWritesPending = int32(2 * bp.opts.HighWater)
		caps.MaximumInflight = 65535
	}
	mlog := cfg.Logger.With("component", "mqtt")
	m := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 slog.New(levelFilter{mlog.Handler(), slog.LevelWarn}),
		SysTopicResendInterval: 60,
	})
	bp.attach(m)
	s := &Server{cfg: cfg, mochi: m, log: cfg.Logger, bp: bp, addrs: map[string]string{}}

	add := func(h mqtt.Hook, conf any) error {
		if err := m.AddHook(h, conf); err != nil {
			return fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
		}
		return nil
	}
	if err := add(NewAuthHook(cfg.Role, cfg.Credentials, cfg.Logger), nil); err != nil {
		return nil, err
	}
	if err := add(NewACLHook(cfg.Role, cfg.Node, cfg.Credentials, cfg.Logger, cfg.Metrics), nil); err != nil {
		return nil, err
	}
	if err := add(bp, nil); err != nil {
		return nil, err
	}
	var persist func(*mqtt.Client, packets.Packet)
	if cfg.Store != nil {
		s.sessions = NewSessionHook(store.Sub(cfg.Store, "mqtt/"), cfg.Logger)
		if err := add(s.sessions, nil); err != nil {
			return nil, err
		}
		persist = func(cl *mqtt.Client, pk packets.Packet) { s.sessions.OnQosPublish(cl, pk, pk.Created, 0) }
	}
	if err := add(NewTakeoverHook(cfg.Logger, persist), nil); err != nil {
		return nil, err
	}
	for _, h := range cfg.Hooks {
		if err := add(h, nil); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics != nil {
		if err := add(newMetricsHook(cfg.Metrics), nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// AddHook adds a hook before Start. Hooks run in the order added.
func (s *Server) AddHook(h mqtt.Hook) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("broker: AddHook after Start")
	}
	return s.mochi.AddHook(h, nil)
}

// observeAcks sets who is told when a gated connection writes an
// acknowledgement; call before Start.
func (s *Server) observeAcks(f func(c *gatedConn, pid uint16)) {
	s.mu.Lock()
	s.ackSeen = f
	s.mu.Unlock()
}

// Start opens the listeners and serves. Stored sessions are loaded first.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("broker: already started")
	}
	if s.cfg.Listen != "off" {
		if err := s.listen(listeners.NewTCP(listeners.Config{ID: "tcp", Address: s.cfg.Listen})); err != nil {
			return err
		}
	}
	if s.cfg.TLS.Listen != "" {
		tc, err := loadTLS(s.cfg.TLS)
		if err != nil {
			return err
		}
		if err := s.listen(listeners.NewTCP(listeners.Config{ID: "tls", Address: s.cfg.TLS.Listen, TLSConfig: tc})); err != nil {
			return err
		}
	}
	if s.cfg.WebSocket != "" {
		if err := s.listen(newWSListener("ws", s.cfg.WebSocket)); err != nil {
			return err
		}
	}
	if err := s.mochi.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	s.started = true
	s.log.Info("broker started", "role", s.cfg.Role, "node", s.cfg.Node, "listeners", s.addrs)
	return nil
}

func (s *Server) listen(inner listeners.Listener) error {
	l := &gatedListener{Listener: inner, log: s.log, onAck: func(c *gatedConn, pid uint16) {
		if s.ackSeen != nil {
			s.ackSeen(c, pid)
		}
	}}
	if err := s.mochi.AddListener(l); err != nil {
		return fmt.Errorf("broker: listen %s on %s: %w", l.ID(), l.Address(), err)
	}
	s.addrs[l.ID()] = l.Address()
	s.gated = append(s.gated, l)
	return nil
}

func loadTLS(c TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker: tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("broker: tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker: tls client CA %s: no certificate found", c.ClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Addr returns the bound address of a listener: "tcp", "tls" or "ws".
func (s *Server) Addr(listener string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[listener]
}

// URL returns "tcp://host:port" of the TCP listener, for clients.
func (s *Server) URL() string { return "tcp://" + s.Addr("tcp") }

// Publish publishes a message from inside the process (the inline client):
// no ACL, no capture by the bridge (see CaptureHook).
func (s *Server) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return s.mochi.Publish(topic, payload, retain, qos)
}

// Subscribe adds an in-process subscription; handler runs on the
// publisher's goroutine and must not block for long.
func (s *Server) Subscribe(filter string, id int, handler func(topic string, payload []byte, retained bool)) error {
	return s.mochi.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handler(pk.TopicName, pk.Payload, pk.FixedHeader.Retain)
	})
}

// Unsubscribe removes an in-process subscription.
func (s *Server) Unsubscribe(filter string, id int) error { return s.mochi.Unsubscribe(filter, id) }

// Mochi returns the underlying broker, for hooks that need its indexes.
func (s *Server) Mochi() *mqtt.Server { return s.mochi }

// Now is the time by the server's clock (Config.Clock).
func (s *Server) Now() time.Time { return s.cfg.Clock.Now() }

// Close disconnects every client, waits for their goroutines and stops
// the hooks. It does not close Config.Store.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	s.bp.shutdown()
	if !started {
		return nil
	}
	// mochi's Close waits for every client goroutine, then stops the hooks
	// (the session hook flushes its queue), so no hook runs after. A client
	// accepted while it closes is missed by its disconnect of every client
	// (a race in mochi), and its Close would wait for it for ever: new
	// connections are refused first, and stragglers closed if it is not done
	// after a grace period.
	for _, l := range s.gated {
		l.refuse()
	}
	done := make(chan struct{})
	go func() {
		_ = s.mochi.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeGrace):
		s.log.Warn("broker: connections left after close; closing them")
		for _, l := range s.gated {
			l.closeLive()
		}
		<-done
	}
	return nil
}

// closeGrace is how long Close waits for mochi to disconnect its clients
// before it closes the connections itself.
const closeGrace = 3 * time.Second
