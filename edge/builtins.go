package edge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// startParadigms starts the edge half of every paradigm the agent runs,
// and returns their built-in workers, by "Kind/role".
func (a *Agent) startParadigms(set paradigm.Set) map[string]workers.Builtin {
	a.paradigms = set.Start(paradigm.Edge, a.Env, a.log)
	return a.paradigms.Builtins()
}

// Env is the environment the agent gives p's edge half: for an embedder
// that builds a paradigm's workers itself (Options.Builtins), around the
// node's own bus.
func (a *Agent) Env(p paradigm.Paradigm) paradigm.Env {
	return paradigm.Env{
		Side:    paradigm.Edge,
		Node:    a.cfg.Node,
		Bus:     &edgeBus{srv: a.srv, bridge: a.bridge},
		Data:    edgeData{a},
		Models:  edgeModels{a},
		Plugins: a.pluginHost,
		Now:     a.srv.Now,
		Log:     a.log,
		Store:   store.Sub(a.store, p.Name()+"/"),
	}
}

// edgeBus is a paradigm's bus on a node: the node's broker, and its
// bridge to the cloud.
type edgeBus struct {
	srv    *broker.Server
	bridge *bridge.Bridge
}

func (b *edgeBus) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(access.SystemPrincipal("paradigm"), topic, payload, retain, qos)
}

func (b *edgeBus) Answer(topic string, payload []byte) error {
	return b.srv.Publish(access.LocalAppPrincipal, topic, payload, false, 1)
}

func (b *edgeBus) Subscribe(filter string, h func(paradigm.Message) error) (func() error, error) {
	return b.srv.Watch(filter, func(topic string, payload []byte, retained bool) {
		_ = h(paradigm.Message{Topic: topic, Payload: payload, Retained: retained})
	})
}

func stream(m paradigm.Outbound) topics.Stream {
	if m.Bulk {
		return topics.StreamBulk
	}
	return topics.StreamEvents
}

func (b *edgeBus) Send(m paradigm.Outbound) error {
	if m.Node != "" {
		return fmt.Errorf("edge: a message for node %q: a node sends only to the cloud", m.Node)
	}
	return b.bridge.SendUntil(stream(m), m.Topic, m.Payload, false, m.Expires)
}

func (b *edgeBus) SendNow(m paradigm.Outbound) error {
	if m.Node != "" {
		return fmt.Errorf("edge: a message for node %q: a node sends only to the cloud", m.Node)
	}
	err := b.bridge.SendNow(stream(m), m.Topic, m.Payload, m.Expires)
	if errors.Is(err, bridge.ErrLinkDown) {
		return fmt.Errorf("%w: %w", paradigm.ErrOffline, err)
	}
	return err
}

func (b *edgeBus) Link() (bool, <-chan struct{}) { return b.bridge.Connected() }

// edgeData reads the node's datasets.
type edgeData struct{ a *Agent }

func (d edgeData) Samples(namespace, name string, after uint64, fn func(i uint64, sample []byte) error) error {
	return d.a.SamplesAfter(namespace, name, after, fn)
}

func (d edgeData) Columns(namespace, name string) ([]string, error) {
	return d.a.Columns(namespace, name)
}

func (edgeData) Open(path string) (*os.File, error) {
	return nil, fmt.Errorf("open %s: %w (a node's samples are read with Samples)", path, paradigm.ErrNotHere)
}

// edgeModels reads the models the node holds.
type edgeModels struct{ a *Agent }

func (m edgeModels) Latest(namespace, name string, have uint64) (uint64, []byte, error) {
	cur, err := m.a.models.Current(namespace, name)
	if err != nil {
		return 0, nil, err
	}
	if cur.Version == have {
		return cur.Version, nil, nil
	}
	return cur.Version, cur.Data, nil
}

func (m edgeModels) Describe(namespace, name string, version uint64) (paradigm.ModelInfo, error) {
	cur, err := m.a.models.Current(namespace, name)
	if err != nil {
		return paradigm.ModelInfo{}, err
	}
	if cur.Version != version {
		return paradigm.ModelInfo{}, fmt.Errorf("edge: model %s/%s version %d is no longer held (%d is)", namespace, name, version, cur.Version)
	}
	return paradigm.ModelInfoOf(cur.Format, cur.IO)
}

func (edgeModels) Register(context.Context, string, string, string, string, map[string]string, []byte) (uint64, error) {
	return 0, fmt.Errorf("register a model: %w (models are registered in the cloud)", paradigm.ErrNotHere)
}

// pluginHost is the node's WASM plugin host, started when a worker first
// needs it (most nodes mine nothing).
type lazyHost struct {
	once sync.Once
	host *plugins.Host
	err  error
}

func (a *Agent) pluginHost() (*plugins.Host, error) {
	a.plugins.once.Do(func() {
		a.plugins.host, a.plugins.err = plugins.New(context.Background(), plugins.Config{
			CacheDir: filepath.Join(a.cfg.DataDir, "wasm-cache"), Dirs: a.cfg.Plugins.Dirs, Allow: a.cfg.Plugins.Allow, Logger: a.log})
	})
	return a.plugins.host, a.plugins.err
}

func (a *Agent) closePlugins() {
	a.plugins.once.Do(func() {}) // no host starts after this
	if a.plugins.host != nil {
		_ = a.plugins.host.Close(context.Background())
	}
}
