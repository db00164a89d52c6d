// Package abi is the plugin ABI v1 wire format shared by the host and the Go
// guest SDK: the frame that carries a call's metadata and tensors across the
// WASM boundary, and a small allocation-free msgpack reader and writer for the
// metadata.
//
// It imports nothing but the standard library, so a guest built with
// GOOS=wasip1 stays small and never pays for reflection. The layout is written
// up in docs/PLUGINS.md; the C SDK (plugins/sdk/c/sedna_plugin.h) implements
// the same bytes.
package abi
