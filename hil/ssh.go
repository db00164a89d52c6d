package hil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKey: the board's host key is not the one known_hosts has, or is
// not there and new keys are not trusted.
var ErrHostKey = errors.New("hil: host key")

// ErrAuth: the board refused the user's key.
var ErrAuth = errors.New("hil: authentication")

// conn is an SSH connection to a board.
type conn struct {
	b *Board
	c *ssh.Client
	// systemd caches hasSystemd's answer.
	systemd *bool
}

// dial connects to the board, checking its host key against its
// known_hosts; trustNew adds the key of a host known_hosts has no key of
// (never one that differs from the known one).
func dial(ctx context.Context, b *Board, trustNew bool) (*conn, error) {
	keyPEM, err := os.ReadFile(b.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("board %s: the user key: %w", b.Name, err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("board %s: the user key %s: %w", b.Name, b.KeyFile, err)
	}
	if _, err := os.Stat(b.KnownHosts); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(b.KnownHosts, nil, 0o600); err != nil {
			return nil, fmt.Errorf("board %s: %w", b.Name, err)
		}
	}
	check, err := knownhosts.New(b.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("board %s: known_hosts %s: %w", b.Name, b.KnownHosts, err)
	}
	cb := func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := check(host, remote, key)
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err
		}
		fp := ssh.FingerprintSHA256(key)
		if len(ke.Want) > 0 {
			return fmt.Errorf("%w: board %s: %s offers %s key %s, not the one in %s line %d: someone may be in the middle, or the board was "+
				"reinstalled; check, then remove that line", ErrHostKey, b.Name, host, key.Type(), fp, ke.Want[0].Filename, ke.Want[0].Line)
		}
		if !trustNew {
			return fmt.Errorf("%w: board %s: %s is not in %s (its %s key is %s): trust it with --trust-new-host-key once you know it is the board's",
				ErrHostKey, b.Name, host, b.KnownHosts, key.Type(), fp)
		}
		f, err := os.OpenFile(b.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(host)}, key))
		return err
	}
	cfg := &ssh.ClientConfig{User: b.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb, Timeout: 15 * time.Second}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", b.addr())
	if err != nil {
		return nil, fmt.Errorf("board %s: %w", b.Name, err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, b.addr(), cfg)
	if err != nil {
		_ = nc.Close()
		if errors.Is(err, ErrHostKey) {
			return nil, unwrapHandshake(err)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("%w: board %s: %s refused user %s with the key %s", ErrAuth, b.Name, b.addr(), b.User, b.KeyFile)
		}
		return nil, fmt.Errorf("board %s: ssh %s: %w", b.Name, b.addr(), err)
	}
	return &conn{b: b, c: ssh.NewClient(sc, chans, reqs)}, nil
}

// unwrapHandshake drops the SSH library's "ssh: handshake failed: "
// prefix from a host-key error, which says all there is to say.
func unwrapHandshake(err error) error {
	msg := strings.TrimPrefix(err.Error(), "ssh: handshake failed: ")
	return fmt.Errorf("%w%s", ErrHostKey, strings.TrimPrefix(msg, ErrHostKey.Error()))
}

// run runs a shell command on the board and returns its output; an error
// carries the command's standard error.
func (c *conn) run(cmd string) (string, error) {
	s, err := c.c.NewSession()
	if err != nil {
		return "", fmt.Errorf("board %s: %w", c.b.Name, err)
	}
	defer s.Close()
	var out, stderr bytes.Buffer
	s.Stdout, s.Stderr = &out, &stderr
	if err := s.Run(cmd); err != nil {
		return out.String(), fmt.Errorf("board %s: %s: %v: %s", c.b.Name, firstWord(cmd), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " ;"); i > 0 {
		return s[:i]
	}
	return s
}

func (c *conn) close() error { return c.c.Close() }
