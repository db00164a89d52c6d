package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/internal/demo"
)

func newDemoCmd(g *globals) *cobra.Command {
	var o demo.Options
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a cloud and two edge nodes through a link outage and a restart, and count every message",
		Long: `Run, in one process, a cloud manager and two edge nodes (edge-a, edge-b), each
linked to the cloud through a fault-injecting proxy. Local apps on each node
publish sensor readings and KubeEdge device events with QoS 1 while edge-a's
link is cut and edge-b's agent is stopped and restarted on its store. The
cloud counts what arrives by message ID. The command prints the count per
node and exits non-zero if any message was lost or duplicated. Then the joint
inference example runs on edge-b: its two models are trained and registered,
the service applied, and a camera sends 2,000 Fashion-MNIST frames. Then
five more nodes run the federated learning example: the digits split
non-IID over them, 30 rounds of FedAvg, compared with training on all the
data in one place. Then the incremental learning example runs on edge-b: a
camera's frames drift, the hard ones go up and an oracle labels them, one
cycle trains, evaluates and deploys a better model, swapped in at the edge.
Last, the lifelong learning example runs on edge-b: a knowledge base of three
thermal-comfort tasks learnt from its Dataset, a fourth task's surveys
flagged unseen and labelled by an oracle, a second knowledge base that learnt
it without touching the other three.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("log-level") {
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelError}))
			}
			o.Log = log
			o.Version = version
			ctx, stop := untilSignal()
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return demo.Run(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.PerPhase, "messages", 3000, "messages each node publishes in each of the three phases")
	f.StringVar(&o.Dir, "data", "", "keep the stores here (default: a temporary directory, removed after)")
	f.DurationVar(&timeout, "timeout", 110*time.Second, "give up after this long")
	return cmd
}
