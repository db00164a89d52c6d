// Package plugins is the WASM plugin host: it loads hard-example miners and
// aggregators compiled to WebAssembly and runs them sandboxed with wazero.
//
// The built-ins (package builtin) and a third party's plugins take the same
// path: compile (through an on-disk cache), instantiate, check the ABI version
// and the exports, read the manifest, register each plugin by name. Calls go
// to a pool of instances per module, one per concurrent caller; every call has
// a deadline and every instance a memory cap; an instance that traps, runs
// out of time or returns garbage is discarded and the next call gets a fresh
// one. A plugin sees no filesystem, network, environment or real clock unless
// its manifest asks and the host's configuration allows. What a guest writes
// to stderr or stdout is logged with the plugin's name.
//
// The ABI is written up in docs/PLUGINS.md; its wire format is package abi.
// The package does not own where plugins come from (the CLI and the agents
// pass files and directories) nor what their results are used for.
package plugins
