package e2e

import (
	"bufio"
	"net"
	"testing"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// The users of credentials() that attack: an operator and an admin.
const (
	operatorUser = "app"
	adminUser    = "admin"
)

func apiRequestTopic(user string) string { return topics.APIRequestTopic(user) }

func adminClient(t testing.TB, url string) *cloud.Client {
	t.Helper()
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: url, Username: adminUser, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startCloudWith starts a cloud manager whose configuration set changes.
func startCloudWith(t testing.TB, dir string, set func(*cloud.Config)) *cloud.Manager {
	t.Helper()
	cfg := cloud.Config{DataDir: dir, Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"}
	set(&cfg)
	m, err := cloud.Start(cfg, cloud.Options{Paradigms: all.All(), Logger: testLogger(t), Credentials: credentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
