// Package bridge is a node's half of the link to the cloud (package
// cloudlink is the cloud's). A Bridge keeps three durable parts in the
// process's store:
//
//   - the uplink queue: a publish on the node's broker that matches an
//     uplink Rule is appended to it by the CaptureHook before the
//     publisher gets its PUBACK (the hook holds the PUBACK in the
//     broker's ack gate until the queue has written it); the sender
//     forwards it to the cloud in frames, one stream per traffic class,
//     and forgets it only when the cloud acknowledged it;
//   - the inbox: downlink frames from the cloud are deduplicated and kept
//     before they are acknowledged, then republished on the node's broker
//     under their local topics (or given to the part of the node that
//     takes them, Consume);
//   - the node's dead letters.
//
// It reconnects by itself on a backoff (backoff.go), says why a link
// fails (LinkFailure), and keeps the node's retained status. Rules are
// what a config file says (DefaultRules unless it says otherwise).
// docs/ARCHITECTURE.md, "The uplink, step by step" and "The downlink",
// says how.
package bridge
