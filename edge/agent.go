// Package edge is the edge agent of Sedna-Go (Sedna's LocalController): one
// process per edge node that runs the node's MQTT broker, its durable
// bridge to the cloud and its one store. Later it runs the job workers
// (inference, training, dataset ingestion) beside them.
//
// The agent imports broker, store and topics; it never imports cloud: the
// two meet only on topics.
package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/internal/httpserve"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Config configures an edge agent. It is read from YAML (`sedna edge
// --config`); flags override it. Every field has a working default but
// Node and Cloud.URL.
type Config struct {
	// Node is this node's name, one topic level.
	Node string `json:"node"`
	// DataDir holds the node's store; default ./sedna-edge-{node}.
	DataDir string `json:"dataDir,omitempty"`
	// WriteMode is the durability of the store: "process" (default) or "sync".
	WriteMode store.Mode `json:"writeMode,omitempty"`
	// Broker is the node's MQTT broker.
	Broker BrokerConfig `json:"broker,omitempty"`
	// Cloud is the link to the cloud broker.
	Cloud CloudLink `json:"cloud"`
	// Rules replace the default bridge rules; ExtraRules are added to
	// whichever rules apply.
	Rules      []bridge.Rule `json:"rules,omitempty"`
	ExtraRules []bridge.Rule `json:"extraRules,omitempty"`
	// Queue bounds the uplink queue.
	Queue QueueConfig `json:"queue,omitempty"`
	// Metrics is the address of the Prometheus /metrics endpoint; default
	// 127.0.0.1:9464, "off" disables it.
	Metrics string `json:"metrics,omitempty"`
	// Profiles serves Go's /debug/pprof/ beside /metrics, on a loopback
	// address only; off by default.
	Profiles bool `json:"profiles,omitempty"`
	// MemoryLimit is a soft limit of the Go heap in bytes (the garbage
	// collector works harder near it, memory is never refused); default
	// 18 MiB, negative leaves the runtime's default. It applies to the
	// whole process.
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
	// DatasetPoll is how often the files of the node's Datasets are checked
	// for appended lines; default 1s.
	DatasetPoll broker.Duration `json:"datasetPoll,omitempty"`
	// Plugins configures the node's plugin host (hard-example miners of
	// its built-in workers).
	Plugins PluginConfig `json:"plugins,omitempty"`
	// Workers says who the node's external workers run as.
	Workers workers.Settings `json:"workers,omitempty"`
}

// PluginConfig configures the node's plugin host (plugins.Settings).
type PluginConfig = plugins.Settings

// BrokerConfig configures the node's embedded broker
// (broker.ListenerConfig); its Listen defaults to 127.0.0.1:1883.
type BrokerConfig = broker.ListenerConfig

// QueueConfig bounds the node's uplink queue (broker.QueueLimits).
type QueueConfig = broker.QueueLimits

// CloudLink says how the node reaches the cloud broker.
type CloudLink struct {
	// URL is tcp://, ssl://, ws:// or wss://.
	URL      string `json:"url"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// PasswordFile, if set, holds the password (so it stays out of the
	// config file).
	PasswordFile string `json:"passwordFile,omitempty"`
	// CAFile verifies the cloud broker's certificate.
	CAFile string `json:"caFile,omitempty"`
	// ReconnectMin and ReconnectMax bound the wait between connection
	// attempts, a random wait under a ceiling that doubles after each
	// failure; defaults 100ms and 10s. While the link was up in the last
	// minute the ceiling stops at 1s, so a link that returns is used
	// within about a second.
	ReconnectMin broker.Duration `json:"reconnectMin,omitempty"`
	ReconnectMax broker.Duration `json:"reconnectMax,omitempty"`
}

// Options is what Config cannot say in YAML.
type Options struct {
	Logger  *slog.Logger
	Version string
	// KeepMemoryLimit leaves the process's memory limit alone (for an
	// agent embedded in a larger program, or several in one test).
	KeepMemoryLimit bool
	// Clock stamps and expires the node's messages; nil means the system
	// clock. The simulator skews it and makes it jump.
	Clock broker.Clock
	// Builtins, if set, adds or replaces built-in workers, by "Kind/role"
	// (workers.BuiltinKey): for a program that embeds the agent and brings
	// its own in-process workers. It is called once, with the agent.
	Builtins func(*Agent) map[string]workers.Builtin
	// Paradigms are the learning paradigms the node runs (joint
	// inference, federated learning, ...): each one's edge half is
	// started with the node, and gives its built-in workers. The agent
	// imports none of them; a command or an embedder chooses.
	Paradigms paradigm.Set
	// Identity, if set, is the identity the node joined the cloud with
	// (Join, LoadIdentity): the bridge logs in by its certificate over
	// mutual TLS, to cloud.url or the identity's broker, and the agent
	// renews the certificate before it expires.
	Identity *Identity
}

// Agent is a running edge node.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	store     store.Store
	srv       *broker.Server
	bridge    *bridge.Bridge
	metrics   *metrics.Set
	http      *httpserve.Server
	workers   *workers.Supervisor
	jobs      *jobs
	datasets  *datasets
	models    *Models
	logs      *logs
	plugins   lazyHost
	paradigms *paradigm.Started
	// identity is the node's identity from joining (nil: a password).
	identity *Identity
	// renewing ends the renewal of the node's certificate; renewed is
	// closed when it has.
	renewing context.CancelFunc
	renewed  chan struct{}
	once     sync.Once
}

// Start opens the node's store, starts its broker and connects its bridge.
func Start(cfg Config, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if id := opts.Identity; id != nil {
		if cfg.Node == "" {
			cfg.Node = id.Node
		}
		if cfg.Node != id.Node {
			return nil, fmt.Errorf("edge: this node is %s, but it joined the cloud as %s", cfg.Node, id.Node)
		}
		if cfg.Cloud.URL == "" {
			cfg.Cloud.URL = id.BrokerURL
		}
	}
	if cfg.Cloud.URL == "" {
		return nil, errors.New("edge: no cloud URL (cloud.url or --cloud)")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "sedna-edge-" + cfg.Node
	}
	if cfg.Queue.MaxBytes == 0 {
		cfg.Queue.MaxBytes = 256 << 20
	}
	if cfg.Metrics == "" {
		cfg.Metrics = "127.0.0.1:9464"
	}
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = 18 << 20
	}
	if cfg.MemoryLimit > 0 && !opts.KeepMemoryLimit {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if cfg.Cloud.PasswordFile != "" {
		b, err := os.ReadFile(cfg.Cloud.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("edge: cloud password: %w", err)
		}
		cfg.Cloud.Password = string(trimNewline(b))
	}
	a := &Agent{cfg: cfg, log: opts.Logger.With("node", cfg.Node), identity: opts.Identity}
	var creds *access.Credentials
	if cfg.Broker.CredentialsFile != "" {
		var err error
		if creds, err = access.LoadCredentials(cfg.Broker.CredentialsFile); err != nil {
			return nil, err
		}
	}
	var tlsConf *tls.Config
	if cfg.Cloud.CAFile != "" {
		pem, err := os.ReadFile(cfg.Cloud.CAFile)
		if err != nil {
			return nil, fmt.Errorf("edge: cloud CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("edge: cloud CA %s: no certificate", cfg.Cloud.CAFile)
		}
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if id := opts.Identity; id != nil {
		urls, err := broker.SplitURLs(cfg.Cloud.URL)
		if err != nil {
			return nil, fmt.Errorf("edge: %w", err)
		}
		for _, raw := range urls {
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtts") {
				return nil, fmt.Errorf("edge: a node with an identity bridges over mutual TLS: want an ssl:// cloud URL, got %q", raw)
			}
		}
		// No server name: each connection checks the name of the host it
		// dials (crypto/tls takes it from the address), so the brokers of
		// a list may have names of their own.
		tlsConf = id.TLS("")
		cfg.Cloud.Username, cfg.Cloud.Password = "", ""
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("edge: data dir: %w", err)
	}
	var err error
	// 1 MiB memtables: a node's writes are small records that the uplink
	// deletes soon after, and each memtable is held in the Go heap twice
	// over (its arena, then the table built from it when it is flushed).
	a.store, err = store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, "store"), Mode: cfg.WriteMode, Logger: a.log,
		MemTableBytes: 1 << 20})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = metrics.New(reg)
	a.metrics.Zero("edge")
	fail := func(err error) (*Agent, error) {
		a.Close()
		return nil, err
	}
	a.srv, err = broker.NewServer(broker.Config{
		Role: access.RoleEdge, Node: cfg.Node, Listen: cfg.Broker.Listen, TLS: cfg.Broker.TLS,
		WebSocket: cfg.Broker.WebSocket, MaxPacketSize: cfg.Broker.MaxPacketSize, Limits: cfg.Broker.Limits, Subscribers: cfg.Broker.Subscribers, Credentials: creds,
		Store: a.store, Metrics: a.metrics, Logger: a.log, Clock: opts.Clock,
	})
	if err != nil {
		return fail(err)
	}
	rules := cfg.Rules
	if rules == nil {
		rules = bridge.DefaultRules()
	}
	rules = append(append([]bridge.Rule{}, rules...), cfg.ExtraRules...)
	a.bridge, err = bridge.New(bridge.Config{
		Node: cfg.Node, CloudURL: cfg.Cloud.URL, Username: cfg.Cloud.Username, Password: cfg.Cloud.Password,
		TLS: tlsConf, Rules: rules, Store: a.store, Server: a.srv, Version: opts.Version,
		MinBackoff: time.Duration(cfg.Cloud.ReconnectMin), MaxBackoff: time.Duration(cfg.Cloud.ReconnectMax),
		Queue:   queue.Options{MaxBytes: cfg.Queue.MaxBytes, MaxAge: time.Duration(cfg.Queue.MaxAge), Policy: cfg.Queue.Policy},
		Metrics: a.metrics, Logger: a.log,
	})
	if err != nil {
		return fail(err)
	}
	if err := opts.Paradigms.Check(); err != nil {
		return fail(err)
	}
	builtins := a.startParadigms(opts.Paradigms)
	if opts.Builtins != nil {
		maps.Copy(builtins, opts.Builtins(a))
	}
	runAs, err := workers.RunAs(cfg.Workers.User)
	if err != nil {
		return fail(fmt.Errorf("edge: workers.user: %w", err))
	}
	a.workers = workers.New(workers.Config{Node: cfg.Node, LogDir: filepath.Join(cfg.DataDir, "workers"), Log: a.log,
		RunAs: runAs, PassEnv: cfg.Workers.PassEnv, Env: a.workerEnv,
		Report:        func(spec workers.Spec, st api.WorkerStatus) { a.jobs.report(spec, st) },
		ReportMetrics: func(spec workers.Spec, m topics.WorkerMetrics) { a.jobs.reportMetrics(spec, m) },
		Builtins:      builtins})
	a.jobs = newJobs(cfg.Node, store.Sub(a.store, "jobs/"), a.srv, a.bridge, a.workers, a.log)
	a.datasets = newDatasets(cfg.Node, store.Sub(a.store, "ds/"), a.srv, a.bridge, time.Duration(cfg.DatasetPoll), a.log)
	a.jobs.onSpec = append(a.jobs.onSpec, a.datasets.onSpec)
	a.models = newModels(cfg.Node, store.Sub(a.store, "models/"), a.srv, a.bridge, a.log)
	a.jobs.onModel = a.models.onOffer
	a.logs = newLogs(cfg.Node, filepath.Join(cfg.DataDir, "workers"), a.srv, a.bridge, a.workers, a.log)
	if err := a.logs.subscribe(); err != nil {
		return fail(err)
	}
	// In-process subscriptions before the broker serves: see jobs.subscribe.
	if err := a.models.start(); err != nil {
		return fail(err)
	}
	if err := a.datasets.subscribe(); err != nil {
		return fail(err)
	}
	if err := a.jobs.subscribe(); err != nil {
		return fail(err)
	}
	if err := a.srv.Start(); err != nil {
		return fail(err)
	}
	a.jobs.run()
	a.bridge.Start()
	if id := opts.Identity; id != nil {
		ctx, cancel := context.WithCancel(context.Background())
		a.renewing, a.renewed = cancel, make(chan struct{})
		go func() {
			defer close(a.renewed)
			id.RenewLoop(ctx, a.log)
		}()
	}
	if cfg.Metrics != "off" {
		if a.http, err = httpserve.Start(cfg.Metrics, reg, cfg.Profiles, a.Ready, a.log); err != nil {
			return fail(err)
		}
	}
	a.log.Info("edge agent started", "broker", a.srv.Addr("tcp"), "cloud", cfg.Cloud.URL, "store", cfg.DataDir,
		"writeMode", a.store.Mode(), "epoch", fmt.Sprintf("%016x", a.store.Epoch()))
	return a, nil
}

// Ready is nil when the node can do its work: its store answers, its
// broker serves and its link to the cloud is up; else the reasons it
// cannot, one per line (/readyz).
func (a *Agent) Ready() error {
	var errs []error
	if err := store.Check(a.store); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if err := a.srv.Serving(); err != nil {
		errs = append(errs, err)
	}
	if up, _ := a.bridge.Connected(); !up {
		errs = append(errs, fmt.Errorf("the link to the cloud (%s) is down", a.cfg.Cloud.URL))
	}
	return errors.Join(errs...)
}

// Models returns the node's model cache.
func (a *Agent) Models() *Models { return a.models }

// BrokerAddr is the address of the node's MQTT listener.
func (a *Agent) BrokerAddr() string { return a.srv.Addr("tcp") }

// MetricsAddr is the address of /metrics, or "" if off.
func (a *Agent) MetricsAddr() string {
	if a.http == nil {
		return ""
	}
	return a.http.Addr()
}

// Bridge returns the node's bridge.
func (a *Agent) Bridge() *bridge.Bridge { return a.bridge }

// Workers reports the workers the node runs now, by ID
// (kind/namespace/name/role).
func (a *Agent) Workers() map[string]api.WorkerStatus { return a.workers.Statuses() }

// Server returns the node's broker.
func (a *Agent) Server() *broker.Server { return a.srv }

// Store returns the node's store.
func (a *Agent) Store() store.Store { return a.store }

// Close stops the bridge (telling the cloud the node goes offline), the
// broker and the store, in that order. The bridge goes first so that it
// never delivers a downlink message into a broker that is stopping; a
// local publish that arrives meanwhile is refused (no PUBACK), so its
// sender keeps it.
func (a *Agent) Close() {
	a.once.Do(func() {
		if a.renewing != nil {
			a.renewing()
			<-a.renewed
		}
		if a.http != nil {
			a.http.Close()
		}
		if a.logs != nil {
			a.logs.close()
		}
		if a.jobs != nil {
			a.jobs.close()
		}
		if a.datasets != nil {
			a.datasets.close()
		}
		if a.models != nil {
			a.models.close()
		}
		if a.workers != nil {
			a.workers.Close() // their last reports still reach the queue
		}
		a.closePlugins()
		if a.paradigms != nil {
			a.paradigms.Close()
		}
		if a.bridge != nil {
			_ = a.bridge.Close()
		}
		if a.srv != nil {
			_ = a.srv.Close()
		}
		if a.store != nil {
			if err := a.store.Close(); err != nil {
				a.log.Error("store close", "error", err)
			}
		}
	})
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// SpecRevision returns the revision of the spec key (kind/namespace/name)
// the node holds, and whether it is a tombstone; ok is false if the node
// never had it.
func (a *Agent) SpecRevision(key string) (rev topics.Revision, deleted, ok bool) {
	return a.jobs.revision(key)
}
