// Package topics is the contract between every part of Sedna-Go: it names
// every MQTT topic the project uses, defines the msgpack envelope and the
// bridge frame, and lists the message types that travel inside them.
//
// No other package spells a topic string. Builders here produce topics,
// Parse turns a topic back into its parts, and Match applies MQTT filter
// rules (including the rule that '#' and '+' never match a first level that
// starts with '$').
//
// The tree is versioned under one root, "sedna/v1". Every per-node topic
// carries the node name as one level, so the rights of a node are a prefix
// rule: node N writes only under "sedna/v1/node/N/" and reads only
// "sedna/v1/down/N/" and "sedna/v1/broadcast/". Per-job topics carry the job
// kind, namespace and name. docs/TOPICS.md describes the tree in full.
//
// Decoders in this package never panic on bad input: they return a
// *DecodeError whose Reason is one of ErrMalformed, ErrUnknownVersion or
// ErrTooLarge, so callers can dead-letter the input with a clear reason.
//
// The package imports nothing else of the project.
package topics
