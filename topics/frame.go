package topics

import (
	"fmt"
	"time"
)

// FrameVersion is the frame schema this build writes.
var FrameVersion = Version{Major: 1, Minor: 1}

// Frame is what the bridge sends between an edge node and the cloud: a
// batch of consecutive-or-not messages of one stream, each with its sequence
// number, its destination topic and its payload carried unchanged. One
// frame is one MQTT publish, so the far side persists a whole batch in one
// write and acknowledges it with one PUBACK.
type Frame struct {
	Version Version
	Node    string
	Stream  Stream
	Epoch   uint64
	// Floor tells the receiver that every seq <= Floor is done at the
	// sender (acknowledged by this receiver, expired or dropped) and will
	// never be sent again, so the receiver's window of seen seqs can close
	// gaps. It holds for one hop only: a receiver that passes frames on
	// clears it and lists the gaps it closed in Skipped instead.
	Floor uint64
	// Skipped lists seqs that will never be delivered (the sender dropped
	// or expired them); a receiver marks them seen.
	Skipped []SeqRange
	// Sent is the sender's clock when it built the frame (minor version
	// 1.1; zero from older senders). A receiver with Rebase moves the
	// messages' times onto its own clock, so a node whose clock is off by
	// hours neither expires what the cloud sends nor has its own messages
	// expire at the cloud.
	Sent     time.Time
	Messages []FrameMessage
}

// SeqRange is the seqs From..To, both included.
type SeqRange struct{ From, To uint64 }

// FrameMessage is one message inside a Frame.
type FrameMessage struct {
	// Seq is the message's sequence number in (Node, Stream, Epoch); 0
	// marks a best-effort (QoS 0) message that is never deduplicated.
	Seq uint64
	// Topic is the destination topic on the far side's broker.
	Topic string
	// Payload is carried unchanged, byte for byte.
	Payload []byte
	// Retain and QoS are how to publish it on the far side.
	Retain bool
	QoS    byte
	// Time is when the near side took the message.
	Time time.Time
	// Expires, if not zero, is when the message must no longer be delivered.
	Expires time.Time
}

// ID returns the message's identity in frame f.
func (f *Frame) ID(m *FrameMessage) ID {
	return ID{Node: f.Node, Stream: f.Stream, Epoch: f.Epoch, Seq: m.Seq}
}

// Size is the approximate encoded size of a message, used to fill frames
// up to a byte budget.
func (m *FrameMessage) Size() int { return len(m.Payload) + len(m.Topic) + 32 }

const (
	flagRetain = 1 << 0
	qosShift   = 1
)

// Marshal encodes f. A zero Version is written as FrameVersion.
func (f *Frame) Marshal() ([]byte, error) {
	size := 64 + len(f.Node)
	for i := range f.Messages {
		size += f.Messages[i].Size()
	}
	buf, enc := encoder(size)
	v := f.Version
	if v == (Version{}) {
		v = FrameVersion
	}
	n := 6
	if len(f.Skipped) > 0 {
		n++
	}
	if !f.Sent.IsZero() {
		n++
	}
	err := firstErr(
		enc.EncodeMapLen(n),
		enc.EncodeString(keyVersion), writeVersion(enc, v),
		enc.EncodeString("n"), enc.EncodeString(f.Node),
		enc.EncodeString("s"), enc.EncodeString(string(f.Stream)),
		enc.EncodeString("e"), enc.EncodeUint(f.Epoch),
		enc.EncodeString("f"), enc.EncodeUint(f.Floor),
	)
	if err == nil && len(f.Skipped) > 0 {
		err = firstErr(enc.EncodeString("k"), enc.EncodeArrayLen(len(f.Skipped)))
		for _, r := range f.Skipped {
			if err == nil {
				err = firstErr(enc.EncodeArrayLen(2), enc.EncodeUint(r.From), enc.EncodeUint(r.To))
			}
		}
	}
	if err == nil && !f.Sent.IsZero() {
		err = firstErr(enc.EncodeString("t"), enc.EncodeInt(unixNano(f.Sent)))
	}
	if err == nil {
		err = firstErr(enc.EncodeString("m"), enc.EncodeArrayLen(len(f.Messages)))
	}
	for i := range f.Messages {
		if err != nil {
			break
		}
		m := &f.Messages[i]
		flags := uint64(m.QoS&3) << qosShift
		if m.Retain {
			flags |= flagRetain
		}
		err = firstErr(
			enc.EncodeArrayLen(6),
			enc.EncodeUint(m.Seq), enc.EncodeString(m.Topic), enc.EncodeBytes(m.Payload),
			enc.EncodeUint(flags), enc.EncodeInt(unixNano(m.Time)), enc.EncodeInt(unixNano(m.Expires)),
		)
	}
	if err != nil {
		return nil, fmt.Errorf("topics: encode frame: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalFrame decodes b, enforcing lim: each payload at most
// lim.MaxBody bytes, at most lim.MaxMessages messages. It also checks that
// the node and stream are valid names and every topic is a valid concrete
// topic. Errors are *DecodeError.
func UnmarshalFrame(b []byte, lim Limits) (*Frame, error) {
	lim = lim.OrDefault()
	r := newReader("frame", b)
	n, err := r.mapLen("frame")
	if err != nil {
		return nil, err
	}
	f := &Frame{}
	var seenVersion bool
	for i := 0; i < n; i++ {
		key, err := r.str("key", 64)
		if err != nil {
			return nil, err
		}
		switch key {
		case keyVersion:
			if f.Version, err = r.version(FrameVersion.Major); err != nil {
				return nil, err
			}
			seenVersion = true
		case "n":
			if f.Node, err = r.str("node", MaxNameLen); err != nil {
				return nil, err
			}
		case "s":
			s, err := r.str("stream", 64)
			if err != nil {
				return nil, err
			}
			f.Stream = Stream(s)
		case "e":
			if f.Epoch, err = r.uint("epoch"); err != nil {
				return nil, err
			}
		case "f":
			if f.Floor, err = r.uint("floor"); err != nil {
				return nil, err
			}
		case "k":
			if f.Skipped, err = readRanges(r, lim); err != nil {
				return nil, err
			}
		case "t":
			t, err := r.int("sent")
			if err != nil {
				return nil, err
			}
			f.Sent = fromUnixNano(t)
		case "m":
			if f.Messages, err = readFrameMessages(r, lim); err != nil {
				return nil, err
			}
		default:
			if err := r.skip("unknown field " + key); err != nil {
				return nil, err
			}
		}
	}
	if !seenVersion {
		return nil, malformed("frame", "no schema version")
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := ValidateName("node", f.Node); err != nil {
		return nil, malformed("frame", "%v", err)
	}
	if !f.Stream.Valid() {
		return nil, malformed("frame", "unknown stream %q", f.Stream)
	}
	return f, nil
}

func readRanges(r *reader, lim Limits) ([]SeqRange, error) {
	n, err := r.arrayLen("skipped")
	if err != nil {
		return nil, err
	}
	if n > lim.MaxMessages {
		return nil, tooLarge("frame", "%d skipped ranges, over the limit of %d", n, lim.MaxMessages)
	}
	out := make([]SeqRange, n)
	for i := range out {
		k, err := r.arrayLen("range")
		if err != nil {
			return nil, err
		}
		if k != 2 {
			return nil, malformed("frame", "skipped range %d has %d bounds", i, k)
		}
		if out[i].From, err = r.uint("range from"); err != nil {
			return nil, err
		}
		if out[i].To, err = r.uint("range to"); err != nil {
			return nil, err
		}
		if out[i].From == 0 || out[i].To < out[i].From {
			return nil, malformed("frame", "skipped range %d is [%d, %d]", i, out[i].From, out[i].To)
		}
	}
	return out, nil
}

func readFrameMessages(r *reader, lim Limits) ([]FrameMessage, error) {
	n, err := r.arrayLen("messages")
	if err != nil {
		return nil, err
	}
	if n > lim.MaxMessages {
		return nil, tooLarge("frame", "%d messages, over the limit of %d", n, lim.MaxMessages)
	}
	msgs := make([]FrameMessage, n)
	for i := range msgs {
		fields, err := r.arrayLen("message")
		if err != nil {
			return nil, err
		}
		if fields < 6 {
			return nil, malformed("frame", "message %d: want 6 fields, got %d", i, fields)
		}
		m := &msgs[i]
		if m.Seq, err = r.uint("seq"); err != nil {
			return nil, err
		}
		if m.Topic, err = r.str("topic", maxString); err != nil {
			return nil, err
		}
		if err := ValidateTopic(m.Topic); err != nil {
			return nil, malformed("frame", "message %d: %v", i, err)
		}
		if m.Payload, err = r.bin("payload", lim.MaxBody); err != nil {
			return nil, err
		}
		flags, err := r.uint("flags")
		if err != nil {
			return nil, err
		}
		m.Retain = flags&flagRetain != 0
		m.QoS = byte(flags>>qosShift) & 3
		if m.QoS > 2 {
			return nil, malformed("frame", "message %d: QoS %d", i, m.QoS)
		}
		t, err := r.int("time")
		if err != nil {
			return nil, err
		}
		x, err := r.int("expires")
		if err != nil {
			return nil, err
		}
		m.Time, m.Expires = fromUnixNano(t), fromUnixNano(x)
		for j := 6; j < fields; j++ {
			if err := r.skip("message"); err != nil {
				return nil, err
			}
		}
	}
	return msgs, nil
}

// ClockFloor is a time before which no sane wall clock of a running node can
// be: a message stamped earlier was stamped by a board that booted without
// a real-time clock (at the Unix epoch) and had not set its clock yet.
var ClockFloor = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Expired says whether a message stamped at stamped, with an expiry (zero:
// none) and, when maxAge > 0, a maximum age, is too old to deliver at now.
// A message stamped before ClockFloor has no known age and never expires:
// judged by a clock set later it would look fifty years old, and a board
// that booted without a clock would lose its whole queue.
func Expired(stamped, expires, now time.Time, maxAge time.Duration) bool {
	if !stamped.IsZero() && stamped.Before(ClockFloor) {
		return false
	}
	return (!expires.IsZero() && now.After(expires)) || (maxAge > 0 && !stamped.IsZero() && now.Sub(stamped) > maxAge)
}

// Rebase moves the times of f's messages from the sender's clock onto the
// receiver's, whose time is now: each stamp and expiry is shifted by the
// difference between now and f.Sent, as MQTT 5 carries a message's
// remaining lifetime rather than a deadline. Time in flight is not counted
// (no clock measures it); a frame is built afresh for every send, so a
// frame held up by a stalled link carries its own, later Sent time.
//
// It does nothing when either clock is below ClockFloor (a board that
// booted without a real-time clock): a stamp moved below the floor would
// never expire, and one moved above it from 1970 would look fifty years
// old. Stamps below the floor stay as they are and never expire.
func (f *Frame) Rebase(now time.Time) {
	if f.Sent.IsZero() || f.Sent.Before(ClockFloor) || now.Before(ClockFloor) {
		return
	}
	d := now.Sub(f.Sent)
	if d == 0 {
		return
	}
	for i := range f.Messages {
		m := &f.Messages[i]
		if m.Time.IsZero() || m.Time.Before(ClockFloor) {
			continue
		}
		m.Time = m.Time.Add(d)
		if !m.Expires.IsZero() {
			m.Expires = m.Expires.Add(d)
		}
	}
}
