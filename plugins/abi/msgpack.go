package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMsgpack is wrapped by every metadata decoding error.
var ErrMsgpack = errors.New("abi: bad msgpack")

// Reader walks msgpack bytes without reflection or allocation (but for the
// strings it returns). It understands the whole format well enough to skip
// any value, and reads the kinds the ABI's metadata uses.
type Reader struct {
	b   []byte
	off int
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// More reports whether bytes are left.
func (r *Reader) More() bool { return r.off < len(r.b) }

func (r *Reader) need(n int) error {
	if n < 0 || len(r.b)-r.off < n {
		return fmt.Errorf("%w: truncated at byte %d", ErrMsgpack, r.off)
	}
	return nil
}

func (r *Reader) u8() (byte, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *Reader) uN(n int) (uint64, error) {
	if err := r.need(n); err != nil {
		return 0, err
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(r.b[r.off])
	case 2:
		v = uint64(binary.BigEndian.Uint16(r.b[r.off:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(r.b[r.off:]))
	case 8:
		v = binary.BigEndian.Uint64(r.b[r.off:])
	}
	r.off += n
	return v, nil
}

// MapLen reads a map header.
func (r *Reader) MapLen() (int, error) {
	c, err := r.u8()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		n, err := r.uN(2)
		return int(n), err
	case c == 0xdf:
		n, err := r.uN(4)
		return r.count(n, err)
	}
	return 0, fmt.Errorf("%w: want a map, found 0x%02x", ErrMsgpack, c)
}

// ArrayLen reads an array header.
func (r *Reader) ArrayLen() (int, error) {
	c, err := r.u8()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xdc:
		n, err := r.uN(2)
		return int(n), err
	case c == 0xdd:
		n, err := r.uN(4)
		return r.count(n, err)
	}
	return 0, fmt.Errorf("%w: want an array, found 0x%02x", ErrMsgpack, c)
}

// count bounds a 32-bit element count by the bytes left (each element takes
// at least one), so a hostile header cannot make a caller loop for long.
func (r *Reader) count(n uint64, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)-r.off) {
		return 0, fmt.Errorf("%w: %d elements cannot fit", ErrMsgpack, n)
	}
	return int(n), nil
}

// Bytes reads a string or binary value, aliasing the input.
func (r *Reader) Bytes() ([]byte, error) {
	c, err := r.u8()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = r.uN(1)
	case c == 0xda || c == 0xc5:
		n, err = r.uN(2)
	case c == 0xdb || c == 0xc6:
		n, err = r.uN(4)
	default:
		return nil, fmt.Errorf("%w: want a string, found 0x%02x", ErrMsgpack, c)
	}
	if err != nil {
		return nil, err
	}
	if err := r.need(int(n)); err != nil || n > math.MaxInt32 {
		return nil, fmt.Errorf("%w: string of %d bytes overruns the input", ErrMsgpack, n)
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// String reads a string.
func (r *Reader) String() (string, error) {
	b, err := r.Bytes()
	return string(b), err
}

// Int reads any integer that fits an int64.
func (r *Reader) Int() (int64, error) {
	c, err := r.u8()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		v, err := r.uN(1 << (c - 0xcc))
		if err == nil && v > math.MaxInt64 {
			return 0, fmt.Errorf("%w: %d overflows int64", ErrMsgpack, v)
		}
		return int64(v), err
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v, err := r.uN(n)
		switch n {
		case 1:
			return int64(int8(v)), err
		case 2:
			return int64(int16(v)), err
		case 4:
			return int64(int32(v)), err
		}
		return int64(v), err
	}
	return 0, fmt.Errorf("%w: want an integer, found 0x%02x", ErrMsgpack, c)
}

// Uint reads a non-negative integer.
func (r *Reader) Uint() (uint64, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	if c := r.b[r.off]; c == 0xcf {
		r.off++
		return r.uN(8)
	}
	v, err := r.Int()
	if err == nil && v < 0 {
		return 0, fmt.Errorf("%w: %d is negative", ErrMsgpack, v)
	}
	return uint64(v), err
}

// Float reads a float or an integer as a float64.
func (r *Reader) Float() (float64, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	switch r.b[r.off] {
	case 0xca:
		r.off++
		v, err := r.uN(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		r.off++
		v, err := r.uN(8)
		return math.Float64frombits(v), err
	}
	v, err := r.Int()
	return float64(v), err
}

// Skip skips one value of any kind.
func (r *Reader) Skip() error { return r.skip(0) }

func (r *Reader) skip(depth int) error {
	if depth > 64 {
		return fmt.Errorf("%w: nested deeper than 64", ErrMsgpack)
	}
	if err := r.need(1); err != nil {
		return err
	}
	c := r.b[r.off]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		r.off++
		return nil
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		n, err := r.MapLen()
		if err != nil {
			return err
		}
		for i := 0; i < 2*n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		n, err := r.ArrayLen()
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 || c == 0xc6:
		_, err := r.Bytes()
		return err
	case c == 0xca || c == 0xcb:
		_, err := r.Float()
		return err
	case c >= 0xcc && c <= 0xd3:
		r.off++
		return r.need0(1 << ((c - 0xcc) & 3))
	case c >= 0xd4 && c <= 0xd8: // fixext
		r.off++
		return r.need0(1 + 1<<(c-0xd4))
	case c >= 0xc7 && c <= 0xc9: // ext
		r.off++
		n, err := r.uN(1 << (c - 0xc7))
		if err != nil {
			return err
		}
		return r.need0(int(n) + 1)
	}
	return fmt.Errorf("%w: unknown type byte 0x%02x", ErrMsgpack, c)
}

func (r *Reader) need0(n int) error {
	if err := r.need(n); err != nil {
		return err
	}
	r.off += n
	return nil
}

// AppendMap appends a map header of n pairs.
func AppendMap(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// AppendArray appends an array header of n elements.
func AppendArray(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// AppendString appends a string.
func AppendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// AppendInt appends an integer in its shortest form.
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= 0x7f:
		return append(b, byte(v))
	case v < 0 && v >= -32:
		return append(b, byte(int8(v)))
	case v >= 0:
		return AppendUint(b, uint64(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// AppendUint appends an unsigned integer.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// AppendFloat appends a float64.
func AppendFloat(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

// AppendBool appends a boolean.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}
