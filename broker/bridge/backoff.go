package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// LinkFailure says why the bridge could not connect to the cloud broker,
// in classes that each have one thing for the operator to check.
type LinkFailure int

// The classes of link failures.
const (
	// LinkUnknown: an error of no known class.
	LinkUnknown LinkFailure = iota
	// LinkUnreachable: no connection, or one that ended before the
	// broker answered: connection refused, no route, a DNS failure, a
	// timeout, a reset.
	LinkUnreachable
	// LinkBadCredentials: the broker refused the node's user name or
	// password, or the user may not connect (CONNACK 4 or 5).
	LinkBadCredentials
	// LinkTLS: the TLS handshake failed: a certificate not trusted, of
	// another name or expired, an alert from the server, a server that
	// does not speak TLS.
	LinkTLS
	// LinkRejected: the broker answered and refused the connection for a
	// reason of its own: client identifier rejected, server unavailable,
	// protocol version.
	LinkRejected
)

// String names the class, as logged.
func (f LinkFailure) String() string {
	switch f {
	case LinkUnreachable:
		return "unreachable"
	case LinkBadCredentials:
		return "refused credentials"
	case LinkTLS:
		return "TLS failure"
	case LinkRejected:
		return "refused by the broker"
	default:
		return "unknown"
	}
}

// Advice says what to check for a failure of the class.
func (f LinkFailure) Advice() string {
	switch f {
	case LinkUnreachable:
		return "check --cloud HOST:PORT (cloud.url) and that the cloud is running and reachable from this node"
	case LinkBadCredentials:
		return "check the node's user (--username, default the node name) and its password (SEDNA_PASSWORD, --password-file or cloud.passwordFile) against the cloud's credentials file"
	case LinkTLS:
		return "check the CA file (--cloud-ca, cloud.caFile) and that the host name in --cloud is one the cloud's certificate names"
	case LinkRejected:
		return "check the cloud broker's log for why it refused the node"
	default:
		return "check --cloud and the error"
	}
}

// slow reports whether retrying soon is useless: the failure needs a
// change of configuration, and each attempt costs the cloud a password
// check or a handshake.
func (f LinkFailure) slow() bool {
	return f == LinkBadCredentials || f == LinkTLS || f == LinkRejected
}

// BrokerBusy reports whether a paho connection attempt ended waiting for
// the broker's CONNACK: the connection (and its TLS handshake) was made and
// the CONNECT written, and reading the answer timed out (paho's error
// wraps the read's). A dial or handshake that timed out is not busy.
func BrokerBusy(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read" && op.Timeout()
}

// errConnectTimeout: a connection attempt did not complete within its
// step.
var errConnectTimeout = errors.New("bridge: connection attempt timed out")

// ClassifyLinkError says which class of link failure err is: err is what a
// connection attempt of the bridge ended with (paho's connect token wraps
// the dial's error, or carries the CONNACK's refusal). A nil error is
// LinkUnknown.
func ClassifyLinkError(err error) LinkFailure {
	if err == nil {
		return LinkUnknown
	}
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return LinkBadCredentials
	case errors.Is(err, packets.ErrorRefusedIDRejected), errors.Is(err, packets.ErrorRefusedServerUnavailable),
		errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return LinkRejected
	}
	// TLS before the network: a handshake's error may wrap a net.OpError.
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		verify     *tls.CertificateVerificationError
		alert      tls.AlertError
		header     tls.RecordHeaderError
		opErr      *net.OpError
		systemRoot x509.SystemRootsError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify),
		errors.As(err, &alert), errors.As(err, &header), errors.As(err, &systemRoot):
		return LinkTLS
	case errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error"):
		// crypto/tls reports an alert it received or sent so.
		return LinkTLS
	}
	var (
		dnsErr *net.DNSError
		netErr net.Error
	)
	switch {
	case errors.Is(err, errConnectTimeout), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &dnsErr), errors.As(err, &netErr) && netErr.Timeout(),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return LinkUnreachable
	case errors.As(err, &opErr):
		return LinkUnreachable
	}
	// crypto/tls and crypto/x509 also fail with plain errors.New values.
	if s := err.Error(); strings.Contains(s, "tls: ") || strings.Contains(s, "x509: ") {
		return LinkTLS
	}
	if errors.Is(err, packets.ErrorNetworkError) {
		return LinkUnreachable
	}
	return LinkUnknown
}

// LinkError is a failed connection attempt of the bridge, classified.
type LinkError struct {
	Failure LinkFailure
	Err     error
}

// Error says what failed, why, and what to check.
func (e *LinkError) Error() string {
	return fmt.Sprintf("cloud link: %s: %v (%s)", e.Failure, e.Err, e.Failure.Advice())
}

// Unwrap returns the error of the attempt.
func (e *LinkError) Unwrap() error { return e.Err }

// backoffConfig bounds the bridge's schedule of connection attempts.
type backoffConfig struct {
	// Min is the ceiling of the first step; it doubles with each failure
	// up to the cap.
	Min time.Duration
	// Fast caps the step while the link was up less than FastFor ago (or
	// the bridge started less than FastFor ago): an outage of a link that
	// was working is most often short, and the time to notice its end is
	// at most this step.
	Fast, FastFor time.Duration
	// Max caps the step after FastFor without a link, and after a failure
	// that only a change of configuration mends (refused credentials, TLS,
	// a refusal by the broker), so that a fleet does not hammer its cloud.
	Max time.Duration
	// Timeout is the least time an attempt is given (dial, TLS, CONNECT
	// and CONNACK); an attempt gets its step when that is longer.
	Timeout time.Duration
	// BusyMax caps the least timeout after attempts that a busy broker
	// did not answer in time (it took the connection and the CONNECT,
	// and sent no CONNACK): each doubles it, past Max, up to BusyMax.
	BusyMax time.Duration
	// Rand returns a uniform integer in [0, n), n > 0; nil means
	// math/rand/v2.Int64N. Tests inject a fixed one.
	Rand func(n int64) int64
}

// attemptStep is the time budget of one connection attempt.
type attemptStep struct {
	// Timeout bounds the attempt: dial, TLS handshake, CONNECT and CONNACK
	// together.
	Timeout time.Duration
	// Period is how long after this attempt started the next one may
	// start: an attempt that fails at once waits out the rest, one that
	// times out is followed at once.
	Period time.Duration
}

// backoff is the bridge's schedule of connection attempts, a pure state
// machine: the caller asks for the Next step, makes the attempt, and tells
// it what happened (Failed, Connected, Lost) with the time. Steps are drawn
// with full jitter (uniform between 0 and the ceiling), so that nodes cut
// off together do not come back together.
//
// An attempt's timeout is its step, but at least the time a connection
// needs: Timeout, or 3 times what the last successful one took if that is
// longer (a link that needs more than the cap to connect would otherwise
// never connect). Before the link was ever up nothing is known, so each
// timed-out attempt doubles that floor, up to Max. An attempt the broker
// took but did not answer in time doubles it at any time, up to BusyMax:
// a cloud broker taking a whole fleet's reconnections (RabbitMQ past a few
// thousand connections on a small machine) answers CONNECT late, and an
// attempt abandoned before its CONNACK threw away the broker's work on it
// and comes back to ask again; nodes that kept doing that never all
// connected (measured: docs/SCALE.md).
type backoff struct {
	cfg      backoffConfig
	failures int       // since the link was last up (a link that dropped at once counts)
	since    time.Time // when the link was last up, or the schedule began
	upAt     time.Time // when the current connection came up
	everUp   bool
	floor    time.Duration // least timeout of an attempt
	slow     bool          // the last failure calls for the Max cap
}

// stableFor is how long a connection must last for its loss to start the
// schedule again from Min; a shorter one counts as a failure, so that a
// broker that drops the node at once is not tried at Min forever.
const stableFor = 10 * time.Second

// newBackoff returns the schedule of a bridge that starts at now.
// Zero fields of cfg get the bridge's defaults.
func newBackoff(cfg backoffConfig, now time.Time) *backoff {
	if cfg.Min <= 0 {
		cfg.Min = 100 * time.Millisecond
	}
	if cfg.Fast <= 0 {
		cfg.Fast = time.Second
	}
	if cfg.FastFor <= 0 {
		cfg.FastFor = time.Minute
	}
	if cfg.Max <= 0 {
		cfg.Max = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.BusyMax <= 0 {
		cfg.BusyMax = 2 * time.Minute
	}
	cfg.Fast = max(cfg.Fast, cfg.Min)
	cfg.Max = max(cfg.Max, cfg.Fast)
	if cfg.Rand == nil {
		cfg.Rand = rand.Int64N
	}
	return &backoff{cfg: cfg, since: now, floor: cfg.Timeout}
}

// Ceiling is the largest step the next attempt may draw at now.
func (b *backoff) Ceiling(now time.Time) time.Duration {
	limit := b.cfg.Max
	if !b.slow && now.Sub(b.since) < b.cfg.FastFor {
		limit = b.cfg.Fast
	}
	c := b.cfg.Min
	for i := 0; i < b.failures && c < limit; i++ {
		c *= 2
	}
	return min(c, limit)
}

// Next returns the step of the next attempt, which starts at now.
func (b *backoff) Next(now time.Time) attemptStep {
	period := time.Duration(b.cfg.Rand(int64(b.Ceiling(now)) + 1))
	return attemptStep{Period: period, Timeout: max(period, b.floor)}
}

// Failed records that the attempt failed, and why: timedOut if its time
// was up, busy if that was while waiting for the broker's CONNACK.
func (b *backoff) Failed(f LinkFailure, timedOut, busy bool) {
	b.failures++
	b.slow = f.slow()
	switch {
	case busy:
		b.floor = max(b.floor, min(2*b.floor, b.cfg.BusyMax))
	case timedOut && !b.everUp:
		b.floor = max(b.floor, min(2*b.floor, max(b.cfg.Max, b.cfg.Timeout)))
	}
}

// Connected records that an attempt connected at now after took.
func (b *backoff) Connected(now time.Time, took time.Duration) {
	b.upAt, b.since, b.everUp, b.slow = now, now, true, false
	b.floor = min(max(3*took, b.cfg.Timeout), max(b.cfg.Max, b.cfg.Timeout))
}

// Lost records that the connection ended at now, and returns the pause
// before the first attempt to reconnect: drawn like a step, so that nodes
// a cloud restart dropped together do not all knock at once. A connection
// that lasted starts the schedule again (at most Min); one that did not
// counts as a failure.
func (b *backoff) Lost(now time.Time) time.Duration {
	b.since = now
	if now.Sub(b.upAt) >= stableFor {
		b.failures = 0
	} else {
		b.failures++
	}
	return time.Duration(b.cfg.Rand(int64(b.Ceiling(now)) + 1))
}
