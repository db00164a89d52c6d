// Package cloudlink is the cloud's half of the link between the nodes and
// the cloud (package bridge is the node's):
//
//   - Ingress, a hook of the embedded cloud broker: the frames a node's
//     bridge publishes are checked, deduplicated by message ID and written
//     ahead before the bridge gets its PUBACK, then published unwrapped on
//     their topics;
//   - Relay, the same for an external broker (mosquitto, EMQX), where no
//     hook runs before the PUBACK: it consumes the frames as a Consumer;
//   - Downlink, the durable outbox per node, replayed from what the node
//     acknowledged when it comes back; on the embedded broker also a hook
//     that takes cloud applications' messages for a node before their
//     PUBACK;
//   - Consumer, how a cloud application gets every node's messages
//     exactly once from any broker;
//   - Bus, how a cloud component talks to the cloud broker: InlineBus on
//     the embedded one, ClientBus over an MQTT connection to an external
//     one (also the command line's connection, see ClientConfig).
//
// What each consumer is promised is written up in docs/TOPICS.md; how it
// is kept, in docs/ARCHITECTURE.md ("The cloud's ingress", "The
// downlink").
package cloudlink
