package hollow

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

const pw = "hollow-secret"

// embeddedCloud starts a cloud manager with its embedded broker and a user
// per node, and an operator "app".
func embeddedCloud(t *testing.T, nodes []string) *cloud.Manager {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := []access.User{{Username: "app", PasswordHash: string(h), Role: access.UserOperator}}
	for _, n := range nodes {
		users = append(users, access.User{Username: n, PasswordHash: string(h), Role: access.UserNode})
	}
	creds, err := access.NewCredentials(users...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.Start(cloud.Config{DataDir: filepath.Join(t.TempDir(), "cloud"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"},
		Metrics: "off", Identity: cloud.IdentityConfig{TLSListen: "off", JoinListen: "off"}},
		cloud.Options{Paradigms: all.All(), Logger: slog.New(slog.DiscardHandler), Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// Hollow nodes speak the bridge's protocol to a real cloud manager: their
// frames are taken by its ingress and reach a consumer exactly once (also
// those sent again after a node's connection is cut), the control plane
// counts them online, and a message for each node, through the cloud's
// outbox, reaches it once.
func TestHollowNodesAgainstTheCloud(t *testing.T) {
	const nodes, each = 40, 25
	names := make([]string, nodes)
	for i := range names {
		names[i] = fmt.Sprintf("h.%02d", i) // a dot: written '~' in topics
	}
	m := embeddedCloud(t, names)
	var mu sync.Mutex
	seen := map[[2]uint64]int{}
	cons, err := cloudlink.NewConsumer(cloudlink.ConsumerConfig{
		Client: cloudlink.ClientConfig{URL: m.BrokerURL(), ClientID: "count", Username: "app", Password: pw},
		Store:  openStore(t),
		Handler: func(d cloudlink.Delivery, _ *store.Batch) error {
			if len(d.Payload) == 16 {
				mu.Lock()
				seen[[2]uint64{binary.BigEndian.Uint64(d.Payload), binary.BigEndian.Uint64(d.Payload[8:])}]++
				mu.Unlock()
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	down := map[string]int{}
	f, err := Start(Config{URL: m.BrokerURL(), Nodes: names, Password: func(string) string { return pw },
		Logger: slog.New(slog.DiscardHandler), FrameMessages: 8,
		OnDown: func(node, _ string, _ []byte) { mu.Lock(); down[node]++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	send := func(from, to int) {
		for i, n := range f.Nodes() {
			for j := from; j < to; j++ {
				var b [16]byte
				binary.BigEndian.PutUint64(b[:8], uint64(i))
				binary.BigEndian.PutUint64(b[8:], uint64(j))
				n.Send(topics.NodeAppPrefix(n.Name())+"t", b[:])
			}
		}
	}
	send(0, each)
	// Cut a node's connection while it sends: the broker takes over its
	// client ID, the node reconnects and sends what is not acknowledged.
	cut := paho.NewClient(paho.NewClientOptions().AddBroker(m.BrokerURL()).SetClientID(access.BridgeClientID(names[0])).
		SetUsername(names[0]).SetPassword(pw))
	if tok := cut.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	cut.Disconnect(0)
	send(each, 2*each)
	if err := f.Settled(ctx); err != nil {
		t.Fatal(err)
	}
	want := nodes * 2 * each
	waitDistinct(ctx, t, &mu, seen, want, "messages consumed")
	if s := f.Stats(); s.Acked != uint64(want) || s.Pending != 0 || s.Connects < nodes+1 {
		t.Fatalf("stats %+v: want %d acknowledged, none pending, a reconnection", s, want)
	}
	api, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "app", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	for {
		rep, err := api.Do(ctx, topics.APIRequest{Op: "nodes"})
		if err != nil {
			t.Fatal(err)
		}
		online := 0
		for _, n := range rep.Nodes {
			if n.State == topics.NodeOnline {
				online++
			}
		}
		if online == nodes {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d nodes online at the control plane", online, nodes)
		case <-time.After(20 * time.Millisecond): // polling the control plane
		}
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(m.BrokerURL()).SetClientID("pub").SetUsername("app").SetPassword(pw))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)
	for _, n := range names {
		if tok := pub.Publish(topics.ToNodeAppPrefix(n)+"hello", 1, false, []byte("hi")); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	waitDistinct(ctx, t, &mu, down, nodes, "nodes with their downlink message")
}

// waitDistinct waits until counts (guarded by mu) has want keys, failing
// the test at once if a key was counted twice, and when ctx ends.
func waitDistinct[K comparable](ctx context.Context, t *testing.T, mu *sync.Mutex, counts map[K]int, want int, what string) {
	t.Helper()
	for {
		mu.Lock()
		got, dups := len(counts), 0
		for _, k := range counts {
			dups += k - 1
		}
		mu.Unlock()
		if dups != 0 {
			t.Fatalf("%s: %d twice", what, dups)
		}
		if got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d of %d", what, got, want)
		case <-time.After(20 * time.Millisecond): // polling counts the handlers keep
		}
	}
}

func openStore(t *testing.T) store.Store {
	s, err := store.OpenBadger(store.Options{Dir: filepath.Join(t.TempDir(), "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
