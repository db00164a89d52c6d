// Package jointinference is Sedna's joint inference service as built-in
// workers: the edge worker answers every sample with a small model and
// sends the hard ones (a WASM hard-example miner decides which) to the
// cloud worker's big model, over MQTT request/reply through the node's
// bridge, batched, with binary tensors, a correlation ID and a deadline.
// The edge never waits without bound: on a timeout or with the link down it
// answers with its own result, marked; a request that could not be sent in
// time expires instead of being sent late; offload resumes by itself when
// the cloud comes back.
//
// Devices publish samples on the service's input topic of their node's
// broker (msgpack envelopes, or JSON for any MQTT client) and get results
// on its result topic or the topic they ask for. The wire format, the
// parameters and the metrics are in docs/JOINT_INFERENCE.md.
package jointinference
