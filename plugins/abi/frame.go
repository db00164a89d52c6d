package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// Version is the ABI version a plugin's abi_version export must return.
const Version = 1

// Magic starts every frame: "SPF1" (Sedna Plugin Frame, layout 1).
var Magic = [4]byte{'S', 'P', 'F', '1'}

// DType is the element type of a tensor. Values are little-endian.
type DType uint8

// The element types of ABI v1.
const (
	F32 DType = 1
	F64 DType = 2
	I32 DType = 3
	U32 DType = 4
	I64 DType = 5
	U8  DType = 6
)

// Size is the byte width of one element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F32, I32, U32:
		return 4
	case F64, I64:
		return 8
	case U8:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F64:
		return "f64"
	case I32:
		return "i32"
	case U32:
		return "u32"
	case I64:
		return "i64"
	case U8:
		return "u8"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// MaxDims bounds a tensor's rank.
const MaxDims = 8

// Tensor is a named n-dimensional array whose Data are the raw little-endian
// bytes of its elements. A decoded Tensor's Data alias the frame.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
	// Parts, when Data is nil, are encoded one after another as the data:
	// a host stacks client updates into one tensor without concatenating
	// them first. Decoding never sets Parts.
	Parts [][]byte
}

func (t *Tensor) dataLen() int {
	if t.Data != nil {
		return len(t.Data)
	}
	n := 0
	for _, p := range t.Parts {
		n += len(p)
	}
	return n
}

// Elems is the product of the shape.
func (t Tensor) Elems() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Frame is one call's input or output: msgpack metadata and tensors.
type Frame struct {
	Meta    []byte
	Tensors []Tensor
}

// Tensor returns the tensor called name.
func (f *Frame) Tensor(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// ErrFrame is wrapped by every decoding error.
var ErrFrame = errors.New("abi: bad frame")

func pad8(n int) int { return (n + 7) &^ 7 }

// Size is the encoded size of f.
func (f *Frame) Size() int {
	n := pad8(12 + len(f.Meta))
	for _, t := range f.Tensors {
		n = pad8(n + 4 + 4*len(t.Shape) + len(t.Name))
		n = pad8(n + t.dataLen())
	}
	return n
}

// AppendTo appends the encoding of f to dst. Tensor data start on 8-byte
// boundaries of the frame so that a guest can read them in place.
func (f *Frame) AppendTo(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, Magic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f.Meta)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f.Tensors)))
	dst = append(dst, f.Meta...)
	dst = zeroPad(dst, start)
	for _, t := range f.Tensors {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(t.Name)))
		dst = append(dst, byte(t.DType), byte(len(t.Shape)))
		for _, d := range t.Shape {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(d))
		}
		dst = append(dst, t.Name...)
		dst = zeroPad(dst, start)
		if t.Data != nil {
			dst = append(dst, t.Data...)
		} else {
			for _, p := range t.Parts {
				dst = append(dst, p...)
			}
		}
		dst = zeroPad(dst, start)
	}
	return dst
}

func zeroPad(b []byte, start int) []byte {
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// Decode parses a frame. Tensors and metadata alias b. Every length is
// checked against b, so hostile bytes give an error, never a panic.
func Decode(b []byte) (Frame, error) {
	var f Frame
	if len(b) < 12 || [4]byte(b[:4]) != Magic {
		return f, fmt.Errorf("%w: no SPF1 magic", ErrFrame)
	}
	metaLen := int(binary.LittleEndian.Uint32(b[4:]))
	count := int(binary.LittleEndian.Uint32(b[8:]))
	if metaLen > len(b)-12 {
		return f, fmt.Errorf("%w: metadata of %d bytes overruns a %d-byte frame", ErrFrame, metaLen, len(b))
	}
	f.Meta = b[12 : 12+metaLen]
	off := pad8(12 + metaLen)
	if count > (len(b)-off)/4+1 {
		return f, fmt.Errorf("%w: %d tensors cannot fit", ErrFrame, count)
	}
	f.Tensors = make([]Tensor, 0, count)
	for i := 0; i < count; i++ {
		if off+4 > len(b) {
			return f, fmt.Errorf("%w: tensor %d header overruns the frame", ErrFrame, i)
		}
		nameLen := int(binary.LittleEndian.Uint16(b[off:]))
		t := Tensor{DType: DType(b[off+2])}
		ndim := int(b[off+3])
		off += 4
		if t.DType.Size() == 0 {
			return f, fmt.Errorf("%w: tensor %d has unknown %v", ErrFrame, i, t.DType)
		}
		if ndim > MaxDims {
			return f, fmt.Errorf("%w: tensor %d has %d dimensions (max %d)", ErrFrame, i, ndim, MaxDims)
		}
		if off+4*ndim+nameLen > len(b) {
			return f, fmt.Errorf("%w: tensor %d header overruns the frame", ErrFrame, i)
		}
		elems := uint64(1)
		t.Shape = make([]int, ndim)
		for d := range ndim {
			v := binary.LittleEndian.Uint32(b[off+4*d:])
			t.Shape[d] = int(v)
			elems *= uint64(v)
			if elems > uint64(len(b)) {
				return f, fmt.Errorf("%w: tensor %d shape %v larger than the frame", ErrFrame, i, t.Shape[:d+1])
			}
		}
		off += 4 * ndim
		t.Name = string(b[off : off+nameLen])
		off = pad8(off + nameLen)
		size := elems * uint64(t.DType.Size())
		if off > len(b) || size > uint64(len(b)-off) {
			return f, fmt.Errorf("%w: tensor %q data (%d bytes) overrun the frame", ErrFrame, t.Name, size)
		}
		t.Data = b[off : off+int(size)]
		off = pad8(off + int(size))
		f.Tensors = append(f.Tensors, t)
	}
	return f, nil
}

// F32Tensor makes a float32 tensor, copying v into little-endian bytes.
func F32Tensor(name string, v []float32, shape ...int) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: shapeOr(shape, len(v)), Data: b}
}

// F64Tensor makes a float64 tensor.
func F64Tensor(name string, v []float64, shape ...int) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return Tensor{Name: name, DType: F64, Shape: shapeOr(shape, len(v)), Data: b}
}

// U32Tensor makes a uint32 tensor.
func U32Tensor(name string, v []uint32, shape ...int) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return Tensor{Name: name, DType: U32, Shape: shapeOr(shape, len(v)), Data: b}
}

// U8Tensor makes a byte tensor; it aliases v.
func U8Tensor(name string, v []byte, shape ...int) Tensor {
	return Tensor{Name: name, DType: U8, Shape: shapeOr(shape, len(v)), Data: v}
}

func shapeOr(shape []int, n int) []int {
	if len(shape) == 0 {
		return []int{n}
	}
	return shape
}

// F32 copies a float32 tensor's elements out.
func (t Tensor) F32() ([]float32, error) {
	if t.DType != F32 {
		return nil, fmt.Errorf("abi: tensor %q is %v, want f32", t.Name, t.DType)
	}
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// F64 copies a float64 tensor's elements out.
func (t Tensor) F64() ([]float64, error) {
	if t.DType != F64 {
		return nil, fmt.Errorf("abi: tensor %q is %v, want f64", t.Name, t.DType)
	}
	out := make([]float64, len(t.Data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

// U32 copies a uint32 tensor's elements out.
func (t Tensor) U32() ([]uint32, error) {
	if t.DType != U32 {
		return nil, fmt.Errorf("abi: tensor %q is %v, want u32", t.Name, t.DType)
	}
	out := make([]uint32, len(t.Data)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(t.Data[4*i:])
	}
	return out, nil
}

// ViewF32 returns t's elements without copying where the platform is
// little-endian and the data are 4-byte aligned (always so in a guest reading
// a frame in its own memory), else a copy.
func (t Tensor) ViewF32() ([]float32, error) {
	if t.DType != F32 {
		return nil, fmt.Errorf("abi: tensor %q is %v, want f32", t.Name, t.DType)
	}
	n := len(t.Data) / 4
	if n == 0 {
		return nil, nil
	}
	if littleEndian && uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), n), nil
	}
	return t.F32()
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
