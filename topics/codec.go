package topics

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// reader wraps a msgpack decoder over an in-memory buffer and turns every
// failure into a *DecodeError for what.
type reader struct {
	what string
	buf  []byte
	br   *bytes.Reader
	d    *msgpack.Decoder
}

func newReader(what string, b []byte) *reader {
	br := bytes.NewReader(b)
	d := msgpack.NewDecoder(br)
	return &reader{what: what, buf: b, br: br, d: d}
}

func (r *reader) fail(err error, field string) error {
	var de *DecodeError
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed(r.what, "%s: truncated input", field)
	}
	return malformed(r.what, "%s: %v", field, err)
}

// remaining is the number of unread input bytes: no length read from the
// input may exceed it, which keeps a forged length from allocating memory.
func (r *reader) remaining() int { return r.br.Len() }

func (r *reader) mapLen(field string) (int, error) {
	n, err := r.d.DecodeMapLen()
	if err != nil {
		return 0, r.fail(err, field)
	}
	if n < 0 || n > r.remaining() {
		return 0, malformed(r.what, "%s: want a map, got length %d", field, n)
	}
	return n, nil
}

func (r *reader) arrayLen(field string) (int, error) {
	n, err := r.d.DecodeArrayLen()
	if err != nil {
		return 0, r.fail(err, field)
	}
	if n < 0 || n > r.remaining() {
		return 0, malformed(r.what, "%s: want an array, got length %d", field, n)
	}
	return n, nil
}

func (r *reader) str(field string, max int) (string, error) {
	b, err := r.bin(field, max)
	return string(b), err
}

// bin reads a byte string (bin or str) of at most max bytes, checking the
// length before reading the bytes.
func (r *reader) bin(field string, max int) ([]byte, error) {
	c, err := r.d.PeekCode()
	if err != nil {
		return nil, r.fail(err, field)
	}
	if c == msgpcode.Nil {
		_ = r.d.DecodeNil()
		return nil, nil
	}
	if !msgpcode.IsBin(c) && !msgpcode.IsString(c) {
		return nil, malformed(r.what, "%s: want bytes, got code 0x%02x", field, c)
	}
	n, err := r.d.DecodeBytesLen()
	if err != nil {
		return nil, r.fail(err, field)
	}
	if n > max {
		return nil, tooLarge(r.what, "%s is %d bytes, over the limit of %d", field, n, max)
	}
	if n > r.remaining() {
		return nil, malformed(r.what, "%s: length %d but %d bytes left", field, n, r.remaining())
	}
	b := make([]byte, n)
	if err := r.d.ReadFull(b); err != nil {
		return nil, r.fail(err, field)
	}
	return b, nil
}

func (r *reader) uint(field string) (uint64, error) {
	c, err := r.d.PeekCode()
	if err != nil {
		return 0, r.fail(err, field)
	}
	if !isInt(c) {
		return 0, malformed(r.what, "%s: want an integer, got code 0x%02x", field, c)
	}
	v, err := r.d.DecodeUint64()
	if err != nil {
		return 0, r.fail(err, field)
	}
	return v, nil
}

func (r *reader) int(field string) (int64, error) {
	c, err := r.d.PeekCode()
	if err != nil {
		return 0, r.fail(err, field)
	}
	if !isInt(c) {
		return 0, malformed(r.what, "%s: want an integer, got code 0x%02x", field, c)
	}
	v, err := r.d.DecodeInt64()
	if err != nil {
		return 0, r.fail(err, field)
	}
	return v, nil
}

func isInt(c byte) bool {
	return msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Uint64) || (c >= msgpcode.Int8 && c <= msgpcode.Int64)
}

// skip skips one value of any type, refusing nesting deeper than
// MaxNesting, so a hostile payload of nested arrays cannot exhaust the
// stack.
func (r *reader) skip(field string) error {
	return r.skipDepth(field, 0)
}

func (r *reader) skipDepth(field string, depth int) error {
	if depth > MaxNesting {
		return malformed(r.what, "%s: nesting deeper than %d", field, MaxNesting)
	}
	c, err := r.d.PeekCode()
	if err != nil {
		return r.fail(err, field)
	}
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := r.mapLen(field)
		if err != nil {
			return err
		}
		for i := 0; i < 2*n; i++ {
			if err := r.skipDepth(field, depth+1); err != nil {
				return err
			}
		}
		return nil
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := r.arrayLen(field)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := r.skipDepth(field, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := r.d.Skip(); err != nil {
		return r.fail(err, field)
	}
	return nil
}

// done checks that no bytes follow the value.
func (r *reader) done() error {
	if n := r.remaining(); n != 0 {
		return malformed(r.what, "%d bytes after the end of the value", n)
	}
	return nil
}

// version reads [major, minor] and refuses a major version other than want.
func (r *reader) version(want uint16) (Version, error) {
	n, err := r.arrayLen("version")
	if err != nil {
		return Version{}, err
	}
	if n < 2 {
		return Version{}, malformed(r.what, "version: want [major, minor], got %d elements", n)
	}
	maj, err := r.uint("version major")
	if err != nil {
		return Version{}, err
	}
	min, err := r.uint("version minor")
	if err != nil {
		return Version{}, err
	}
	for i := 2; i < n; i++ {
		if err := r.skip("version"); err != nil {
			return Version{}, err
		}
	}
	if maj != uint64(want) {
		return Version{}, &DecodeError{What: r.what, Reason: ErrUnknownVersion,
			Detail: fmt.Sprintf("schema %d.%d, this build reads %d.x", maj, min, want)}
	}
	if min > 0xffff {
		return Version{}, malformed(r.what, "version minor %d out of range", min)
	}
	return Version{Major: want, Minor: uint16(min)}, nil
}

// Version is a schema version. Readers accept any minor version of the
// major version they know and ignore fields they do not know; a new major
// version is refused with ErrUnknownVersion.
type Version struct {
	Major, Minor uint16
}

// String returns "major.minor".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func writeVersion(e *msgpack.Encoder, v Version) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeUint(uint64(v.Major)); err != nil {
		return err
	}
	return e.EncodeUint(uint64(v.Minor))
}

// encoder returns a msgpack encoder writing into a buffer sized for n bytes.
func encoder(n int) (*bytes.Buffer, *msgpack.Encoder) {
	var buf bytes.Buffer
	buf.Grow(n)
	e := msgpack.NewEncoder(&buf)
	return &buf, e
}
