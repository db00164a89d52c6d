package edge

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/federated"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// builtins are the node's built-in workers, by "Kind/role".
func (a *Agent) builtins() map[string]workers.Builtin {
	a.ji = jointinference.NewEdge(jointinference.EdgeEnv{
		Node:   a.cfg.Node,
		Server: a.srv,
		Offload: func(topic string, payload []byte, expires time.Time) error {
			return a.bridge.SendNow(topics.StreamEvents, topic, payload, expires)
		},
		Link: func() (bool, <-chan struct{}) { return a.bridge.Connected() },
		Model: func(ns, name string) (uint64, []byte, error) {
			m, err := a.models.Current(ns, name)
			if err != nil {
				return 0, nil, err
			}
			return m.Version, m.Data, nil
		},
		Plugins: a.pluginHost,
	})
	fl := federated.Trainer(federated.EdgeEnv{
		Node:   a.cfg.Node,
		Server: a.srv,
		Send: func(topic string, payload []byte, expires time.Time) error {
			return a.bridge.SendUntil(topics.StreamBulk, topic, payload, false, expires)
		},
		Link:    func() (bool, <-chan struct{}) { return a.bridge.Connected() },
		Samples: a.SamplesAfter,
	})
	return map[string]workers.Builtin{
		workers.BuiltinKey(api.KindJointInferenceService, "edge"): a.ji.Worker(),
		workers.BuiltinKey(api.KindFederatedLearningJob, "train"): fl,
	}
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
