// Package simulator runs fleets of virtual edge nodes and devices against
// the real system, following a scenario file (YAML): how many nodes, which
// devices publish what and how fast, a timeline of faults (links down and
// up, latency, bandwidth, resets, stalls, killed and restarted nodes), and
// what the run must show. It counts with a plain MQTT subscriber of its own,
// independent of the code under test, and writes a report (JSON and a
// readable summary) whose expectations decide the exit status.
//
// In real mode every node is a real edge agent with its own broker, bridge
// and Badger store (in-process, or a `sedna edge` subprocess where a kill
// must be real) behind a fault-injecting proxy (internal/netfault), bridged
// to a real cloud manager; the report checks invariants (nothing lost,
// nothing duplicated), not byte-identical output.
package simulator
