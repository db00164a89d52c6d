package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

func newCloudCmd(g *globals) *cobra.Command {
	var (
		configFile string
		cfg        cloud.Config
		writeMode  string
	)
	cmd := &cobra.Command{
		Use:   "cloud",
		Short: "Run the cloud manager with its embedded broker (or an external one)",
		Long: `Run the cloud manager: the embedded cloud MQTT broker (authenticated, with a
per-node ACL) and the cloud half of every edge node's bridge: ingress of
frames with dedup, and a durable outbox per node.

With --broker URL the manager uses an external broker (mosquitto, EMQX,
a RabbitMQ cluster) instead of the embedded one. With --etcd as well, its
state is in etcd and several managers can run as replicas: one leads, the
others stand by and take over, with the whole state, when it dies
(docs/SCALE.md). With --partitions N and --amqp URLS (a RabbitMQ
cluster), every replica relays a share of the nodes' frames and sends
their outboxes, and takes over the share of a replica that left.`,
		Example: `  sedna passwd > hash.txt   # then list users in credentials.yaml
  sedna cloud --credentials credentials.yaml          # nodes join on :10002, bridge on :8883 (mutual TLS)
  sedna cloud --credentials credentials.yaml --tls-host cloud.example.com
  sedna cloud --broker tcp://mosquitto:1883 --username manager --password ...
  sedna cloud --broker tcp://rmq1:1883,tcp://rmq2:1883 --username cloud --etcd http://etcd1:2379,http://etcd2:2379,http://etcd3:2379
  sedna cloud --broker tcp://rmq1:1883,tcp://rmq2:1883 --amqp amqp://rmq1:5672,amqp://rmq2:5672 --username cloud --etcd http://etcd1:2379 --partitions 16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := cloudConfig(cmd, configFile, cfg, writeMode)
			if err != nil {
				return err
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			ctx, stop := untilSignal()
			defer stop()
			m, err := cloud.Start(file, cloud.Options{Paradigms: all.All(), Logger: log, Context: ctx})
			if err != nil {
				if ctx.Err() != nil {
					return nil // stopped while standing by
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cloud manager ready: broker %s\n", m.BrokerURL())
			if m.TLSAddr() != "" || m.JoinAddr() != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "nodes: join on %s, bridge over mutual TLS on %s (CA pin %s)\n", m.JoinAddr(), m.TLSAddr(), m.CA().Pin())
			}
			select {
			case <-ctx.Done():
				log.Info("stopping")
				m.Close()
				return nil
			case <-m.Lost():
				m.Close()
				return fmt.Errorf("replica %s lost its leadership (its etcd lease ran out); start it again to stand by", m.Replica())
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file (flags override it)")
	f.StringVar(&cfg.DataDir, "data", "", "data directory (default ./sedna-cloud)")
	f.StringVar(&cfg.Name, "name", "", `the cloud's node name: job templates place workers on it by this nodeName (default "cloud")`)
	f.StringVar(&cfg.Broker.Listen, "listen", "", `embedded broker's plaintext TCP address (default 127.0.0.1:1884, for local tools; off loopback only with --insecure-listen: nodes bridge over --tls-listen)`)
	f.StringVar(&cfg.Broker.CredentialsFile, "credentials", "", "credentials file of the embedded broker")
	f.StringVar(&cfg.Broker.WebSocket, "websocket", "", "address of an MQTT-over-WebSocket listener")
	f.StringVar(&cfg.External.URL, "broker", "", "use this external broker instead of the embedded one (the nodes of a cluster: URLs separated by commas)")
	f.StringVar(&cfg.External.Username, "username", "", "username on the external broker")
	f.StringVar(&cfg.External.Password, "password", "", "password on the external broker (or env SEDNA_PASSWORD)")
	f.StringVar(&cfg.Metrics, "metrics", "", `Prometheus /metrics address (default 127.0.0.1:9465, "off" to disable)`)
	f.BoolVar(&cfg.Profiles, "profiles", false, "serve Go's /debug/pprof/ beside /metrics (loopback addresses only)")
	f.StringArrayVar(&cfg.Data.Dirs, "read-dir", nil, "a directory whose files jobs may name for the cloud to read (a federated validation set); repeatable (default DATA/data)")
	f.StringArrayVar(&cfg.Models.Dirs, "models-dir", nil, "a directory whose files a Model's url may name; repeatable (default DATA/models)")
	f.StringSliceVar(&cfg.Etcd.Endpoints, "etcd", nil, "keep the state in this etcd cluster (client URLs separated by commas) and run as one of several replicas; needs --broker")
	f.StringVar(&cfg.Etcd.Prefix, "etcd-prefix", "", `this cloud's namespace in etcd, shared by its replicas (default "sedna/")`)
	f.StringVar(&cfg.Etcd.Replica, "replica", "", "this replica's name in the election (default host-pid)")
	f.IntVar(&cfg.Etcd.Partitions, "partitions", 0, "spread the nodes' frames and outboxes over this many partitions shared among the replicas (RabbitMQ, with --amqp; the same on every replica)")
	f.StringVar(&cfg.External.AMQP, "amqp", "", "the RabbitMQ nodes' AMQP URLs (separated by commas), where replicas read their partitions")
	f.StringVar(&writeMode, "write-mode", "", "store durability: process (default) or sync")
	f.StringVar(&cfg.Identity.TLSListen, "tls-listen", "", `the broker's mutual-TLS listener, where nodes bridge with their certificates (default ":8883"; "off" for none)`)
	f.StringVar(&cfg.Identity.JoinListen, "join-listen", "", `the join listener, HTTPS, where nodes get their certificates with a token (default ":10002"; "off" for none)`)
	f.StringArrayVar(&cfg.Identity.Hosts, "tls-host", nil, "a name or address nodes reach the cloud by, for its server certificate (beyond the host's name and addresses); repeatable")
	f.StringVar(&cfg.Identity.CADir, "ca-dir", "", "the cloud's CA directory (ca.crt, ca.key; made on the first start unless yours are there; default DATA/pki)")
	f.BoolVar(&cfg.InsecureListen, "insecure-listen", false, "let --listen, the plaintext listener, be on an address other than loopback (passwords and messages in clear)")
	return cmd
}

// cloudConfig is the config file's settings with the flags given on the
// command line over them.
func cloudConfig(cmd *cobra.Command, configFile string, cfg cloud.Config, writeMode string) (cloud.Config, error) {
	var file cloud.Config
	if err := loadConfig(configFile, &file); err != nil {
		return file, err
	}
	merge(cmd, &file.Name, cfg.Name, "name")
	merge(cmd, &file.DataDir, cfg.DataDir, "data")
	merge(cmd, &file.Broker.Listen, cfg.Broker.Listen, "listen")
	merge(cmd, &file.Broker.CredentialsFile, cfg.Broker.CredentialsFile, "credentials")
	merge(cmd, &file.Broker.WebSocket, cfg.Broker.WebSocket, "websocket")
	merge(cmd, &file.External.URL, cfg.External.URL, "broker")
	merge(cmd, &file.External.Username, cfg.External.Username, "username")
	merge(cmd, &file.External.Password, cfg.External.Password, "password")
	merge(cmd, &file.Metrics, cfg.Metrics, "metrics")
	if cmd.Flags().Changed("etcd") {
		file.Etcd.Endpoints = cfg.Etcd.Endpoints
	}
	merge(cmd, &file.Etcd.Prefix, cfg.Etcd.Prefix, "etcd-prefix")
	merge(cmd, &file.Etcd.Replica, cfg.Etcd.Replica, "replica")
	merge(cmd, &file.External.AMQP, cfg.External.AMQP, "amqp")
	if cmd.Flags().Changed("partitions") {
		file.Etcd.Partitions = cfg.Etcd.Partitions
	}
	if cmd.Flags().Changed("profiles") {
		file.Profiles = cfg.Profiles
	}
	merge(cmd, &file.Identity.TLSListen, cfg.Identity.TLSListen, "tls-listen")
	merge(cmd, &file.Identity.JoinListen, cfg.Identity.JoinListen, "join-listen")
	merge(cmd, &file.Identity.CADir, cfg.Identity.CADir, "ca-dir")
	if cmd.Flags().Changed("tls-host") {
		file.Identity.Hosts = cfg.Identity.Hosts
	}
	if cmd.Flags().Changed("insecure-listen") {
		file.InsecureListen = cfg.InsecureListen
	}
	if file.External.URL == "" && file.Broker.TLS.Listen == "" {
		// Nodes bridge over mutual TLS unless told otherwise.
		if file.Identity.TLSListen == "" {
			file.Identity.TLSListen = ":8883"
		}
		if file.Identity.JoinListen == "" {
			file.Identity.JoinListen = ":10002"
		}
	}
	if cmd.Flags().Changed("read-dir") {
		file.Data.Dirs = cfg.Data.Dirs
	}
	if cmd.Flags().Changed("models-dir") {
		file.Models.Dirs = cfg.Models.Dirs
	}
	if file.External.URL != "" && file.External.Password == "" {
		file.External.Password = os.Getenv("SEDNA_PASSWORD")
	}
	if cmd.Flags().Changed("write-mode") {
		m, err := store.ParseMode(writeMode)
		if err != nil {
			return file, err
		}
		file.WriteMode = m
	}
	if file.Name != "" {
		if err := topics.ValidateName("node", file.Name); err != nil {
			return file, fmt.Errorf("--name: %w", err)
		}
	}
	return file, nil
}

// merge sets *dst to flag's value when the flag was given on the command line.
func merge(cmd *cobra.Command, dst *string, value, flag string) {
	if cmd.Flags().Changed(flag) {
		*dst = value
	}
}
