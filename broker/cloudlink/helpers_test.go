package cloudlink

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/broker"
)

// The helpers of package broker's tests that these tests need.

const testPassword = "pw"

func quietLogger() *slog.Logger {
	if os.Getenv("SEDNA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testCredentials(t testing.TB) *broker.Credentials {
	h, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	c, err := broker.NewCredentials(
		broker.User{Username: "node-a", PasswordHash: string(h), Role: broker.UserNode},
		broker.User{Username: "node-b", PasswordHash: string(h), Role: broker.UserNode},
		broker.User{Username: "app", PasswordHash: string(h), Role: broker.UserOperator},
		broker.User{Username: "admin", PasswordHash: string(h), Role: broker.UserAdmin},
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startServer starts a broker on a free loopback port.
func startServer(t testing.TB, cfg broker.Config) *broker.Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
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
