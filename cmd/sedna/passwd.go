package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sedna-go/sedna/broker/access"
)

func newPasswdCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd",
		Short: "Print the bcrypt hash of a password, for a credentials file",
		Long: `Print the bcrypt hash of a password, for the passwordHash of a user in a
credentials file:

  users:
    - username: edge1
      passwordHash: "<the hash>"
      role: node        # node, operator, viewer, admin or app

On a terminal the password is asked for twice, without echo; otherwise it is
the first line of standard input.`,
		Example: `  sedna passwd                                   # asks, without echo
  printf %s "$SEDNA_PASSWORD" | sedna passwd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd)
			if err != nil {
				return err
			}
			h, err := access.HashPassword(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}

// readPassword asks twice without echo when standard input is a terminal,
// and reads the first line of it otherwise.
func readPassword(cmd *cobra.Command) (string, error) {
	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a, err := askSecret(f, "Password: ", cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		b, err := askSecret(f, "Again: ", cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		if len(a) == 0 {
			return "", errors.New("empty password")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("no password on standard input")
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("empty password")
	}
	return pw, nil
}

// readSecretLine reads up to a newline (or the end), one byte at a time so
// nothing after it is taken; a carriage return before it is dropped.
func readSecretLine(r io.Reader) ([]byte, error) {
	var line []byte
	var c [1]byte
	for {
		n, err := r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				break
			}
			line = append(line, c[0])
		}
		if err == io.EOF && len(line) > 0 {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}
