// Package demo is `sedna demo`: a cloud manager and two edge nodes in one
// process, taken through a link outage and an agent restart while local
// apps publish, with every message counted in the cloud by its ID; then
// the joint inference examples (classification, detection), the
// federated learning example on nodes of the same cloud, and the
// incremental and lifelong learning examples.
//
// [Run] owns everything it starts: the cloud manager, the agents, the
// fault-injecting links and the stores, in [Options].Dir or a temporary
// directory it removes. It does not own the command's flags or its
// deadline: cmd/sedna builds [Options] and the context.
//
// The bench plays the demo's [Camera] and runs federated learning jobs
// with [StartFLNodes], [RunFLJob] and [ApplyFLJob], so they are exported
// here rather than written twice.
package demo
