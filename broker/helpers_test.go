package broker

import (
	"testing"

	"github.com/sedna-go/sedna/broker/internal/brokertest"
)

// The helpers of brokertest, shared with the tests of the broker's parts.
const testPassword = brokertest.Password

var (
	quietLogger     = brokertest.QuietLogger
	testCredentials = brokertest.Credentials
	openTestStore   = brokertest.OpenStore
	dial            = brokertest.Dial
	tryDial         = brokertest.TryDial
	selfSigned      = brokertest.SelfSigned
)

// startServer starts a broker on a free loopback port.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	return brokertest.Serve(t, func() (*Server, error) { return NewServer(cfg) })
}
