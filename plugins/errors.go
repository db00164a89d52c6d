package plugins

import "errors"

// Errors a caller can test with errors.Is.
var (
	// ErrUnknownPlugin: no loaded module provides the name.
	ErrUnknownPlugin = errors.New("unknown plugin")
	// ErrWrongKind: the plugin exists but is not of the kind asked for.
	ErrWrongKind = errors.New("plugin of another kind")
	// ErrBadModule: the bytes are not a loadable plugin module (not WASM,
	// wrong ABI version, missing export, bad manifest, capability refused).
	ErrBadModule = errors.New("bad plugin module")
	// ErrPluginFailed: the plugin trapped, overran its deadline or memory, or
	// returned malformed output; its instance was discarded.
	ErrPluginFailed = errors.New("plugin failed")
	// ErrRejected: the plugin ran and refused the input with a reason.
	ErrRejected = errors.New("plugin rejected the input")
	// ErrBadParameter: a parameter the plugin does not declare.
	ErrBadParameter = errors.New("bad plugin parameter")
	// ErrClosed: the host is closed.
	ErrClosed = errors.New("plugin host closed")
)
