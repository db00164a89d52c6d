package hollow_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/simulator/hollow"
	"github.com/sedna-go/sedna/topics"
)

// Three hollow nodes against a cloud manager with its embedded broker:
// each sends two messages, which the cloud acknowledges.
func Example() {
	dir, _ := os.MkdirTemp("", "hollow-example")
	defer os.RemoveAll(dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	names := []string{"h-0", "h-1", "h-2"}
	var users []access.User
	for _, n := range names {
		users = append(users, access.User{Username: n, PasswordHash: string(hash), Role: access.UserNode})
	}
	creds, _ := access.NewCredentials(users...)
	m, err := cloud.Start(cloud.Config{DataDir: filepath.Join(dir, "cloud"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"},
		Metrics: "off", Identity: cloud.IdentityConfig{TLSListen: "off", JoinListen: "off"}},
		cloud.Options{Paradigms: all.All(), Logger: slog.New(slog.DiscardHandler), Credentials: creds})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fleet, err := hollow.Start(hollow.Config{URL: m.BrokerURL(), Nodes: names, Password: func(string) string { return "pw" },
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fleet.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fleet.Wait(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range fleet.Nodes() {
		n.Send(topics.NodeAppPrefix(n.Name())+"t", []byte("one"))
		n.Send(topics.NodeAppPrefix(n.Name())+"t", []byte("two"))
	}
	if err := fleet.Settled(ctx); err != nil {
		fmt.Println(err)
		return
	}
	s := fleet.Stats()
	fmt.Printf("%d nodes connected, %d messages acknowledged, %d pending\n", s.Connected, s.Acked, s.Pending)
	// Output: 3 nodes connected, 6 messages acknowledged, 0 pending
}
