package cloud

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker"
)

// Replicas are refused before anything starts when they could not work:
// state in etcd needs an external broker every replica reaches, and etcd
// counts leases in whole seconds.
func TestReplicaConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no external broker", Config{Etcd: EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}}}, "set external.url"},
		{"a lease under a second", Config{External: ExternalBroker{URL: "tcp://127.0.0.1:1"},
			Etcd: EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, LeaseTTL: broker.Duration(500 * time.Millisecond)}}, "under a second"},
		{"partitions without AMQP", Config{External: ExternalBroker{URL: "tcp://127.0.0.1:1"},
			Etcd: EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, Partitions: 8}}, "needs external.amqp"},
		{"negative partitions", Config{External: ExternalBroker{URL: "tcp://127.0.0.1:1"},
			Etcd: EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, Partitions: -1}}, "negative"},
		{"an AMQP URL that is not one", Config{External: ExternalBroker{URL: "tcp://127.0.0.1:1", AMQP: "tcp://127.0.0.1:5672"},
			Etcd: EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, Partitions: 8}}, "want amqp://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DataDir, tc.cfg.Metrics = t.TempDir(), "off"
			_, err := Start(tc.cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
