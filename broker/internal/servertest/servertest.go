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
	s, err := broker.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
