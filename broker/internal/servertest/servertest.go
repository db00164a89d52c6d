// Package servertest starts a broker for the tests of the broker's parts
// (the bridge, the cloud's link).
package servertest

import (
	"testing"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/internal/brokertest"
)

// StartServer starts a broker on a free loopback port, closed when the
// test ends.
func StartServer(t testing.TB, cfg broker.Config) *broker.Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = brokertest.QuietLogger()
	}
	return brokertest.Serve(t, func() (*broker.Server, error) { return broker.NewServer(cfg) })
}
