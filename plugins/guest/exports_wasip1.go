//go:build wasip1

package guest

import "unsafe"

// pinned keeps buffers handed to the host alive until it frees them.
var pinned = map[uint32][]byte{}

func pin(b []byte) uint32 {
	if len(b) == 0 {
		b = make([]byte, 1)
	}
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	pinned[p] = b
	return p
}

func give(b []byte) uint64 {
	return uint64(pin(b))<<32 | uint64(len(b))
}

func view(p, n uint32) []byte {
	if b, ok := pinned[p]; ok && uint32(len(b)) >= n {
		return b[:n]
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), p)), n)
}

//go:wasmexport abi_version
func abiVersion() uint32 { return 1 }

//go:wasmexport alloc
func alloc(n uint32) uint32 { return pin(make([]byte, n)) }

//go:wasmexport free
func free(p, n uint32) { delete(pinned, p) }

//go:wasmexport manifest
func manifest() (r uint64) {
	defer func() {
		if recover() != nil {
			r = 0
		}
	}()
	return give(ManifestBytes())
}

//go:wasmexport mine
func mine(p, n uint32) uint64 { return give(HandleMine(view(p, n))) }

//go:wasmexport aggregate
func aggregate(p, n uint32) uint64 { return give(HandleAggregate(view(p, n))) }
