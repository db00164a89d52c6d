package broker

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/store"
)

const testPassword = "pw"

func quietLogger() *slog.Logger {
	if os.Getenv("SEDNA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testCredentials(t testing.TB) *access.Credentials {
	h, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	c, err := access.NewCredentials(
		access.User{Username: "node-a", PasswordHash: string(h), Role: access.UserNode},
		access.User{Username: "node-b", PasswordHash: string(h), Role: access.UserNode},
		access.User{Username: "app", PasswordHash: string(h), Role: access.UserOperator},
		access.User{Username: "admin", PasswordHash: string(h), Role: access.UserAdmin},
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openTestStore(t testing.TB, dir string) *store.Badger {
	t.Helper()
	s, err := store.OpenBadger(store.Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startServer starts a broker on a free loopback port.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dial(t testing.TB, url, id, user string, configure ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := tryDial(url, id, user, configure...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func tryDial(url, id, user string, configure ...func(*paho.ClientOptions)) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).SetConnectTimeout(5 * time.Second)
	if user != "" {
		o.SetPassword(testPassword)
	}
	for _, f := range configure {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s: timeout", url)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	return c, nil
}
