// Package incremental is Sedna's incremental learning paradigm: a model
// deployed at the edge gets better from the samples the edge sees. A job
// runs cycles of three stages, Train, Eval and Deploy, each Waiting,
// Ready, Starting, Running, then Completed or Failed, as Sedna's status
// shows them. The logic of the cycles is a pure controller (Controller:
// events and the time in, the state to save, workers to start and
// conditions to report out), evaluated at the node of the job's Dataset,
// so that its triggers hold while the cloud link is down.
package incremental
