package cloud

import (
	"encoding/binary"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// effects is everything job control does outside its own state. The
// control plane's state and its transitions (apply, delete, a node's
// status, a worker's report, dispatch, settle) are a machine: given the
// same state, event and time they make the same state and the same
// effects, in order. storeEffects carries them out on the store, the cloud
// broker, the nodes' outboxes and the supervisor; a test records them
// (control_machine_test.go).
type effects interface {
	// save keeps a resource's record and status (before anything is
	// published or sent of it).
	save(key string, rec record, st api.Status) error
	// forget drops a deleted resource's record and status, keeping when
	// its incarnation was created (a new one is created later).
	forget(key string, created int64) error
	// joined keeps that node joined, with its state then.
	joined(node, state string) error
	// publish publishes body in an envelope of kind on the cloud broker.
	publish(topic, kind string, body any, retain bool) error
	// clear removes the retained message of topic.
	clear(topic string) error
	// sendSpec queues a spec for node in its outbox.
	sendSpec(node string, ref topics.JobRef, sp topics.Spec) error
	// ensure runs a worker placed on the cloud (or restarts it for a new
	// revision).
	ensure(spec workers.Spec)
	// stop stops the cloud's workers of ref.
	stop(ref topics.JobRef)
}

// storeEffects are the control plane's effects on the world.
type storeEffects struct {
	st       store.Store
	bus      cloudlink.Bus
	downlink *cloudlink.Downlink
	sup      *workers.Supervisor // nil: the cloud runs no workers
}

func (fx *storeEffects) save(key string, rec record, st api.Status) error {
	rv, err := msgpack.Marshal(&rec)
	if err != nil {
		return err
	}
	sv, err := msgpack.Marshal(&st)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Put(recordKey(key), rv)
	b.Put(statusKey(key), sv)
	return fx.st.Write(&b)
}

func (fx *storeEffects) forget(key string, created int64) error {
	var b store.Batch
	b.Delete(recordKey(key))
	b.Delete(statusKey(key))
	b.Put(deletedKey(key), binary.BigEndian.AppendUint64(nil, uint64(created)))
	return fx.st.Write(&b)
}

func (fx *storeEffects) joined(node, state string) error {
	var b store.Batch
	b.Put([]byte("n/"+node), []byte(state))
	return fx.st.Write(&b)
}

func (fx *storeEffects) publish(topic, kind string, body any, retain bool) error {
	raw, err := topics.Encode(kind, "cloud/control", body)
	if err != nil {
		return err
	}
	return fx.bus.Publish(topic, raw, retain, 1)
}

func (fx *storeEffects) clear(topic string) error { return fx.bus.Publish(topic, nil, true, 1) }

func (fx *storeEffects) sendSpec(node string, ref topics.JobRef, sp topics.Spec) error {
	return sendSpec(fx.downlink, node, ref, sp)
}

func (fx *storeEffects) ensure(spec workers.Spec) {
	if fx.sup != nil {
		fx.sup.Ensure(spec)
	}
}

func (fx *storeEffects) stop(ref topics.JobRef) {
	if fx.sup != nil {
		fx.sup.Stop(ref)
	}
}
