package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/internal/memtrim"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
)

func newEdgeCmd(g *globals) *cobra.Command {
	var (
		configFile string
		cfg        edge.Config
		writeMode  string
		failFast   bool
		joinToken  string
		joinOnly   bool
	)
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Run the edge agent of one node: its broker, durable bridge and store",
		Long: `Run the edge agent of one node: the node's MQTT broker (on 127.0.0.1:1883 by
default, where KubeEdge apps and mappers expect it), the durable bridge to the
cloud broker and the node's store. Publishes that match a bridge rule are on
disk before their PUBACK and reach the cloud once, even across link outages
and restarts.`,
		Example: `  sedna edge --node edge-1 --cloud tcp://cloud:1884 --username edge-1 --password-file pw.txt
  sedna edge --config edge.yaml --fail-fast   # exit at once if the cloud refuses the node's password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var file edge.Config
			if err := loadConfig(configFile, &file); err != nil {
				return err
			}
			merge(cmd, &file.Node, cfg.Node, "node")
			merge(cmd, &file.DataDir, cfg.DataDir, "data")
			merge(cmd, &file.Broker.Listen, cfg.Broker.Listen, "listen")
			merge(cmd, &file.Broker.CredentialsFile, cfg.Broker.CredentialsFile, "credentials")
			merge(cmd, &file.Cloud.URL, cfg.Cloud.URL, "cloud")
			merge(cmd, &file.Cloud.Username, cfg.Cloud.Username, "username")
			merge(cmd, &file.Cloud.Password, cfg.Cloud.Password, "password")
			merge(cmd, &file.Cloud.PasswordFile, cfg.Cloud.PasswordFile, "password-file")
			merge(cmd, &file.Cloud.CAFile, cfg.Cloud.CAFile, "cloud-ca")
			merge(cmd, &file.Metrics, cfg.Metrics, "metrics")
			if cmd.Flags().Changed("profiles") {
				file.Profiles = cfg.Profiles
			}
			if file.Cloud.Password == "" && file.Cloud.PasswordFile == "" {
				file.Cloud.Password = os.Getenv("SEDNA_PASSWORD")
			}
			if file.Cloud.Username == "" {
				file.Cloud.Username = file.Node
			}
			if cmd.Flags().Changed("write-mode") {
				m, err := store.ParseMode(writeMode)
				if err != nil {
					return err
				}
				file.WriteMode = m
			}
			id, err := nodeIdentity(cmd, &file, joinToken)
			if err != nil {
				return err
			}
			if joinOnly {
				if joinToken == "" {
					return errors.New("--join-only: give --join TOKEN")
				}
				return nil
			}
			if file.Node == "" {
				return fmt.Errorf("no node name: give --node or node: in the config")
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			a, err := edge.Start(file, edge.Options{Paradigms: all.All(), Logger: log, Version: version, Identity: id})
			if err != nil {
				return err
			}
			ctx, stop := untilSignal()
			defer stop()
			if failFast {
				if err := refusedAtFirst(ctx, a.Bridge(), file.Cloud.URL, file.Cloud.Username); err != nil {
					a.Close()
					return err
				}
			}
			// What the start mapped of the binary, released: the agent's
			// resident set becomes what it runs (internal/memtrim).
			if r, err := memtrim.Release(); err != nil {
				log.Warn("releasing the start's pages", "error", err)
			} else {
				log.Debug("released the start's pages", "mappings", r.Mappings, "rssKiB", r.BeforeKiB, "afterKiB", r.AfterKiB)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "edge agent %s ready: broker %s\n", file.Node, a.BrokerAddr())
			<-ctx.Done()
			log.Info("stopping")
			a.Close()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file (flags override it)")
	f.StringVar(&cfg.Node, "node", "", "this node's name")
	f.StringVar(&cfg.DataDir, "data", "", "data directory (default ./sedna-edge-NODE)")
	f.StringVar(&cfg.Broker.Listen, "listen", "", "node broker TCP address (default 127.0.0.1:1883)")
	f.StringVar(&cfg.Broker.CredentialsFile, "credentials", "", "credentials for clients not on loopback")
	f.StringVar(&cfg.Cloud.URL, "cloud", "", "cloud broker URL, e.g. ssl://cloud:8883, or the nodes of a broker cluster separated by commas (tried in turn); with --join, the cloud's join listener HOST:PORT (cloud:10002)")
	f.BoolVar(&joinOnly, "join-only", false, "with --join: keep the identity and exit, without running the agent (a systemd unit runs it)")
	f.StringVar(&joinToken, "join", "", "join the cloud with this one-time token (sedna token create): the node's identity is kept in DATA/identity, and the node bridges over mutual TLS with it from then on")
	f.StringVar(&cfg.Cloud.Username, "username", "", "username on the cloud broker (default the node name)")
	f.StringVar(&cfg.Cloud.Password, "password", "", "password on the cloud broker (or env SEDNA_PASSWORD; better --password-file: every user of the host sees a command line)")
	f.StringVar(&cfg.Cloud.PasswordFile, "password-file", "", "file holding the password on the cloud broker")
	f.StringVar(&cfg.Cloud.CAFile, "cloud-ca", "", "CA certificate of the cloud broker (ssl:// URLs)")
	f.StringVar(&cfg.Metrics, "metrics", "", `Prometheus /metrics address (default 127.0.0.1:9464, "off" to disable)`)
	f.BoolVar(&cfg.Profiles, "profiles", false, "serve Go's /debug/pprof/ beside /metrics (loopback addresses only)")
	f.StringVar(&writeMode, "write-mode", "", "store durability: process (default) or sync")
	f.BoolVar(&failFast, "fail-fast", false, "exit at start if the cloud refuses the node's credentials at the first attempt (else the bridge keeps retrying)")
	return cmd
}

// refusedAtFirst waits for the bridge's first connection attempt and
// returns an error if the cloud refused the node's credentials; any other
// outcome (connected, cloud unreachable) is left to the bridge, which keeps
// trying.
func refusedAtFirst(ctx context.Context, b *bridge.Bridge, url, user string) error {
	var lerr *bridge.LinkError
	if err := b.FirstAttempt(ctx); errors.As(err, &lerr) && lerr.Failure == bridge.LinkBadCredentials {
		return fmt.Errorf("--fail-fast: the cloud %s refused user %q: %v; %s", url, user, lerr.Err, lerr.Failure.Advice())
	}
	return nil
}

// nodeIdentity is the identity the node joined with: joined now with
// token (the --cloud flag is then the join listener's address), or read
// from the data directory; nil for a node that logs in by password.
func nodeIdentity(cmd *cobra.Command, file *edge.Config, token string) (*edge.Identity, error) {
	dir := file.DataDir
	if dir == "" && file.Node != "" {
		dir = "sedna-edge-" + file.Node
	}
	if token != "" {
		if dir == "" {
			return nil, errors.New("--join: give --data (the directory where the node keeps its identity and store)")
		}
		if id, err := edge.LoadIdentity(dir); err == nil {
			return nil, fmt.Errorf("--join: this node already joined as %s (%s); remove it to join again", id.Node,
				filepath.Join(dir, edge.IdentityDir))
		}
		joinAddr := file.Cloud.URL
		if joinAddr == "" {
			return nil, errors.New("--join: give --cloud HOST:PORT, the cloud's join listener")
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		id, err := edge.Join(ctx, joinAddr, token, dir)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "joined the cloud as node %s: identity in %s, bridging to %s\n", id.Node,
			filepath.Join(dir, edge.IdentityDir), id.BrokerURL)
		file.Cloud.URL = ""
		return adopt(file, id, dir)
	}
	if dir == "" {
		return nil, nil
	}
	id, err := edge.LoadIdentity(dir)
	if errors.Is(err, edge.ErrNoIdentity) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return adopt(file, id, dir)
}

func adopt(file *edge.Config, id *edge.Identity, dir string) (*edge.Identity, error) {
	if file.Node != "" && file.Node != id.Node {
		return nil, fmt.Errorf("--node %s: the node joined as %s (%s)", file.Node, id.Node, filepath.Join(dir, edge.IdentityDir))
	}
	file.Node, file.DataDir = id.Node, dir
	file.Cloud.Username, file.Cloud.Password, file.Cloud.PasswordFile = "", "", ""
	return id, nil
}
