// Package builtin ships the built-in hard-example miners (Threshold,
// CrossEntropy, IBT, Random, EdgeOnly, CloudOnly) and aggregators (FedAvg,
// FedAvgM, Median, TrimmedMean) as one WASM module, written in C against the
// plugin ABI (src/builtins.c) and committed compiled, so that a fresh clone
// needs only the Go toolchain. The host loads it through exactly the same path
// as a third party's plugin.
//
// `make wasm` rebuilds it; CI rebuilds it and fails when the committed bytes
// differ from what the source gives.
package builtin

import _ "embed"

// Wasm is the compiled module holding every built-in plugin.
//
//go:embed builtins.wasm
var Wasm []byte

// Source names the module in logs and listings.
const Source = "builtin"
