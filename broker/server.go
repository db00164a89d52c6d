package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Default listen addresses: the edge listens where KubeEdge's EventBus
// broker does; the cloud on another port. Both listen on loopback only
// unless told otherwise: nodes on other hosts bridge to the cloud over its
// mutual-TLS listener (cloud.IdentityConfig), and a plaintext cloud
// address off loopback needs cloud.Config.InsecureListen.
const (
	DefaultEdgeListen  = "127.0.0.1:1883"
	DefaultCloudListen = "127.0.0.1:1884"
)

// DefaultMaxPacketSize bounds one MQTT packet: what carries the largest
// message topics.DefaultLimits allows, in a frame of the bridge.
var DefaultMaxPacketSize = topics.DefaultLimits.MaxPacket()

// ListenerConfig configures an embedded broker's listeners, on a node
// (edge.Config.Broker) or in the cloud (cloud.Config.Broker).
type ListenerConfig struct {
	// Listen is the TCP address; default 127.0.0.1:1883 on a node,
	// 127.0.0.1:1884 in the cloud (loopback only: nodes on other hosts
	// bridge over the mutual-TLS listener); "off" disables it on a node.
	Listen string `json:"listen,omitempty"`
	// TLS adds a TLS listener.
	TLS TLSConfig `json:"tls,omitempty"`
	// WebSocket is the address of a WebSocket listener, if any.
	WebSocket string `json:"websocket,omitempty"`
	// MaxPacketSize bounds one packet after login; default what the
	// largest message needs (1 MiB and its topic).
	MaxPacketSize int `json:"maxPacketSize,omitempty"`
	// CredentialsFile lists users (access.LoadCredentials): a node's local apps;
	// in the cloud the nodes, operators, viewers and admins (required
	// there).
	CredentialsFile string `json:"credentialsFile,omitempty"`
	// Limits bound connections before and at login.
	Limits ConnLimits `json:"limits,omitempty"`
	// Subscribers bound what a slow subscriber may cost before it is
	// disconnected, and what a persistent session keeps while its client
	// is away.
	Subscribers SubscriberLimits `json:"subscribers,omitempty"`
}

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
	// Config, if set, is the listener's TLS configuration, in place of
	// the files (the cloud's own CA: cloud.Config.Identity).
	Config *tls.Config `json:"-"`
}

// Config configures a Server. The zero value of each field is a working
// default for the Role.
type Config struct {
	Role access.Role
	// Node is the name of this edge node (access.RoleEdge only).
	Node string
	// Listen is the plain TCP listener; "" takes the role's default and
	// "off" disables it.
	Listen string
	// TLS adds a TLS listener when TLS.Listen is set.
	TLS TLSConfig
	// WebSocket, if set, is the address of an MQTT-over-WebSocket listener.
	WebSocket string
	// MaxPacketSize bounds every packet after login; default
	// DefaultMaxPacketSize. A larger PUBLISH is dropped, acknowledged (MQTT
	// 5: reason code 0x97) and dead-lettered; any other larger packet
	// closes the connection.
	MaxPacketSize int
	// Limits bound what the broker takes before and at login.
	Limits ConnLimits
	// MessageLimits bound messages (wills, payloads on envelope topics);
	// default topics.DefaultLimits.
	MessageLimits topics.Limits
	// Dead, if set, keeps a record of each publish the broker dropped for
	// its size, which it reports as an error event.
	Dead *queue.DeadLetters
	// Credentials authenticate clients. On the cloud, clients without
	// valid credentials are refused; on the edge, credentials are for
	// clients that are not on loopback.
	Credentials *access.Credentials
	// Store, if set, keeps sessions, subscriptions, in-flight and retained
	// messages across restarts.
	Store store.Store
	// Subscribers bound what a slow subscriber may cost before it is
	// disconnected, and what a persistent session keeps while its client
	// is away.
	Subscribers SubscriberLimits
	// Metrics, if set, receives the broker's counters.
	Metrics *metrics.Set
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
	subs  *SubscriberHook

	authz  *access.AuthzHook
	report func(topics.ErrorEvent)

	mu        sync.Mutex
	ackSeen   func(conn net.Conn, pid uint16)
	started   bool
	listening bool
	closed    bool
	addrs     map[string]string
	gated     []*gatedListener
	sessions  *SessionHook
	// subIDs numbers the subscriptions Watch makes, above any number a
	// caller of Subscribe picks.
	subIDs atomic.Int64
}

// NewServer makes a broker from cfg; call Start to listen.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Role != access.RoleEdge && cfg.Role != access.RoleCloud {
		return nil, fmt.Errorf("broker: unknown role %q", cfg.Role)
	}
	if cfg.Role == access.RoleEdge {
		if err := topics.ValidateName("node", cfg.Node); err != nil {
			return nil, fmt.Errorf("broker: edge needs its node name: %w", err)
		}
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultEdgeListen
		if cfg.Role == access.RoleCloud {
			cfg.Listen = DefaultCloudListen
		}
	}
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	cfg.Limits = cfg.Limits.withDefaults(cfg.Role)
	cfg.MessageLimits = cfg.MessageLimits.OrDefault()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Role == access.RoleCloud && cfg.Credentials == nil {
		return nil, fmt.Errorf("broker: the cloud broker needs credentials (a credentials file): it refuses anonymous clients")
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	caps.MaximumMessageExpiryInterval = 0 // expiry belongs to the bridge, by message
	if !cfg.Subscribers.Disabled {
		// A connected client is disconnected long before its queue is
		// full (SubscriberHook); a session away keeps up to 65,535.
		caps.MaximumClientWritesPending = 16384
		caps.MaximumInflight = 65535
	}
	mlog := cfg.Logger.With("component", "mqtt")
	m := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 slog.New(levelFilter{mlog.Handler(), slog.LevelWarn}),
		SysTopicResendInterval: 60,
	})
	s := &Server{cfg: cfg, mochi: m, log: cfg.Logger, addrs: map[string]string{}}
	s.subs = NewSubscriberHook(cfg.Subscribers, cfg.Role, cfg.Metrics, cfg.Logger, s.raise)
	s.authz = access.NewAuthzHook(cfg.Role, cfg.Node, cfg.Credentials, cfg.Logger, cfg.Metrics)
	s.authz.Attach(m, s.subs.Full)
	auth := access.NewAuthHook(cfg.Role, cfg.Node, cfg.Credentials, cfg.MessageLimits, cfg.Logger, cfg.Metrics)
	auth.Attach(m, func(cl *mqtt.Client) {
		if g, ok := cl.Net.Conn.(*gatedConn); ok {
			g.authenticated(cl.Properties.ProtocolVersion, cl.ID, string(cl.Properties.Username))
		}
	})

	add := func(h mqtt.Hook, conf any) error {
		if err := m.AddHook(h, conf); err != nil {
			return fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
		}
		return nil
	}
	if err := add(auth, nil); err != nil {
		return nil, err
	}
	if err := add(s.authz, nil); err != nil {
		return nil, err
	}
	if cfg.Role == access.RoleCloud {
		if err := add(NewStatusHook(cfg.Logger), nil); err != nil {
			return nil, err
		}
	}
	if err := add(s.subs, nil); err != nil {
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

// ObserveAcks sets who is told when the ack gate of a connection (see
// AckGate) has written an acknowledgement, the PUBACK or PUBREC of pid:
// conn is the client's connection (mochi's Client.Net.Conn). Call it
// before Start; there is one observer, the bridge's capture hook.
func (s *Server) ObserveAcks(f func(conn net.Conn, pid uint16)) {
	s.mu.Lock()
	s.ackSeen = f
	s.mu.Unlock()
}

// Listen binds the listeners without serving yet, so that their addresses
// are known (Addr, URL) while the process finishes setting up; Start calls
// it if needed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listenLocked()
}

func (s *Server) listenLocked() error {
	if s.listening {
		return nil
	}
	s.listening = true
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
		if err := s.listenTLS(listeners.NewTCP(listeners.Config{ID: "tls", Address: s.cfg.TLS.Listen}), tc); err != nil {
			return err
		}
	}
	if s.cfg.WebSocket != "" {
		if err := s.listen(newWSListener("ws", s.cfg.WebSocket)); err != nil {
			return err
		}
	}
	return nil
}

// Start binds the listeners (unless Listen did) and serves. Stored
// sessions are loaded first.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("broker: already started")
	}
	if err := s.listenLocked(); err != nil {
		return err
	}
	if err := s.mochi.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	s.started = true
	s.log.Info("broker started", "role", s.cfg.Role, "node", s.cfg.Node, "listeners", s.addrs)
	return nil
}

func (s *Server) listen(inner listeners.Listener) error { return s.listenTLS(inner, nil) }

// listenTLS adds a listener, over TLS when tc is set.
func (s *Server) listenTLS(inner listeners.Listener, tc *tls.Config) error {
	l := &gatedListener{tls: tc, Listener: inner, log: s.log, onAck: func(c *gatedConn, pid uint16) {
		if s.ackSeen != nil {
			s.ackSeen(c, pid)
		}
	}, limits: s.cfg.Limits, packetMax: s.cfg.MaxPacketSize, refused: func(reason string) {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.ConnectRefused.WithLabelValues(reason).Inc()
		}
	}, dropped: s.droppedOversize, disconnect: s.disconnectListenerClients}
	if s.cfg.Subscribers.Disabled {
		l.blockAt = 64 << 10 // about what a socket buffers: mochi alone writes to the socket
	}
	if err := s.mochi.AddListener(l); err != nil {
		return fmt.Errorf("broker: listen %s on %s: %w", l.ID(), l.Address(), err)
	}
	s.addrs[l.ID()] = l.Address()
	s.gated = append(s.gated, l)
	return nil
}

func loadTLS(c TLSConfig) (*tls.Config, error) {
	if c.Config != nil {
		return c.Config, nil
	}
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

// URL returns "tcp://host:port" of the TCP listener, for clients on this
// machine (a listener on every address is reached on loopback), or "" when
// the broker has no TCP listener or does not listen yet.
func (s *Server) URL() string { return clientURL(s.Addr("tcp")) }

func clientURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "tcp://" + net.JoinHostPort(host, port)
}

// Publish publishes a message from inside the process (the inline client)
// on behalf of from: access.Authorize decides with PathInline, as it does
// for every other way into the broker. Inline publishes are never captured
// by the bridge (see bridge.CaptureHook).
func (s *Server) Publish(from access.Principal, topic string, payload []byte, retain bool, qos byte) error {
	if err := s.authz.Authorize(from, access.PathInline, topic); err != nil {
		return err
	}
	return s.mochi.Publish(topic, payload, retain, qos)
}

// Serving is nil while the broker serves, else why it does not.
func (s *Server) Serving() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("broker: closed")
	case !s.started:
		return errors.New("broker: not started")
	}
	return nil
}

// Disconnect closes the connection of the client clientID, if it is
// connected, with why; it reports whether there was one.
func (s *Server) Disconnect(clientID string, why error) bool {
	cl, ok := s.mochi.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return false
	}
	cl.Stop(why)
	return true
}

// SetReport gives the broker where to report what it wants an operator to
// see (a slow subscriber disconnected, a session that dropped messages):
// the process's error events. The bridge sets it on a node.
func (s *Server) SetReport(f func(topics.ErrorEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report = f
}

// SetDefaultReport is SetReport unless SetReport gave the broker where to
// report already: the bridge gives a node's broker its own reports.
func (s *Server) SetDefaultReport(f func(topics.ErrorEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.report == nil {
		s.report = f
	}
}

func (s *Server) raise(ev topics.ErrorEvent) {
	s.mu.Lock()
	f := s.report
	s.mu.Unlock()
	if f != nil {
		f(ev)
	}
}

// SetDeadLetters gives the broker the dead-letter store of its process
// (the bridge's, on a node) unless Config.Dead named one; call it before
// Start.
func (s *Server) SetDeadLetters(d *queue.DeadLetters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Dead == nil {
		s.cfg.Dead = d
	}
}

// droppedOversize records a PUBLISH the packet guard dropped for its size.
func (s *Server) droppedOversize(g *gatedConn, o oversize) {
	client, user := g.names()
	detail := fmt.Sprintf("a publish of %d bytes, over the broker's limit of %d bytes per packet (%d per message): dropped and acknowledged",
		o.size, s.cfg.MaxPacketSize, s.cfg.MessageLimits.MaxBody)
	s.log.Warn("publish too large", "topic", o.topic, "bytes", o.size, "client", client, "username", user)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Refused.WithLabelValues("too-large").Inc()
	}
	s.mu.Lock()
	dead := s.cfg.Dead
	s.mu.Unlock()
	if dead != nil {
		dead.Add(queue.DeadLetter{Component: string(s.cfg.Role) + "/broker", Reason: "too-large", Detail: detail,
			Topic: o.topic, Client: client})
	}
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

// watchIDs is where the numbers of Watch's subscriptions start.
const watchIDs = 1 << 30

// Watch adds an in-process subscription under a number of its own, which
// no other Watch shares; stop removes it (once; later calls do nothing).
// handler runs on the publisher's goroutine and must not block for long.
func (s *Server) Watch(filter string, handler func(topic string, payload []byte, retained bool)) (stop func() error, err error) {
	id := int(watchIDs + s.subIDs.Add(1))
	if err := s.Subscribe(filter, id, handler); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = s.Unsubscribe(filter, id) })
		return err
	}, nil
}

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

// disconnectListenerClients disconnects the clients of a listener that
// closes, as mochi's own closer does, but reading its clients' map once:
// mochi's GetByListener read-locks the map twice (it calls Len), which
// deadlocks when a client joins or leaves between the two locks, and
// Close then never returned (mochi-mqtt/server#488).
func (s *Server) disconnectListenerClients(listener string) {
	for _, cl := range s.mochi.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = s.mochi.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// closeGrace is how long Close waits for mochi to disconnect its clients
// before it closes the connections itself.
const closeGrace = 3 * time.Second
