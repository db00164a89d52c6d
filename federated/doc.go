// Package federated runs Sedna's FederatedLearningJob: training workers on
// the edge nodes train a copy of the global model on their node's Dataset,
// read in place, and send back only the weights (raw float32) with their
// sample count; the aggregation worker in the cloud combines the updates of
// each round with an aggregator plugin (FedAvg by default, or Median,
// TrimmedMean, FedAvgM, or one of the user's WASM plugins), scores the
// result on a validation set, and starts the next round, until the
// configured number of rounds, a target accuracy, or no improvement for a
// number of rounds. The final model is registered as a version of the job's
// Model, with its metrics.
//
// Unlike Sedna, which waits for every client, a round closes when every
// training worker has answered or, at its deadline, when a minimum number
// has: stragglers and dropped nodes do not stop the job, a node that comes
// back rejoins at the current round, and updates for an old round are
// ignored and counted. Rounds are events on the node's job topics, through
// the same durable bridge and downlink as everything else; raw samples
// never leave their node.
//
// The logic of rounds is a pure state machine (Coordinator); Cloud and
// Edge are its adapters to the brokers, the store and the plugin host.
package federated
