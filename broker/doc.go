// Package broker is the MQTT side of Sedna-Go: the embedded broker of an
// edge node and of the cloud (mochi-mqtt), and the durable bridge between
// them (paho).
//
// Every broker feature is its own mochi hook in its own file, testable
// alone: authentication (auth.go), the per-node and local-app ACL (acl.go),
// protection of slow subscribers (backpressure.go), session persistence
// (sessions.go), the edge's capture of uplink traffic (capture.go), the
// cloud's ingress of bridge frames (ingress.go) and its capture of downlink
// traffic (downlink.go), and metrics (metrics.go).
//
// The bridge has three durable parts, all kept in the process's one store:
//
//   - the uplink Queue of an edge node: a publish that matches an uplink
//     Rule is appended to it before the publisher gets its PUBACK; the
//     Uplink sender forwards it in Frames, one stream per traffic class,
//     and forgets it only when the cloud acknowledged it;
//   - the cloud's Ingress: frames are checked, deduplicated by message ID
//     and written ahead before the bridge gets its PUBACK, then published
//     unwrapped to their destination topics;
//   - the Downlink: a durable outbox per node in the cloud, replayed from
//     the node's last acknowledged sequence number when it reconnects, and
//     the node's Inbox, which deduplicates and republishes locally.
//
// What each consumer is promised (exactly once, at least once) is written
// up in docs/TOPICS.md.
package broker
