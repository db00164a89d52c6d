package main

import (
	"fmt"
	"net"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/cloud"
)

func newDashboardCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print a link to the cloud's live dashboard, for your user",
		Long: `The cloud manager serves a dashboard beside /metrics (/dashboard/): the
nodes (online, the cloud's outbox for each, its oldest message, version,
arch), the jobs (phase, stage, round, workers) and live charts (federated
accuracy and loss per round, joint inference's offload ratio and latency,
learning jobs per cycle, each node's outbox). This prints a link that signs
you in as the user the CLI connects as, for 12 hours; the page also takes a
broker user's name and password.`,
		Example: "  sedna dashboard\n  xdg-open $(sedna dashboard)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			link, err := bodyOp[cloud.DashboardLink](cmd.Context(), &f, cloud.OpDashboardURL, struct{}{})
			if err != nil {
				return err
			}
			host, port, err := net.SplitHostPort(link.Addr)
			if err != nil {
				return fmt.Errorf("the dashboard's address %q: %w", link.Addr, err)
			}
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				// Served on every interface: the host the CLI reaches the cloud by.
				if u, err := url.Parse(f.url); err == nil && u.Hostname() != "" {
					host = u.Hostname()
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "http://"+net.JoinHostPort(host, port)+link.Path)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
