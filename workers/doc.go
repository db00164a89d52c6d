// Package workers runs the workers of jobs where their specs place them: a
// built-in Go worker in-process, or an external process from the template's
// command, args and env. The Supervisor restarts a worker that fails, with
// exponential backoff, captures its output to a log file, and reports each
// change of state (Pending, Running, Restarting, Succeeded, Failed) with exit
// codes, for the agents to publish as events.
//
// The worker protocol (the environment a worker gets, what it subscribes to
// and publishes on its node's broker) is docs/WORKERS.md. The package does
// not own the topics it is told about nor where reports go: the edge agent
// and the cloud manager wire it to their brokers.
package workers
