package topics

import (
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// EnvelopeVersion is the envelope schema this build writes.
var EnvelopeVersion = Version{Major: 1, Minor: 0}

// ID identifies one message for its whole life: the node that sent it, the
// stream it travelled on, the epoch of the node's store and a sequence number
// in that stream. The epoch is random per store, so a node whose store was
// wiped or reflashed starts a new epoch and its new seq 1 is never taken for
// a replay of the old seq 1.
type ID struct {
	Node   string
	Stream Stream
	Epoch  uint64
	Seq    uint64
}

// IsZero reports whether the ID was never assigned.
func (id ID) IsZero() bool { return id == ID{} }

// String returns "node/stream/epoch/seq" with the epoch in hex.
func (id ID) String() string {
	return fmt.Sprintf("%s/%s/%016x/%d", id.Node, id.Stream, id.Epoch, id.Seq)
}

// Envelope wraps every message on the project's own topics (see PayloadOf).
// Body is the msgpack encoding of the message type named by Kind, or raw
// bytes for kinds that say so; tensors and blobs are raw little-endian bytes
// inside it, never lists of numbers.
type Envelope struct {
	Version Version
	// ID is set by the bridge when it takes the message into a node's
	// queue; consumers use it to drop duplicates.
	ID ID
	// Time is when the message was made.
	Time time.Time
	// Source names the component that made the message, e.g. "edge/bridge".
	Source string
	// Kind names the message type of Body (see the Kind constants).
	Kind string
	// ReplyTo and CorrelationID make request/response over MQTT 3.1.1,
	// which has no properties for them.
	ReplyTo       string
	CorrelationID string
	// Expires, if not zero, is when the message stops being worth
	// delivering: the bridge drops it instead of sending it late.
	Expires time.Time
	Body    []byte
}

// Limits bounds what a decoder accepts. The zero value means DefaultLimits.
type Limits struct {
	// MaxBody is the largest body (envelope) or payload (frame message).
	MaxBody int
	// MaxMessages is the most messages one frame may carry.
	MaxMessages int
}

// DefaultLimits are used where a Limits field is zero: 1 MiB bodies, 4,096
// messages per frame. They are the project's one statement of how large a
// message may be: the edge broker refuses a larger one at the first hop,
// and every later hop (the node's queue, the frame, the cloud's
// write-ahead log, a node's outbox and inbox) takes any message within
// them.
var DefaultLimits = Limits{MaxBody: 1 << 20, MaxMessages: 4096}

// MaxPacket is the largest MQTT packet a broker needs to take to carry
// every message within l: a body of MaxBody bytes, a topic of MQTT's
// largest, and a frame around them (a frame holds at most 256 KiB of
// messages, or one larger message alone).
func (l Limits) MaxPacket() int {
	l = l.OrDefault()
	return l.MaxBody + MaxTopicLen + 4096
}

// OrDefault fills the zero fields of l from DefaultLimits.
func (l Limits) OrDefault() Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultLimits.MaxBody
	}
	if l.MaxMessages <= 0 {
		l.MaxMessages = DefaultLimits.MaxMessages
	}
	return l
}

// maxString bounds the short strings of envelopes and frames (names, kinds,
// topics).
const maxString = 65535

// Envelope field keys. Short keys keep small messages small; unknown keys
// are skipped by readers of the same major version.
const (
	keyVersion = "v"
	keyID      = "id"
	keyTime    = "t"
	keySource  = "src"
	keyKind    = "k"
	keyReplyTo = "rt"
	keyCorr    = "cid"
	keyExpires = "x"
	keyBody    = "b"
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Encode makes the envelope of one message (NewEnvelope) and encodes it.
func Encode(kind, source string, body any) ([]byte, error) {
	env, err := NewEnvelope(kind, source, body)
	if err != nil {
		return nil, err
	}
	return env.Marshal()
}

// Marshal encodes e. A zero Version is written as EnvelopeVersion.
func (e *Envelope) Marshal() ([]byte, error) {
	buf, enc := encoder(64 + len(e.Body) + len(e.Source) + len(e.Kind) + len(e.ReplyTo) + len(e.CorrelationID))
	v := e.Version
	if v == (Version{}) {
		v = EnvelopeVersion
	}
	n := 4 // v, id, t, k always
	for _, present := range []bool{e.Source != "", e.ReplyTo != "", e.CorrelationID != "", !e.Expires.IsZero(), e.Body != nil} {
		if present {
			n++
		}
	}
	err := firstErr(
		enc.EncodeMapLen(n),
		enc.EncodeString(keyVersion), writeVersion(enc, v),
		enc.EncodeString(keyID), enc.EncodeArrayLen(4), enc.EncodeString(e.ID.Node),
		enc.EncodeString(string(e.ID.Stream)), enc.EncodeUint(e.ID.Epoch), enc.EncodeUint(e.ID.Seq),
		enc.EncodeString(keyTime), enc.EncodeInt(unixNano(e.Time)),
		enc.EncodeString(keyKind), enc.EncodeString(e.Kind),
	)
	if err != nil {
		return nil, fmt.Errorf("topics: encode envelope: %w", err)
	}
	opt := func(present bool, key string, write func() error) {
		if err == nil && present {
			err = firstErr(enc.EncodeString(key), write())
		}
	}
	opt(e.Source != "", keySource, func() error { return enc.EncodeString(e.Source) })
	opt(e.ReplyTo != "", keyReplyTo, func() error { return enc.EncodeString(e.ReplyTo) })
	opt(e.CorrelationID != "", keyCorr, func() error { return enc.EncodeString(e.CorrelationID) })
	opt(!e.Expires.IsZero(), keyExpires, func() error { return enc.EncodeInt(unixNano(e.Expires)) })
	opt(e.Body != nil, keyBody, func() error { return enc.EncodeBytes(e.Body) })
	if err != nil {
		return nil, fmt.Errorf("topics: encode envelope: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalEnvelope decodes b, enforcing lim. Errors are *DecodeError.
func UnmarshalEnvelope(b []byte, lim Limits) (*Envelope, error) {
	lim = lim.OrDefault()
	r := newReader("envelope", b)
	n, err := r.mapLen("envelope")
	if err != nil {
		return nil, err
	}
	e := &Envelope{}
	var seen struct{ v, k bool }
	for i := 0; i < n; i++ {
		key, err := r.str("key", 64)
		if err != nil {
			return nil, err
		}
		switch key {
		case keyVersion:
			if e.Version, err = r.version(EnvelopeVersion.Major); err != nil {
				return nil, err
			}
			seen.v = true
		case keyID:
			if e.ID, err = readID(r); err != nil {
				return nil, err
			}
		case keyTime:
			t, err := r.int("time")
			if err != nil {
				return nil, err
			}
			e.Time = fromUnixNano(t)
		case keySource:
			if e.Source, err = r.str("source", maxString); err != nil {
				return nil, err
			}
		case keyKind:
			if e.Kind, err = r.str("kind", maxString); err != nil {
				return nil, err
			}
			seen.k = true
		case keyReplyTo:
			if e.ReplyTo, err = r.str("reply-to", maxString); err != nil {
				return nil, err
			}
		case keyCorr:
			if e.CorrelationID, err = r.str("correlation id", maxString); err != nil {
				return nil, err
			}
		case keyExpires:
			x, err := r.int("expires")
			if err != nil {
				return nil, err
			}
			e.Expires = fromUnixNano(x)
		case keyBody:
			if e.Body, err = r.bin("body", lim.MaxBody); err != nil {
				return nil, err
			}
		default:
			if err := r.skip("unknown field " + key); err != nil {
				return nil, err
			}
		}
	}
	if !seen.v {
		return nil, malformed("envelope", "no schema version")
	}
	if !seen.k {
		return nil, malformed("envelope", "no kind")
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return e, nil
}

func readID(r *reader) (ID, error) {
	n, err := r.arrayLen("id")
	if err != nil {
		return ID{}, err
	}
	if n < 4 {
		return ID{}, malformed(r.what, "id: want [node, stream, epoch, seq], got %d elements", n)
	}
	var id ID
	if id.Node, err = r.str("id node", MaxNameLen); err != nil {
		return ID{}, err
	}
	s, err := r.str("id stream", 64)
	if err != nil {
		return ID{}, err
	}
	id.Stream = Stream(s)
	if id.Epoch, err = r.uint("id epoch"); err != nil {
		return ID{}, err
	}
	if id.Seq, err = r.uint("id seq"); err != nil {
		return ID{}, err
	}
	for i := 4; i < n; i++ {
		if err := r.skip("id"); err != nil {
			return ID{}, err
		}
	}
	return id, nil
}

// NewEnvelope makes an envelope of kind whose body is the msgpack encoding
// of body (or body itself if it is a []byte).
func NewEnvelope(kind, source string, body any) (*Envelope, error) {
	e := &Envelope{Version: EnvelopeVersion, Time: time.Now(), Kind: kind, Source: source}
	switch b := body.(type) {
	case nil:
	case []byte:
		e.Body = b
	default:
		raw, err := msgpack.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("topics: encode %s body: %w", kind, err)
		}
		e.Body = raw
	}
	return e, nil
}

// DecodeBody decodes the msgpack body into v, bounded as Unmarshal is. It
// never panics on bad input.
func (e *Envelope) DecodeBody(v any) error {
	if len(e.Body) == 0 {
		return malformed("body of "+e.Kind, "empty body")
	}
	return Unmarshal("body of "+e.Kind, e.Body, v)
}

// Unmarshal decodes msgpack from outside the process (a message body, a
// plugin's answer, a record another process wrote) into v. The bytes are
// checked first by CheckMsgpack, without recursion: nesting deeper than
// MaxNesting, a forged length or trailing bytes are refused before the
// reflection decoder runs, so it can neither exhaust the stack nor
// allocate more than a small multiple of len(b). It never panics.
func Unmarshal(what string, b []byte, v any) (err error) {
	if err := CheckMsgpack(what, b); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = malformed(what, "decoder panic: %v", p)
		}
	}()
	if err := msgpack.Unmarshal(b, v); err != nil {
		return malformed(what, "%v", err)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
