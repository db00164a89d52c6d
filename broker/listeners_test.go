package broker

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/access"
)

// The cloud broker serves TLS and WebSocket listeners beside TCP, with the
// same authentication.
func TestTLSAndWebSocketListeners(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	srv, err := NewServer(Config{Role: access.RoleCloud, Credentials: testCredentials(t), Logger: quietLogger(),
		Listen: "127.0.0.1:0", WebSocket: "127.0.0.1:0",
		TLS: TLSConfig{Listen: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tlsConf := func(o *paho.ClientOptions) { o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}) }
	for i, url := range []string{"ssl://" + srv.Addr("tls"), "ws://" + srv.Addr("ws")} {
		// A client ID of its own per listener: the same ID would take the
		// first client's session over while it is still connected.
		c := dial(t, url, fmt.Sprintf("c%d", i), "app", tlsConf)
		got := make(chan string, 1)
		if tok := c.Subscribe("x/y", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: subscribe: %v", url, tok.Error())
		}
		if tok := c.Publish("x/y", 1, false, []byte(url)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: %v", url, tok.Error())
		}
		select {
		case p := <-got:
			if p != url {
				t.Fatalf("%s: got %q", url, p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no delivery", url)
		}
		if _, err := tryDial(url, "anon", "", tlsConf); err == nil {
			t.Errorf("%s: anonymous client accepted", url)
		}
	}
	// A client that does not trust the certificate cannot connect.
	if _, err := tryDial("ssl://"+srv.Addr("tls"), "untrusting", "app"); err == nil {
		t.Error("TLS connection without trusting the certificate succeeded")
	}
	bad, err := NewServer(Config{Role: access.RoleCloud, Credentials: testCredentials(t), Listen: "127.0.0.1:0", Logger: quietLogger(),
		TLS: TLSConfig{Listen: "127.0.0.1:0", CertFile: "/nonexistent", KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(); err == nil {
		t.Error("a TLS listener with a missing certificate started")
	}
	_ = bad.Close()
}

// A listener that closes disconnects its own clients and no other's: the
// broker's closer (which replaces mochi's, whose double read lock of the
// clients' map deadlocked a Close about once in 300 runs of
// TestAwaySessionIsBounded, mochi-mqtt/server#488) picks them by listener.
func TestAClosingListenerDisconnectsItsOwnClients(t *testing.T) {
	srv := startServer(t, Config{Role: access.RoleEdge, Node: "node-a", WebSocket: "127.0.0.1:0"})
	lost := make(chan string, 2)
	onLost := func(name string) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(paho.Client, error) { lost <- name })
		}
	}
	tcp := dial(t, srv.URL(), "on-tcp", "", onLost("tcp"))
	ws := dial(t, "ws://"+srv.Addr("ws"), "on-ws", "", onLost("ws"))
	srv.disconnectListenerClients("tcp")
	select {
	case name := <-lost:
		if name != "tcp" {
			t.Fatalf("the %s client was disconnected", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tcp listener's client is still connected")
	}
	if tcp.IsConnectionOpen() || !ws.IsConnectionOpen() {
		t.Fatalf("tcp client open %v, ws client open %v", tcp.IsConnectionOpen(), ws.IsConnectionOpen())
	}
}
