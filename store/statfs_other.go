//go:build !(linux || darwin || freebsd)

package store

// freeBytes is not known here: the store has no disk guard.
var freeBytes func(dir string) (int64, error)
