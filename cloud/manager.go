// Package cloud is the cloud manager of Sedna-Go (Sedna's GlobalManager):
// the embedded cloud broker, or a client of an external one, with the
// cloud half of every edge node's bridge (ingress of frames, the per-node
// downlink outbox), the control plane (admission of Sedna resources, their
// specs and statuses, kept in the store), the cloud's workers, and the
// Client the CLI uses.
//
// The manager imports api, broker, plugins, store, topics and workers; it
// never imports edge: the two meet only on topics.
package cloud

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/internal/httpserve"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/plugins/abi"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Config configures the cloud manager; read from YAML (`sedna cloud
// --config`), flags override it.
type Config struct {
	// DataDir holds the manager's store; default ./sedna-cloud.
	DataDir string `json:"dataDir,omitempty"`
	// WriteMode is the durability of the store: "process" (default) or "sync".
	WriteMode store.Mode `json:"writeMode,omitempty"`
	// Broker configures the embedded broker (ignored with External).
	Broker BrokerConfig `json:"broker,omitempty"`
	// External, if its URL is set, is a broker to use instead of the
	// embedded one (mosquitto, EMQX, ...).
	External ExternalBroker `json:"external,omitempty"`
	// Downlink bounds the per-node outbox.
	Downlink QueueConfig `json:"downlink,omitempty"`
	// Metrics is the address of /metrics; default 127.0.0.1:9465, "off"
	// disables it.
	Metrics string `json:"metrics,omitempty"`
	// Profiles serves Go's /debug/pprof/ beside /metrics, on a loopback
	// address only; off by default.
	Profiles bool `json:"profiles,omitempty"`
	// Name is the cloud's node name in job templates: workers whose
	// template says nodeName: <Name> run here. Default "cloud".
	Name string `json:"name,omitempty"`
	// Plugins configures the plugin host (miners for admission,
	// aggregators for the cloud's workers).
	Plugins PluginConfig `json:"plugins,omitempty"`
	// Workers says who the cloud's external workers run as and which
	// commands operators may apply.
	Workers WorkersConfig `json:"workers,omitempty"`
	// Models says where the cloud may read model files a Model's url
	// names.
	Models ModelsConfig `json:"models,omitempty"`
	// Data says where the cloud's built-in workers may read the files a
	// job names (a federated job's validation set).
	Data DataConfig `json:"data,omitempty"`
	// Identity gives nodes identities: the cloud's CA, the broker's
	// mutual-TLS listener and the join listener.
	Identity IdentityConfig `json:"identity,omitempty"`
	// DashboardTick is how often the dashboard (/dashboard/ beside
	// /metrics) samples the nodes and jobs; default 2 s.
	DashboardTick broker.Duration `json:"dashboardTick,omitempty"`
	// Nodes says how the cloud learns the nodes' statuses.
	Nodes NodesConfig `json:"nodes,omitempty"`
	// Etcd, if its endpoints are set, keeps the manager's state in etcd
	// and makes this manager one of several replicas (with External).
	Etcd EtcdConfig `json:"etcd,omitempty"`
	// InsecureListen lets broker.listen, the plaintext listener, be on an
	// address other than loopback: passwords and messages then cross the
	// network in clear. Without it such an address is refused.
	InsecureListen bool `json:"insecureListen,omitempty"`
}

// NodesConfig says how the cloud learns the nodes' statuses: it asks
// every node at start and every StatusSweep (default 1m; a negative value
// asks at start only), and takes a node silent StatusGrace (default 5s,
// plus a spread of 50 µs per node for their answers) after a request to
// be offline. No status rests on retained messages (docs/SCALE.md).
type NodesConfig struct {
	StatusSweep broker.Duration `json:"statusSweep,omitempty"`
	StatusGrace broker.Duration `json:"statusGrace,omitempty"`
}

// DataConfig configures where the cloud reads data files.
type DataConfig struct {
	// Dirs are the directories whose files a job may name for the cloud
	// (beside the model directories); default {dataDir}/data.
	Dirs []string `json:"dirs,omitempty"`
}

// WorkersConfig configures the workers a process runs, and what operators
// may make it run.
type WorkersConfig struct {
	// Settings say who external workers run as (user, passEnv).
	workers.Settings
	// AllowedCommands (cloud only) lists the commands an operator may
	// apply: each the start of an argv, as ["/opt/app/train.sh"] or
	// ["/usr/bin/python3", "/opt/app/train.py"]. An admin may apply any.
	AllowedCommands [][]string `json:"allowedCommands,omitempty"`
}

// ModelsConfig configures the model registry's imports.
type ModelsConfig struct {
	// Dirs are the directories whose files a Model's url may name; the
	// cloud opens no other file for a Model. Default {dataDir}/models.
	Dirs []string `json:"dirs,omitempty"`
}

// PluginConfig configures the cloud's plugin host (plugins.Settings).
type PluginConfig = plugins.Settings

// BrokerConfig configures the embedded cloud broker
// (broker.ListenerConfig); its Listen defaults to 127.0.0.1:1884, and its
// CredentialsFile, which lists the nodes, operators, viewers and admins,
// is required.
type BrokerConfig = broker.ListenerConfig

// QueueConfig bounds the per-node outbox (broker.QueueLimits).
type QueueConfig = broker.QueueLimits

// ExternalBroker is a broker the manager uses as a client.
type ExternalBroker struct {
	URL      string `json:"url,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// ClientIDPrefix names the manager's sessions; default "sedna-cloud".
	ClientIDPrefix string `json:"clientIDPrefix,omitempty"`
	// AMQP are the RabbitMQ nodes' AMQP URLs (amqp://host:5672, separated
	// by commas; the user is Username unless a URL names one), where
	// replicas read their partitions of the nodes' frames
	// (etcd.partitions).
	AMQP string `json:"amqp,omitempty"`
	// Roles gives each user of the external broker its role on the
	// control plane (operator, viewer or admin), since the manager does
	// not see that broker's credentials. The broker's ACL must let each
	// user write only its own request topic (mosquitto:
	// "pattern write sedna/v1/api/request/%u"); docs/SECURITY.md.
	Roles map[string]access.UserRole `json:"roles,omitempty"`
}

// Options is what Config cannot say in YAML.
type Options struct {
	Logger *slog.Logger
	// Credentials, if set, are used instead of Broker.CredentialsFile.
	Credentials *access.Credentials
	// Paradigms are the learning paradigms the cloud runs (joint
	// inference, federated learning, ...): each one's cloud half is
	// started with the control plane, and gives its built-in workers and
	// its jobs' status view. The manager imports none of them; a command
	// or an embedder chooses.
	Paradigms paradigm.Set
	// Context bounds a replica's wait for its leadership (with etcd):
	// Start returns its error if it ends first. Default: no bound.
	Context context.Context
}

// Manager is a running cloud manager.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	store     store.Store
	metrics   *metrics.Set
	srv       *broker.Server
	ingress   *cloudlink.Ingress
	downlink  *cloudlink.Downlink
	dead      *queue.DeadLetters
	bus       cloudlink.Bus
	client    *cloudlink.ClientBus
	relay     *cloudlink.Relay
	http      *httpserve.Server
	plugins   *plugins.Host
	control   *ControlPlane
	opts      Options
	paradigms *paradigm.Started
	roles     func(user string) (access.UserRole, bool)
	identity  *identity
	joinAddr  string
	dash      *dashboard
	dashStop  func() error
	creds     *access.Credentials
	replica   *replica
	lost      chan struct{}
	sharer    *sharer    // with etcd.partitions
	forwarder *forwarder // with etcd.partitions, while leading
	lostOnce  sync.Once
	once      sync.Once
}

// Start opens the store, starts the embedded broker (or connects to the
// external one) and the cloud half of every bridge.
func Start(cfg Config, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "sedna-cloud"
	}
	if cfg.Downlink.MaxBytes == 0 {
		cfg.Downlink.MaxBytes = 1 << 30
	}
	if cfg.Metrics == "" {
		cfg.Metrics = "127.0.0.1:9465"
	}
	if cfg.External.ClientIDPrefix == "" {
		cfg.External.ClientIDPrefix = "sedna-cloud"
	}
	if err := opts.Paradigms.Check(); err != nil {
		return nil, err
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	m := &Manager{cfg: cfg, opts: opts, log: opts.Logger.With("component", "cloud"), lost: make(chan struct{})}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("cloud: data dir: %w", err)
	}
	fail := func(err error) (*Manager, error) {
		m.Close()
		return nil, err
	}
	var err error
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.metrics = metrics.New(reg)
	m.metrics.Zero("cloud")
	if cfg.Etcd.on() {
		if err := m.elect(opts.Context); err != nil {
			return fail(err)
		}
	} else if m.store, err = store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, "store"), Mode: cfg.WriteMode, Logger: m.log}); err != nil {
		return nil, err
	}
	m.dead, err = queue.OpenDeadLetters(store.Sub(m.store, "dl/"), 0, m.reportError, m.metrics, m.log)
	if err != nil {
		return fail(err)
	}
	dc := cloudlink.DownlinkConfig{Store: m.store, Dead: m.dead, Metrics: m.metrics, Logger: m.log,
		Queue: queue.Options{MaxBytes: cfg.Downlink.MaxBytes, MaxAge: time.Duration(cfg.Downlink.MaxAge), Policy: cfg.Downlink.Policy}}
	if m.forwarder != nil {
		dc.Forward = m.forwarder.forward
	}
	m.downlink, err = cloudlink.NewDownlink(dc)
	if err != nil {
		return fail(err)
	}
	if cfg.External.URL != "" {
		if err := m.startExternal(); err != nil {
			return fail(err)
		}
	} else if err := m.startEmbedded(opts); err != nil {
		return fail(err)
	}
	if err := m.downlink.Start(m.bus); err != nil {
		return fail(err)
	}
	if err := m.startControl(); err != nil {
		return fail(err)
	}
	reg.MustRegister(jobCollector{m.control})
	if cfg.Metrics != "off" {
		tick := time.Duration(cfg.DashboardTick)
		if tick <= 0 {
			tick = 2 * time.Second
		}
		m.dash = newDashboard(m.control, m.cfg.Name, m.checkUser, tick, m.log)
		if m.dashStop, err = m.dash.watchRounds(m.bus); err != nil {
			return fail(err)
		}
		go m.dash.run()
	}
	// What an external broker's persistent session kept for the manager
	// is handed over once every subscription of the start is made (a
	// message of a filter none made is acknowledged and dropped).
	if m.client != nil {
		m.client.Release()
	}
	// The embedded broker serves once every in-process subscription is
	// made: mochi reads its retained messages for a new inline
	// subscription without the lock a client's retained publish takes (a
	// data race seen when a node published its status meanwhile).
	if m.srv != nil {
		if err := m.srv.Start(); err != nil {
			return fail(err)
		}
		if err := m.listenJoin(); err != nil {
			return fail(err)
		}
	}
	if cfg.Metrics != "off" {
		var routes []httpserve.Route
		if m.dash != nil {
			routes = append(routes, httpserve.Route{Pattern: "/dashboard/", Handler: m.dash.Handler()})
		}
		if m.http, err = httpserve.Start(cfg.Metrics, reg, cfg.Profiles, m.Ready, m.log, routes...); err != nil {
			return fail(err)
		}
	}
	m.log.Info("cloud manager started", "broker", m.BrokerURL(), "store", cfg.DataDir, "writeMode", m.store.Mode())
	return m, nil
}

func (m *Manager) startEmbedded(opts Options) error {
	creds := opts.Credentials
	if creds == nil {
		if m.cfg.Broker.CredentialsFile == "" {
			return errors.New("cloud: the embedded broker needs a credentials file (broker.credentialsFile or --credentials); make entries with `sedna passwd`")
		}
		var err error
		if creds, err = access.LoadCredentials(m.cfg.Broker.CredentialsFile); err != nil {
			return err
		}
	}
	if err := checkPlaintext(m.cfg.Broker.Listen, m.cfg.InsecureListen); err != nil {
		return err
	}
	if m.cfg.Identity.on() {
		if err := m.startIdentity(creds); err != nil {
			return err
		}
	}
	var err error
	m.ingress, err = cloudlink.NewIngress(cloudlink.IngressConfig{Store: m.store, Dead: m.dead, Metrics: m.metrics, Logger: m.log})
	if err != nil {
		return err
	}
	m.srv, err = broker.NewServer(broker.Config{
		Role: access.RoleCloud, Listen: m.cfg.Broker.Listen, TLS: m.cfg.Broker.TLS, WebSocket: m.cfg.Broker.WebSocket,
		MaxPacketSize: m.cfg.Broker.MaxPacketSize, Limits: m.cfg.Broker.Limits, Subscribers: m.cfg.Broker.Subscribers,
		Credentials: creds, Store: m.store,
		Dead: m.dead, Metrics: m.metrics, Logger: m.log,
		Hooks: []mqtt.Hook{m.ingress, m.downlink},
	})
	if err != nil {
		return err
	}
	m.ingress.Attach(m.srv)
	m.downlink.Attach(m.srv)
	m.srv.SetReport(m.reportError)
	if err := m.srv.Listen(); err != nil {
		return err
	}
	m.bus = cloudlink.NewInlineBus(m.srv, access.SystemPrincipal("cloud"))
	m.roles, m.creds = creds.Role, creds
	return nil
}

// checkUser says whether user and password are those of a user of the
// cloud broker who may read (a viewer, an operator or an admin).
func (m *Manager) checkUser(user, password string) bool {
	if m.creds == nil {
		return false
	}
	u, ok := m.creds.Check([]byte(user), []byte(password))
	return ok && (u.Role == access.UserViewer || u.Role == access.UserOperator || u.Role == access.UserAdmin)
}

// dashboardURL is a link to the dashboard for user: its path with a token,
// and the address it is served on.
func (m *Manager) dashboardURL(user string) (string, string, error) {
	if m.dash == nil || m.http == nil {
		return "", "", errors.New("this cloud serves no dashboard (its metrics address is off)")
	}
	return "/dashboard/?token=" + m.dash.token(user, time.Now().Add(12*time.Hour)), m.http.Addr(), nil
}

func (m *Manager) startExternal() error {
	ext := m.cfg.External
	client := func(suffix string) cloudlink.ClientConfig {
		return cloudlink.ClientConfig{URL: ext.URL, ClientID: ext.ClientIDPrefix + "-" + suffix, Username: ext.Username, Password: ext.Password}
	}
	var err error
	if m.client, err = cloudlink.DialBus(client("bus")); err != nil {
		return err
	}
	m.bus = m.client
	roles := map[string]access.UserRole{}
	for u, r := range ext.Roles {
		switch r {
		case access.UserCloud:
			r = access.UserOperator
		case access.UserOperator, access.UserViewer, access.UserAdmin:
		default:
			return fmt.Errorf("cloud: external.roles: user %q has role %q (want operator, viewer or admin)", u, r)
		}
		roles[u] = r
	}
	m.roles = func(u string) (access.UserRole, bool) { r, ok := roles[u]; return r, ok }
	// Messages for nodes: taken into the outbox, acknowledged once there.
	// Who published one is not known here, so only what any user may send
	// a node is taken: jobs reach nodes through the control plane alone.
	if err := m.client.Subscribe(topics.ToNodeFilter(), func(topic string, payload []byte) error {
		p, err := topics.Parse(topic)
		if err != nil {
			return nil
		}
		if err := access.Authorize(access.RoleCloud, "", access.Principal{Kind: access.Operator}, access.PathPublish, topic); err != nil {
			m.log.Warn("a message for a node refused", "topic", topic, "error", err)
			return nil
		}
		_, err = m.downlink.Send(p.Node, topic, payload, false, 1, 0)
		return err
	}); err != nil {
		return err
	}
	if m.sharer != nil {
		return nil // the replicas relay the nodes' frames from their partitions
	}
	m.relay, err = cloudlink.NewRelay(cloudlink.RelayConfig{Client: client("ingress"), Bus: m.client, Store: m.store,
		Dead: m.dead, Metrics: m.metrics, Logger: m.log})
	if err != nil {
		return err
	}
	return m.relay.Start()
}

func (m *Manager) reportError(ev topics.ErrorEvent) {
	if m.bus != nil {
		publishError(m.bus, "cloud/manager", ev)
	}
}

// publishError publishes ev, from source, on the cloud's error events.
func publishError(bus cloudlink.Bus, source string, ev topics.ErrorEvent) {
	env, err := topics.NewEnvelope(topics.KindError, source, ev)
	if err != nil {
		return
	}
	if raw, err := env.Marshal(); err == nil {
		_ = bus.Publish(topics.CloudEvents("error"), raw, false, 0)
	}
}

// BrokerURL is where nodes and apps connect: the embedded broker's TCP
// listener, or the external broker.
func (m *Manager) BrokerURL() string {
	if m.srv != nil {
		return m.srv.URL()
	}
	return m.cfg.External.URL
}

// Ready is nil when the cloud can do its work: its store answers, its
// embedded broker serves (or the external one is connected) and its
// control plane runs; else the reasons it cannot, one per line (/readyz).
func (m *Manager) Ready() error {
	var errs []error
	if err := store.Check(m.store); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if m.srv != nil {
		if err := m.srv.Serving(); err != nil {
			errs = append(errs, err)
		}
	} else if m.client == nil {
		errs = append(errs, errors.New("no broker"))
	}
	if m.control == nil {
		errs = append(errs, errors.New("the control plane is not running"))
	}
	return errors.Join(errs...)
}

// MetricsAddr is the address of /metrics, or "" if off.
func (m *Manager) MetricsAddr() string {
	if m.http == nil {
		return ""
	}
	return m.http.Addr()
}

// Broker returns the embedded broker, or nil with an external one.
func (m *Manager) Broker() *broker.Server { return m.srv }

// Downlink returns the per-node outbox.
func (m *Manager) Downlink() *cloudlink.Downlink { return m.downlink }

// DeadLetters returns the manager's dead-letter store.
func (m *Manager) DeadLetters() *queue.DeadLetters { return m.dead }

// Store returns the manager's store.
func (m *Manager) Store() store.Store { return m.store }

// Control returns the control plane.
func (m *Manager) Control() *ControlPlane { return m.control }

// Plugins returns the manager's plugin host.
func (m *Manager) Plugins() *plugins.Host { return m.plugins }

func (m *Manager) startControl() error {
	if m.cfg.Name == "" {
		m.cfg.Name = "cloud"
	}
	var err error
	m.plugins, err = plugins.New(context.Background(), plugins.Config{CacheDir: filepath.Join(m.cfg.DataDir, "wasm-cache"),
		Dirs: m.cfg.Plugins.Dirs, Allow: m.cfg.Plugins.Allow, Logger: m.log})
	if err != nil {
		return err
	}
	runAs, err := workers.RunAs(m.cfg.Workers.User)
	if err != nil {
		return fmt.Errorf("cloud: workers.user: %w", err)
	}
	dirs, dataDirs := m.cfg.Models.Dirs, m.cfg.Data.Dirs
	for _, d := range []struct {
		dirs *[]string
		name string
	}{{&dirs, "models"}, {&dataDirs, "data"}} {
		if len(*d.dirs) == 0 {
			*d.dirs = []string{filepath.Join(m.cfg.DataDir, d.name)}
			if err := os.MkdirAll((*d.dirs)[0], 0o750); err != nil {
				return fmt.Errorf("cloud: %s dir: %w", d.name, err)
			}
		}
		// Jobs name files by absolute paths: a directory given relative
		// to where the manager started ("--read-dir run/fl") is that
		// directory, not a prefix no absolute path has.
		abs := make([]string, len(*d.dirs))
		for i, dir := range *d.dirs {
			if abs[i], err = filepath.Abs(dir); err != nil {
				return fmt.Errorf("cloud: %s dir %s: %w", d.name, dir, err)
			}
		}
		*d.dirs = abs
	}
	caDir := m.cfg.Identity.CADir
	if caDir == "" {
		caDir = filepath.Join(m.cfg.DataDir, "pki")
	}
	nodeKey := func(node string) (*ecdh.PublicKey, error) {
		return nil, fmt.Errorf("node %s cannot get secrets: this cloud gives nodes no identities (--join-listen, --tls-listen)", node)
	}
	if m.identity != nil {
		nodeKey = m.identity.join.SealKey
	}
	secrets, err := openSecrets(store.Sub(m.store, "secrets/"), caDir, nodeKey)
	if err != nil {
		return err
	}
	var backlog func() []queue.StreamStats
	if m.sharer != nil {
		backlog = func() []queue.StreamStats {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return readBacklog(ctx, m.replica.client, m.replica.prefix, m.log)
		}
	}
	m.control, err = NewControlPlane(ControlConfig{Name: m.cfg.Name, Store: store.Sub(m.store, "cp/"), Bus: m.bus, Secrets: secrets, Backlog: backlog,
		Downlink: m.downlink, Admission: MinerAdmission(m.plugins), WorkerLogDir: filepath.Join(m.cfg.DataDir, "workers"),
		BrokerURL: m.BrokerURL(), Logger: m.log, Builtins: m.startParadigms, View: m.view, JobOps: m.jobOp, Roles: m.roles, RunAs: runAs, PassEnv: m.cfg.Workers.PassEnv,
		AdminOps: m.identityOp, DashboardURL: m.dashboardURL,
		StatusSweep: time.Duration(m.cfg.Nodes.StatusSweep), StatusGrace: time.Duration(m.cfg.Nodes.StatusGrace),
		Access: Access{AllowedCommands: m.cfg.Workers.AllowedCommands, ModelDirs: dirs, DataDirs: dataDirs}, Dead: m.dead})
	return err
}

// MinerAdmission checks hard-example miners against a plugin host.
func MinerAdmission(h *plugins.Host) api.Admission {
	return api.Admission{MinerParams: func(name string) ([]string, bool) {
		for _, p := range h.Plugins() {
			if p.Name == name && p.Kind == abi.KindMiner {
				keys := make([]string, 0, len(p.Parameters))
				for _, q := range p.Parameters {
					keys = append(keys, q.Key)
				}
				return keys, true
			}
		}
		return nil, false
	}}
}

// Close stops everything: clients first, then the broker, the outbox, and
// the store last.
func (m *Manager) Close() {
	m.once.Do(func() {
		select {
		case <-m.lost:
			// A replica that lost its leadership leaves the broker first:
			// its successor connects with the same client IDs, and each
			// reconnection of this one would take the sessions back.
			if m.relay != nil {
				_ = m.relay.Close()
			}
			if m.client != nil {
				_ = m.client.Close()
			}
		default:
		}
		if m.identity != nil {
			_ = m.identity.join.Close()
		}
		// The dashboard first: its event streams end with it, so that the
		// HTTP server's shutdown does not wait for them.
		if m.dashStop != nil {
			_ = m.dashStop()
		}
		if m.dash != nil {
			m.dash.close()
		}
		if m.http != nil {
			m.http.Close()
		}
		if m.control != nil {
			m.control.Close()
		}
		if m.paradigms != nil {
			m.paradigms.Close() // after the workers, which the control plane stopped
		}
		if m.plugins != nil {
			_ = m.plugins.Close(context.Background())
		}
		if m.relay != nil {
			_ = m.relay.Close()
		}
		if m.srv != nil {
			_ = m.srv.Close()
		}
		if m.ingress != nil {
			_ = m.ingress.Stop()
		}
		if m.downlink != nil {
			_ = m.downlink.Close()
		}
		if m.client != nil {
			_ = m.client.Close()
		}
		if m.store != nil {
			if err := m.store.Close(); err != nil {
				m.log.Error("store close", "error", err)
			}
		}
		if m.sharer != nil {
			m.sharer.close()
		}
		if m.forwarder != nil {
			m.forwarder.close()
		}
		if m.replica != nil {
			m.replica.close()
		}
	})
}

// checkPlaintext refuses a plaintext listener on an address other than
// loopback unless insecure says it is meant.
func checkPlaintext(listen string, insecure bool) error {
	if listen == "" || listen == "off" || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("cloud: broker.listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("cloud: a plaintext listener on %s sends passwords and messages in clear to anyone on the network: "+
		"nodes bridge over mutual TLS (--tls-listen, and --join-listen for their tokens); say --insecure-listen to mean it", listen)
}
