package topics

import (
	"encoding/binary"
	"fmt"
)

// MaxNesting bounds how deeply msgpack containers (arrays, maps) may nest
// in anything decoded from outside the process. No message of the project
// nests deeper than about six levels; the bound is what keeps a decoder's
// recursion (the reflection decoder's, and its Skip of unknown fields)
// from exhausting the stack on a payload of a million nested arrays.
const MaxNesting = 32

// CheckMsgpack walks one msgpack value in b without recursion and without
// allocating, and refuses it before any decoder sees it if:
//   - containers nest deeper than MaxNesting,
//   - a length (of a string, bytes, an array or a map) is larger than the
//     bytes left, so no forged length can make a decoder allocate more
//     than the input could hold,
//   - the value is truncated, or bytes follow it.
//
// Once it passes, decoding b allocates at most a small multiple of len(b):
// every element of every container takes at least one byte of input.
func CheckMsgpack(what string, b []byte) error {
	// pending[d] is the number of values still to read at depth d.
	var pending [MaxNesting + 2]uint64
	depth := 0
	pending[0] = 1
	i := 0
	for {
		for depth > 0 && pending[depth] == 0 {
			depth--
		}
		if pending[depth] == 0 {
			break
		}
		pending[depth]--
		if i >= len(b) {
			return malformed(what, "truncated at byte %d", i)
		}
		c := b[i]
		i++
		var skip, items uint64 // bytes to skip, values to read inside
		var sized int          // bytes of a length that follows c
		var container bool
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		case c >= 0x80 && c <= 0x8f: // fixmap
			items, container = 2*uint64(c&0x0f), true
		case c >= 0x90 && c <= 0x9f: // fixarray
			items, container = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
		case c == 0xc4, c == 0xd9: // bin8, str8
			sized = 1
		case c == 0xc5, c == 0xda: // bin16, str16
			sized = 2
		case c == 0xc6, c == 0xdb: // bin32, str32
			sized = 4
		case c == 0xc7: // ext8: length, type
			sized, skip = 1, 1
		case c == 0xc8: // ext16
			sized, skip = 2, 1
		case c == 0xc9: // ext32
			sized, skip = 4, 1
		case c == 0xca: // float32
			skip = 4
		case c == 0xcb: // float64
			skip = 8
		case c == 0xcc, c == 0xd0: // uint8, int8
			skip = 1
		case c == 0xcd, c == 0xd1: // uint16, int16
			skip = 2
		case c == 0xce, c == 0xd2: // uint32, int32
			skip = 4
		case c == 0xcf, c == 0xd3: // uint64, int64
			skip = 8
		case c == 0xd4: // fixext1
			skip = 2
		case c == 0xd5:
			skip = 3
		case c == 0xd6:
			skip = 5
		case c == 0xd7:
			skip = 9
		case c == 0xd8:
			skip = 17
		case c == 0xdc: // array16
			sized, container = 2, true
		case c == 0xdd: // array32
			sized, container = 4, true
		case c == 0xde: // map16
			sized, container = 2, true
		case c == 0xdf: // map32
			sized, container = 4, true
		default: // 0xc1 is never used
			return malformed(what, "byte %d: invalid msgpack code 0x%02x", i-1, c)
		}
		if sized > 0 {
			if len(b)-i < sized {
				return malformed(what, "truncated at byte %d", i)
			}
			var n uint64
			switch sized {
			case 1:
				n = uint64(b[i])
			case 2:
				n = uint64(binary.BigEndian.Uint16(b[i:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(b[i:]))
			}
			i += sized
			if container {
				items = n
				if c == 0xde || c == 0xdf {
					items = 2 * n
				}
			} else {
				skip += n
			}
		}
		left := uint64(len(b) - i)
		if skip > left {
			return malformed(what, "byte %d: a length of %d with %d bytes left", i, skip, left)
		}
		i += int(skip)
		if !container || items == 0 {
			continue
		}
		if items > left {
			return malformed(what, "byte %d: %d elements with %d bytes left", i, items, left)
		}
		if depth == MaxNesting {
			return &DecodeError{What: what, Reason: ErrTooDeep,
				Detail: fmt.Sprintf("containers nest deeper than %d at byte %d", MaxNesting, i)}
		}
		depth++
		pending[depth] = items
	}
	if i != len(b) {
		return malformed(what, "%d bytes after the end of the value", len(b)-i)
	}
	return nil
}
