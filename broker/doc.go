// Package broker is the embedded MQTT broker (mochi-mqtt) of an edge node
// and of the cloud, with the project's hooks. Every broker feature is its
// own mochi hook in its own file, testable alone: the guard that reads
// each packet's header before mochi does (guard.go) and the ack gate,
// which holds a PUBACK until its message is written (gate.go); slow
// subscribers (subscribers.go); persistent sessions and retained messages
// in the process's store (sessions.go, takeover.go); a node's retained
// status (status.go); the counting of clients (metrics.go). Who may
// connect and what each client may do is broker/access's (credentials,
// principals, the one authorization point and its two hooks), which the
// server installs first.
//
// The link between a node and the cloud is built on it, in packages of
// their own: broker/queue (the durable queue, dedup windows, dead
// letters), broker/bridge (a node's half: capture, uplink, inbox),
// broker/cloudlink (the cloud's half: ingress, downlink, consumers) and
// broker/metrics (the series of them all). This package knows none of
// them but the queue's dead letters and the series; they reach it
// through its exported API (Server, AckGate).
//
// What each consumer is promised (exactly once, at least once) is written
// up in docs/TOPICS.md.
package broker
