package cloud

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
)

// WatchStatuses calls onStatus with the status of every resource of kind
// in namespace (empty: any) as it changes, the retained ones first; a
// deleted resource comes with deleted set. A status that does not decode
// goes to onError, never taken for "no status". It returns when ctx ends.
func (c *Client) WatchStatuses(ctx context.Context, kind, namespace string, onStatus func(key string, st api.Status, deleted bool), onError func(error)) error {
	stop, err := c.SubscribeStatuses(kind, namespace, onStatus, onError)
	if err != nil {
		return err
	}
	defer stop()
	<-ctx.Done()
	return nil
}

// SubscribeStatuses is WatchStatuses returning once the subscription is
// in place; stop ends the callbacks and the subscription. They run one at
// a time, and must not wait for a request of the same Client (its reply
// would wait behind them). One subscription per kind and namespace at a
// time on a Client: a second replaces the first's callbacks.
func (c *Client) SubscribeStatuses(kind, namespace string, onStatus func(key string, st api.Status, deleted bool), onError func(error)) (stop func(), err error) {
	var stopped atomic.Bool
	filter := topics.JobStatusFilter(kind, namespace)
	if err := c.bus.Subscribe(filter, func(topic string, p []byte) error {
		if stopped.Load() {
			return nil
		}
		pt, err := topics.Parse(topic)
		if err != nil {
			return nil
		}
		key := pt.Job.String()
		if len(p) == 0 {
			onStatus(key, api.Status{}, true)
			return nil
		}
		var st api.Status
		env, err := topics.UnmarshalEnvelope(p, topics.Limits{MaxBody: 16 << 20})
		if err == nil {
			err = env.DecodeBody(&st)
		}
		if err != nil {
			if onError != nil {
				onError(fmt.Errorf("status of %s: %w", key, err))
			}
			return nil
		}
		onStatus(key, st, false)
		return nil
	}); err != nil {
		return nil, err
	}
	return func() {
		stopped.Store(true)
		_ = c.bus.Unsubscribe(filter)
	}, nil
}
