// Package partition splits a data set between the clients of a fleet, the
// way federated-learning experiments do: IID, label skew drawn from a
// Dirichlet distribution, a few label shards per client, or one part per
// value of an attribute (one task per part, for lifelong learning).
//
// Every function returns, for each client, the indices of its samples in
// ascending order; together the parts cover each sample exactly once. All
// randomness comes from the seed, so a partition is reproducible.
//
// The package only computes indices: datasets.Dataset.Subset turns them
// into data, and package ml trains on it.
package partition
