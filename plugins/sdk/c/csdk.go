// Package csdk embeds the C SDK of the plugin ABI, sedna_plugin.h, so that
// `sedna plugin build` can compile a C plugin with nothing but the sedna
// binary, clang and wasi-libc.
package csdk

import _ "embed"

// Header is sedna_plugin.h.
//
//go:embed sedna_plugin.h
var Header []byte
