package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/topics"
)

// bodyOp asks the cloud an operation whose request and answer are JSON
// bodies, as the user of f.
func bodyOp[Rep any](ctx context.Context, f *controlFlags, op string, req any) (Rep, error) {
	var out Rep
	body, _ := json.Marshal(req)
	rep, err := f.do(ctx, topics.APIRequest{Op: op, Body: body})
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(rep.Body, &out); err != nil {
		return out, fmt.Errorf("%s: the cloud's answer: %w", op, err)
	}
	return out, nil
}

// identityOp asks the cloud an identity operation.
func identityOp(ctx context.Context, f *controlFlags, op string, req cloud.TokenRequest) (cloud.TokenReply, error) {
	return bodyOp[cloud.TokenReply](ctx, f, op, req)
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, list and revoke the one-time tokens nodes join with",
		Long: `A node joins the cloud with a one-time token, as a KubeEdge node joins with
'keadm join': 'sedna token create --node NAME' (an admin) prints it;
'sedna edge --join TOKEN --cloud HOST:PORT' on the node fetches its
identity (a client certificate signed by the cloud's CA, the CA, its
settings) from the cloud's join listener and bridges over mutual TLS. A
token joins one node once, expires (--ttl, default 24h) and can be
revoked. The token carries the fingerprint of the cloud's CA, so the node
knows it reached the cloud that made it.`,
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var (
		f    controlFlags
		node string
		ttl  time.Duration
	)
	cmd := &cobra.Command{
		Use:     "create --node NAME",
		Short:   "Make a one-time token for a node to join with (printed once)",
		Example: "  sedna token create --node edge1\n  sedna token create --node edge2 --ttl 1h",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := identityOp(cmd.Context(), &f, cloud.OpTokenCreate, cloud.TokenRequest{Node: node, TTL: ttl.String()})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), rep.Token)
			if rep.Created != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s for node %s, valid until %s: on the node, sedna edge --join TOKEN --cloud HOST:PORT\n",
					rep.Created.ID, rep.Created.Node, rep.Created.Expires.Format(time.RFC3339))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node that joins with the token (required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token may be used")
	_ = cmd.MarkFlagRequired("node")
	f.add(cmd)
	return cmd
}

func newTokenListCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the join tokens (never their secrets) and what became of them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := identityOp(cmd.Context(), &f, cloud.OpTokenList, cloud.TokenRequest{})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNODE\tSTATE\tCREATED\tEXPIRES\tUSED")
			now := time.Now()
			for _, t := range rep.Tokens {
				used := "-"
				if !t.Used.IsZero() {
					used = t.Used.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Node, t.State(now), t.Created.Format(time.RFC3339),
					t.Expires.Format(time.RFC3339), used)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Make a join token unusable",
		Example: "  sedna token revoke 3f9a0c12",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := identityOp(cmd.Context(), &f, cloud.OpTokenRevoke, cloud.TokenRequest{ID: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Manage nodes' identities",
	}
	var f controlFlags
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Cut a node off: its certificates are refused from now on, its bridge disconnected",
		Long: `Revoke every certificate the cloud issued to a node: its bridge is
disconnected and refused from then on, and it cannot renew. The node may
join again with a new token (sedna token create).`,
		Example: "  sedna node revoke edge3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := identityOp(cmd.Context(), &f, cloud.OpNodeRevoke, cloud.TokenRequest{Node: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s revoked (%d certificates)\n", args[0], rep.Revoked)
			return nil
		},
	}
	f.add(revoke)
	cmd.AddCommand(revoke)
	return cmd
}
