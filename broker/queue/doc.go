// Package queue owns the durable parts every link of Sedna-Go keeps in the
// process's store:
//
//   - Queue, the one durable log of the project: a node's uplink and its
//     inbox, the cloud's write-ahead log of ingress and its outbox per
//     node. Records live under m/{stream}/{seq} of the queue's view,
//     cursors under c/{stream}; an append returns once it is written, a
//     reader sees a stream in order, and Ack marks records done, which a
//     trimmer deletes in lazy batches. A queue is bounded in bytes (with a
//     policy when full) and in age.
//   - Dedup, the windows of sequence numbers seen per (node, stream,
//     epoch), committed in the same store write as the messages they let
//     through (Queue.Append's extra batch), so that a receiver sees each
//     message once across crashes.
//   - DeadLetters, the store of messages refused on the way (malformed,
//     too large, not allowed, refused by the far side), each kept with its
//     reason, reported and counted.
//
// It knows nothing of MQTT: the broker, the bridge and the cloud's ingress
// and downlink use it (docs/ARCHITECTURE.md, "The durable queue").
package queue
