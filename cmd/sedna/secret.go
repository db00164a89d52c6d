package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/cloud"
)

// secretOp asks the cloud a secret operation in f's namespace.
func secretOp(ctx context.Context, f *controlFlags, op string, req cloud.SecretRequest) (cloud.SecretReply, error) {
	req.Namespace = f.namespace
	return bodyOp[cloud.SecretReply](ctx, f, op, req)
}

func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Keep the secrets Datasets, Models and jobs name (credentialName)",
		Long: `A Dataset, a Model or a learning job may name a secret (credentialName, as
Sedna's name their S3 credentials): the workers that use it get the
secret's keys as environment variables. The cloud keeps secrets encrypted
at rest and sends each only to the nodes whose workers need it, sealed for
that node's key (made when it joined with a token); this command seals it
for the cloud's key before it leaves. A value never crosses the broker, a
log or 'sedna describe' in clear.`,
	}
	cmd.AddCommand(newSecretCreateCmd(), newSecretListCmd(), newSecretDeleteCmd())
	return cmd
}

func newSecretCreateCmd() *cobra.Command {
	var (
		f        controlFlags
		literals []string
		envFile  string
	)
	cmd := &cobra.Command{
		Use:   "create NAME (--from-literal KEY=VALUE ... | --from-env-file FILE)",
		Short: "Keep a secret (a new one, or new values for one)",
		Example: `  sedna secret create s3-creds --from-env-file s3.env
  sedna secret create s3-creds --from-literal ACCESS_KEY_ID=AKIA... --from-literal SECRET_ACCESS_KEY=...   # seen by ps`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := map[string]string{}
			if envFile != "" {
				if err := readEnvFile(envFile, data); err != nil {
					return err
				}
			}
			for _, kv := range literals {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || !pki.EnvName.MatchString(k) {
					return fmt.Errorf("--from-literal %q: want KEY=VALUE, KEY an environment variable's name", k)
				}
				data[k] = v
			}
			if len(data) == 0 {
				return fmt.Errorf("no keys: give --from-literal KEY=VALUE or --from-env-file FILE")
			}
			key, err := secretOp(cmd.Context(), &f, cloud.OpSecretKey, cloud.SecretRequest{})
			if err != nil {
				return err
			}
			pub, err := pki.ParseSealPublic(key.PublicKey)
			if err != nil {
				return fmt.Errorf("the cloud's key for secrets: %w", err)
			}
			plain, _ := json.Marshal(data)
			sealed, err := pki.Seal(pub, plain, pki.SecretAAD(f.namespace, args[0]))
			if err != nil {
				return err
			}
			rep, err := secretOp(cmd.Context(), &f, cloud.OpSecretCreate, cloud.SecretRequest{Name: args[0], Sealed: sealed})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s kept: %s\n", args[0], strings.Join(rep.Keys, ", "))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&literals, "from-literal", nil, "a KEY=VALUE of the secret; repeatable (every user of the host sees a command line: better --from-env-file)")
	cmd.Flags().StringVar(&envFile, "from-env-file", "", "a file of KEY=VALUE lines (# comments and blank lines skipped)")
	f.add(cmd)
	return cmd
}

// readEnvFile reads KEY=VALUE lines into data.
func readEnvFile(path string, data map[string]string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !pki.EnvName.MatchString(k) {
			return fmt.Errorf("%s line %d: want KEY=VALUE, KEY an environment variable's name", path, n)
		}
		data[k] = v
	}
	return sc.Err()
}

func newSecretListCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the secrets: their names and keys, never their values",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := secretOp(cmd.Context(), &f, cloud.OpSecretList, cloud.SecretRequest{})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tKEYS\tCREATED")
			for _, s := range rep.Secrets {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Namespace, s.Name, strings.Join(s.Keys, ","), s.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	return cmd
}

func newSecretDeleteCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Forget a secret (the nodes that hold it keep it until their jobs change)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := secretOp(cmd.Context(), &f, cloud.OpSecretDelete, cloud.SecretRequest{Name: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s deleted\n", args[0])
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
