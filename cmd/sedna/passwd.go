package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/broker"
)

func newPasswdCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd",
		Short: "Print the bcrypt hash of a password read from standard input",
		Long: `Print the bcrypt hash of a password read from standard input, for the
passwordHash of a user in a credentials file:

  users:
    - username: edge-1
      passwordHash: <the hash>
      role: node        # node, cloud, app or admin`,
		Example: `  echo -n 's3cret' | sedna passwd`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("no password on standard input")
			}
			pw := strings.TrimRight(line, "\r\n")
			if pw == "" {
				return fmt.Errorf("empty password")
			}
			h, err := broker.HashPassword(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}
