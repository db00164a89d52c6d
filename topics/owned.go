package topics

import "strings"

// Topics the paradigms, the simulator and the tools use: every topic of
// the project is built in this package (TestTopicsAreBuiltInTopics).

// TreePrefix is "sedna/v1/": the prefix of every topic of the tree.
func TreePrefix() string { return Root + "/" }

// TreeFilter matches every topic of the tree.
func TreeFilter() string { return Root + "/#" }

// JobTopic is topic what of job r: JobPrefix(r)+what ("reply", "global",
// "rounds", "chunk", ...).
func JobTopic(r JobRef, what string) string { return JobPrefix(r) + what }

// JobLabel is where labels for a learning job's hard examples are
// published: the one job topic a cloud user (an operator, not a viewer)
// may write, unretained, so that labelling tools need no more rights.
func JobLabel(r JobRef) string { return JobPrefix(r) + jobLabel }

const jobLabel = "label"

// IsJobLabel reports whether p, a parsed topic, is a JobLabel.
func IsJobLabel(p Parsed) bool { return p.Class == ClassJob && p.Rest == jobLabel }

// NodeApp is topic rest of node's plain MQTT apps as it arrives in the
// cloud under the suggested rule (NodeAppPrefix).
func NodeApp(node, rest string) string { return NodeAppPrefix(node) + rest }

// ToNodeApp is topic rest for node's plain MQTT apps, published in the
// cloud under the suggested downlink rule (ToNodeAppPrefix).
func ToNodeApp(node, rest string) string { return ToNodeAppPrefix(node) + rest }

// NodeKubeEdge is KubeEdge topic kt of node as it arrives in the cloud.
func NodeKubeEdge(node, kt string) string { return NodeKubeEdgePrefix(node) + kt }

// ToNodeKubeEdge is KubeEdge topic kt for node's broker, published in the
// cloud.
func ToNodeKubeEdge(node, kt string) string { return ToNodeKubeEdgePrefix(node) + kt }

// KubeEdgeTwinUpdate is where KubeEdge device id (namespace/name since
// KubeEdge 1.16, the name alone before) reports its twin, and with suffix
// "/delta" where it gets the desired state.
func KubeEdgeTwinUpdate(id, suffix string) string {
	return "$hw/events/device/" + id + "/twin/update" + suffix
}

// KubeEdgeDataUpdate is where a KubeEdge mapper publishes device id's
// readings ("$ke/events/device/{id}/data/update").
func KubeEdgeDataUpdate(id string) string { return "$ke/events/device/" + id + "/data/update" }

// KubeEdgeUpload is EventBus's upload topic of name
// ("$hw/events/upload/{name}").
func KubeEdgeUpload(name string) string { return "$hw/events/upload/" + name }

// KubeEdgeDevicesFilter matches every KubeEdge device topic under "$ke/".
func KubeEdgeDevicesFilter() string { return "$ke/events/device/#" }

// Joint inference's default topics on a node's broker: a service's input
// and its results, for devices to publish and read.

// JointInferenceInput is the default input topic of service ns/name.
func JointInferenceInput(ns, name string) string { return "ji/" + ns + "/" + name + "/input" }

// JointInferenceResult is the default result topic of service ns/name.
func JointInferenceResult(ns, name string) string { return "ji/" + ns + "/" + name + "/result" }

// Message kinds of the paradigms (envelope kinds). Each paradigm's package
// names them too, for its readers.
const (
	// KindFLGlobal: a piece of a federated round's global model, cloud to
	// node, or the job's end.
	KindFLGlobal = "fl.global"
	// KindFLUpdate: a piece of a client's weights, node to cloud.
	KindFLUpdate = "fl.update"
	// KindFLJoin: a training worker asks for the current round, node to
	// cloud, with its Dataset's shape.
	KindFLJoin = "fl.join"
	// KindFLRound: a federated round's record, on JobTopic(job, "rounds").
	KindFLRound = "fl.round"
	// KindJIRequest: a device's request on a service's input topic.
	KindJIRequest = "ji.request"
	// KindJIResult: a service's result to a device.
	KindJIResult = "ji.result"
	// KindJIOffload: an offload batch, edge worker to cloud worker.
	KindJIOffload = "ji.offload"
	// KindJIReply: the cloud worker's answer to an offload batch.
	KindJIReply = "ji.reply"
)

// Delivered is where a message the cloud sends to node on topic (under
// ToNodePrefix(node)) appears on the node's broker under the default
// rules: a job's topics under the tree (ToNodeJob(node, r, what) as
// JobTopic(r, what)), KubeEdge and app topics without their prefix. ok is
// false for a topic not under ToNodePrefix(node) or another part of it.
func Delivered(node, topic string) (local string, ok bool) {
	rest, ok := strings.CutPrefix(topic, ToNodePrefix(node))
	if !ok {
		return "", false
	}
	switch {
	case strings.HasPrefix(rest, nodeJob+"/"):
		return TreePrefix() + rest, true
	case strings.HasPrefix(rest, nodeKubeEdge+"/"):
		return strings.TrimPrefix(rest, nodeKubeEdge+"/"), true
	case strings.HasPrefix(rest, nodeApp+"/"):
		return strings.TrimPrefix(rest, nodeApp+"/"), true
	}
	return "", false
}
