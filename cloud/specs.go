package cloud

import (
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/topics"
)

// sendSpec queues the desired state of a resource for node in its durable
// outbox: a spec with the resource's revision, which the node reconciles
// (its jobs keep the newest revision per key, so a delete made while the
// node was away is applied when it returns, and a name created again
// after a delete reaches it).
func sendSpec(d *cloudlink.Downlink, node string, ref topics.JobRef, sp topics.Spec) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	sp.Key = ref.String()
	raw, err := topics.Encode(topics.KindSpec, "cloud/control", sp)
	if err != nil {
		return err
	}
	_, err = d.Send(node, topics.ToNodeJob(node, ref, "spec"), raw, false, 1, 0)
	return err
}

// PutSpec sends the desired state of ref, at revision rev, to node: what
// the control plane does for each resource placed on it (for tests and
// tools that drive a node directly).
func (m *Manager) PutSpec(node string, ref topics.JobRef, rev topics.Revision, data []byte) error {
	return sendSpec(m.downlink, node, ref, topics.Spec{Generation: rev.Generation, Created: rev.Created, Data: data})
}

// DeleteSpec sends a tombstone for ref, at revision rev, to node.
func (m *Manager) DeleteSpec(node string, ref topics.JobRef, rev topics.Revision) error {
	return sendSpec(m.downlink, node, ref, topics.Spec{Generation: rev.Generation, Created: rev.Created, Deleted: true})
}
