package ml

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// The binary format, version 1, all integers little-endian:
//
//	magic    4 bytes  "SDML"
//	version  uint16   1
//	kind     uint8    1 softmax, 2 mlp
//	layers   uint8    number of layer widths L (2 for softmax, 3 or 4 for mlp)
//	widths   L × uint32, from the inputs to the classes
//	samples  uint64   Samples()
//	count    uint32   number of weights, Σ (widths[l-1]+1)·widths[l]
//	weights  count × float32 (IEEE 754 bits), in the order of Weights()
//	crc      uint32   CRC-32 (IEEE) of every byte before it
const (
	formatMagic   = "SDML"
	formatVersion = 1
	headerFixed   = 4 + 2 + 1 + 1 // magic, version, kind, layers
)

// MarshalBinary encodes the network in the versioned binary format above.
func (n *Network) MarshalBinary() ([]byte, error) {
	size := headerFixed + 4*len(n.sizes) + 8 + 4 + 4*len(n.params) + 4
	b := make([]byte, 0, size)
	b = append(b, formatMagic...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = append(b, byte(n.kind), byte(len(n.sizes)))
	for _, s := range n.sizes {
		b = binary.LittleEndian.AppendUint32(b, uint32(s))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(n.samples))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(n.params)))
	for _, w := range n.params {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(w))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

// UnmarshalBinary replaces the network (kind, shape, weights, samples) with
// the one encoded in b. On error the network is unchanged; the error wraps
// ErrBadMagic, ErrUnsupportedVersion, ErrTruncated, ErrChecksum or
// ErrMalformed.
func (n *Network) UnmarshalBinary(b []byte) error {
	m, err := Unmarshal(b)
	if err != nil {
		return err
	}
	*n = *m
	return nil
}

// Unmarshal decodes a network written by MarshalBinary. The error wraps
// ErrBadMagic, ErrUnsupportedVersion, ErrTruncated, ErrChecksum or
// ErrMalformed, checked in that order.
func Unmarshal(b []byte) (*Network, error) {
	if len(b) < len(formatMagic) {
		if string(b) != formatMagic[:len(b)] {
			return nil, decodeErr(ErrBadMagic, "starts with %q", b)
		}
		return nil, decodeErr(ErrTruncated, "%d bytes", len(b))
	}
	if string(b[:4]) != formatMagic {
		return nil, decodeErr(ErrBadMagic, "starts with %q, want %q", b[:4], formatMagic)
	}
	if len(b) < 6 {
		return nil, decodeErr(ErrTruncated, "%d bytes, no version", len(b))
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != formatVersion {
		return nil, decodeErr(ErrUnsupportedVersion, "version %d, this build reads %d", v, formatVersion)
	}
	if len(b) < headerFixed {
		return nil, decodeErr(ErrTruncated, "%d bytes, header incomplete", len(b))
	}
	kind, layers := Kind(b[6]), int(b[7])
	switch {
	case kind == KindSoftmax && layers == 2:
	case kind == KindMLP && (layers == 3 || layers == 4):
	default:
		return nil, decodeErr(ErrMalformed, "%v with %d layer widths", kind, layers)
	}
	head := headerFixed + 4*layers + 8 + 4
	if len(b) < head {
		return nil, decodeErr(ErrTruncated, "%d bytes, header needs %d", len(b), head)
	}
	sizes := make([]int, layers)
	for i := range sizes {
		v := binary.LittleEndian.Uint32(b[headerFixed+4*i:])
		if v < 1 || v > maxWidth {
			return nil, decodeErr(ErrMalformed, "layer %d has %d units", i, v)
		}
		sizes[i] = int(v)
	}
	if err := checkSizes("unmarshal", sizes); err != nil {
		return nil, decodeErr(ErrMalformed, "shape %v: %v", sizes, err)
	}
	samples := binary.LittleEndian.Uint64(b[head-12:])
	if samples > math.MaxInt32 {
		return nil, decodeErr(ErrMalformed, "%d samples", samples)
	}
	count := int(binary.LittleEndian.Uint32(b[head-4:]))
	if want := countWeights(sizes); count != want {
		return nil, decodeErr(ErrMalformed, "%d weights for shape %v, want %d", count, sizes, want)
	}
	total := head + 4*count + 4
	if len(b) < total {
		return nil, decodeErr(ErrTruncated, "%d bytes, want %d", len(b), total)
	}
	if len(b) > total {
		return nil, decodeErr(ErrMalformed, "%d bytes after the checksum", len(b)-total)
	}
	if got, want := crc32.ChecksumIEEE(b[:total-4]), binary.LittleEndian.Uint32(b[total-4:]); got != want {
		return nil, decodeErr(ErrChecksum, "computed %08x, stored %08x", got, want)
	}
	params := make([]float32, count)
	for i := range params {
		params[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[head+4*i:]))
	}
	if i := firstNonFinite(params); i >= 0 {
		return nil, decodeErr(ErrMalformed, "weight %d is %v", i, params[i])
	}
	return &Network{kind: kind, sizes: sizes, params: params, samples: int(samples)}, nil
}

func decodeErr(reason error, format string, args ...any) error {
	return fmt.Errorf("ml: unmarshal: %w: %s", reason, fmt.Sprintf(format, args...))
}
