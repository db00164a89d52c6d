package cloud

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/workers"
)

// startParadigms starts the cloud half of every paradigm the manager
// runs, and returns their built-in workers, by "Kind/role".
func (m *Manager) startParadigms(c *ControlPlane) map[string]workers.Builtin {
	m.paradigms = m.opts.Paradigms.Start(paradigm.Cloud, func(p paradigm.Paradigm) paradigm.Env {
		return paradigm.Env{
			Node:    m.cfg.Name,
			Bus:     &cloudBus{bus: m.bus, downlink: m.downlink},
			Data:    cloudData{c},
			Models:  cloudModels{c},
			Plugins: func() (*plugins.Host, error) { return m.plugins, nil },
			Log:     m.log,
			Store:   store.Sub(m.store, p.Name()+"/"),
		}
	}, m.log)
	return m.paradigms.Builtins()
}

// jobOp is the operation op the paradigm of kind serves about its jobs.
func (m *Manager) jobOp(kind, op string) (paradigm.Op, bool) {
	if m.paradigms == nil {
		return nil, false
	}
	return m.paradigms.Op(kind, op)
}

// view is how the jobs of kind read in their status: their paradigm's
// view (every worker decides for a kind the manager does not run).
func (m *Manager) view(kind string) paradigm.View { return m.opts.Paradigms.View(kind) }

// cloudBus is a paradigm's bus in the cloud: the cloud broker, and the
// nodes' downlinks.
type cloudBus struct {
	bus      cloudlink.Bus
	downlink *cloudlink.Downlink
}

func (b *cloudBus) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.bus.Publish(topic, payload, retain, qos)
}

// Answer publishes as Publish does: in the cloud, a reply topic comes from
// a node's frame, which the ingress has checked.
func (b *cloudBus) Answer(topic string, payload []byte) error {
	return b.bus.Publish(topic, payload, false, 1)
}

func (b *cloudBus) Subscribe(filter string, h func(paradigm.Message) error) (func() error, error) {
	return b.bus.Watch(filter, func(topic string, payload []byte) error {
		return h(paradigm.Message{Topic: topic, Payload: payload})
	})
}

// ttl is how long m is worth keeping: 0 (until delivered) without a
// deadline; a message already past it is refused.
func ttl(m paradigm.Outbound) (time.Duration, error) {
	if m.Expires.IsZero() {
		return 0, nil
	}
	d := time.Until(m.Expires)
	if d <= 0 {
		return 0, fmt.Errorf("cloud: a message for %s on %s expired before it was sent", m.Node, m.Topic)
	}
	return d, nil
}

func (b *cloudBus) Send(m paradigm.Outbound) error {
	d, err := ttl(m)
	if err != nil {
		return err
	}
	_, err = b.downlink.Send(m.Node, m.Topic, m.Payload, false, 1, d)
	return err
}

func (b *cloudBus) SendNow(m paradigm.Outbound) error {
	d, err := ttl(m)
	if err != nil {
		return err
	}
	err = b.downlink.SendNow(m.Node, m.Topic, m.Payload, d)
	if errors.Is(err, cloudlink.ErrNodeOffline) {
		return fmt.Errorf("%w: %w", paradigm.ErrOffline, err)
	}
	return err
}

// Link: the cloud's own broker is always there.
func (b *cloudBus) Link() (bool, <-chan struct{}) { return true, nil }

// cloudData opens the files jobs name, confined to the manager's data and
// model directories.
type cloudData struct{ c *ControlPlane }

func (cloudData) Samples(namespace, name string, _ uint64, _ func(uint64, []byte) error) error {
	return fmt.Errorf("samples of Dataset %s/%s: %w (they are read on its node)", namespace, name, paradigm.ErrNotHere)
}

func (d cloudData) Open(path string) (*os.File, error) { return d.c.OpenFile(path) }

// cloudModels is the model registry.
type cloudModels struct{ c *ControlPlane }

func (m cloudModels) Latest(namespace, name string, have uint64) (uint64, []byte, error) {
	return m.c.LatestModel(namespace, name, have)
}

func (m cloudModels) Describe(namespace, name string, version uint64) (paradigm.ModelInfo, error) {
	return m.c.DescribeModel(namespace, name, version)
}

func (m cloudModels) Register(ctx context.Context, namespace, name, format, source string, metrics map[string]string, data []byte) (uint64, error) {
	return m.c.RegisterModel(ctx, namespace, name, format, source, metrics, data)
}
