package bridge

import (
	"encoding/binary"
	"fmt"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// The node's downlink: frames from the cloud arrive on the paho router
// goroutine in order; onDownlink only queues them (a paho handler must not
// block). receive checks each frame, drops seqs already seen (the window
// survives restarts), writes the new messages to the inbox queue with the
// window in one store write, then acknowledges the frame to the broker
// and reports its position to the cloud (DownAck). republish delivers the
// inbox on the edge broker in order and forgets what it delivered.

const downStream = string(topics.StreamDown)

func (b *Bridge) onDownlink(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	b.downFIFO = append(b.downFIFO, m)
	b.mu.Unlock()
	select {
	case b.downKick <- struct{}{}:
	default:
	}
}

func (b *Bridge) receive() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case <-b.downKick:
		}
		for {
			b.mu.Lock()
			msgs := b.downFIFO
			b.downFIFO = nil
			b.mu.Unlock()
			if len(msgs) == 0 {
				break
			}
			durable := false
			for _, m := range msgs {
				ok, seqd := b.takeFrame(m)
				if ok {
					m.Ack()
				}
				durable = durable || seqd
			}
			b.mu.Lock()
			c := b.client
			b.mu.Unlock()
			if c != nil && durable {
				b.sendDownAck(c, false)
			}
		}
	}
}

// takeFrame stores the new messages of one downlink frame and reports
// whether the frame may be acknowledged (false only if the store failed:
// the cloud will send it again), and whether it held anything of the
// durable downlink. Best-effort messages (seq 0, Downlink.SendNow) are
// delivered at once, without the inbox.
func (b *Bridge) takeFrame(m paho.Message) (ok, durable bool) {
	f, err := topics.UnmarshalFrame(m.Payload(), b.cfg.Limits)
	if err == nil {
		f.Rebase(b.srv.Now())
	}
	if err == nil && (f.Node != b.node || f.Stream != topics.StreamDown) {
		err = fmt.Errorf("frame for node %q stream %q arrived at node %q", f.Node, f.Stream, b.node)
	}
	if err != nil {
		b.dead.Add(queue.DeadLetter{Component: "edge/inbox", Reason: topics.ReasonOf(err), Detail: err.Error(),
			Topic: m.Topic(), Payload: m.Payload()})
		return true, false
	}
	if f.Floor == 0 && len(f.Skipped) == 0 && !hasSeq(f.Messages) {
		// Best effort only: nothing to keep, nothing to acknowledge.
		for i := range f.Messages {
			fm := &f.Messages[i]
			b.deliver(&queue.Record{Topic: fm.Topic, Payload: fm.Payload, Retain: fm.Retain, QoS: fm.QoS,
				Time: fm.Time, Expires: fm.Expires, Origin: f.ID(fm)})
		}
		return true, false
	}
	txn, err := b.dedup.Lock(b.node, topics.StreamDown, f.Epoch)
	if err != nil {
		b.log.Error("inbox: dedup window unreadable", "error", err)
		return false, true
	}
	txn.Raise(f.Floor)
	txn.Skip(f.Skipped)
	var recs, now []queue.Record
	dups := 0
	for i := range f.Messages {
		fm := &f.Messages[i]
		if fm.Seq == 0 {
			now = append(now, queue.Record{Topic: fm.Topic, Payload: fm.Payload, Retain: fm.Retain, QoS: fm.QoS,
				Time: fm.Time, Expires: fm.Expires, Origin: f.ID(fm)})
			continue
		}
		if !txn.Add(fm.Seq) {
			dups++
			continue
		}
		recs = append(recs, queue.Record{Topic: fm.Topic, Payload: fm.Payload, Retain: fm.Retain, QoS: fm.QoS,
			Time: fm.Time, Expires: fm.Expires, Origin: f.ID(fm)})
	}
	var extra store.Batch
	txn.Put(&extra)
	b.mu.Lock()
	newEpoch := f.Epoch != b.downEpoch
	b.mu.Unlock()
	if newEpoch {
		extra.Put([]byte(b.metaAbs+"down-epoch"), binary.BigEndian.AppendUint64(nil, f.Epoch))
	}
	_, err = b.inbox.Append(downStream, recs, &extra)
	txn.Done(err)
	if err != nil {
		b.log.Error("inbox: write failed; the cloud will resend", "error", err)
		return false, true
	}
	if newEpoch {
		b.mu.Lock()
		b.downEpoch = f.Epoch
		b.mu.Unlock()
	}
	if dups > 0 && b.metrics != nil {
		b.metrics.Duplicates.WithLabelValues("edge-inbox").Add(float64(dups))
	}
	for i := range now {
		b.deliver(&now[i])
	}
	return true, len(f.Messages) > len(now) || f.Floor > 0 || len(f.Skipped) > 0
}

// sendDownAck tells the cloud how far the downlink is durably received;
// with replay it also asks for everything after that.
func (b *Bridge) sendDownAck(c paho.Client, replay bool) {
	b.mu.Lock()
	epoch := b.downEpoch
	b.mu.Unlock()
	var seq uint64
	if epoch != 0 {
		txn, err := b.dedup.Lock(b.node, topics.StreamDown, epoch)
		if err != nil {
			return
		}
		seq = txn.Watermark()
		txn.Done(nil)
	}
	env, err := topics.NewEnvelope(topics.KindDownAck, "edge/bridge", topics.DownAck{Epoch: epoch, Seq: seq, Replay: replay})
	if err != nil {
		return
	}
	raw, _ := env.Marshal()
	c.Publish(topics.DownAckTopic(b.node), 1, false, raw)
}

func (b *Bridge) republish() {
	defer b.wg.Done()
	var next uint64
	for {
		changed := b.inbox.Changed()
		recs, after, err := b.inbox.Read(downStream, next, 256, 1<<20)
		if err != nil {
			b.log.Error("inbox: read failed", "error", err)
		}
		next = after
		for i := range recs {
			b.deliver(&recs[i])
			b.inbox.Ack(downStream, recs[i].Seq)
		}
		if len(recs) > 0 {
			continue
		}
		select {
		case <-b.stop:
			return
		case <-changed:
		}
	}
}

// deliver publishes one downlink message on the edge broker under its
// local topic, or gives it to the in-process consumer of that topic
// (Consume).
func (b *Bridge) deliver(r *queue.Record) {
	if topics.Expired(r.Time, r.Expires, b.srv.Now(), 0) {
		if b.metrics != nil {
			b.metrics.Expired.WithLabelValues(downStream).Inc()
		}
		return
	}
	_, local, ok := b.rules.In(r.Topic)
	if !ok {
		b.dead.Add(queue.DeadLetter{Component: "edge/inbox", Reason: "no-rule",
			Detail: "no downlink rule maps this topic to the edge broker", Topic: r.Topic,
			Message: r.Origin.String(), Payload: r.Payload})
		return
	}
	switch topics.PayloadOf(local) {
	case topics.PayloadEnvelope:
		if _, err := topics.UnmarshalEnvelope(r.Payload, b.cfg.Limits); err != nil {
			b.dead.Add(queue.DeadLetter{Component: "edge/inbox", Reason: topics.ReasonOf(err), Detail: err.Error(),
				Topic: r.Topic, Message: r.Origin.String(), Payload: r.Payload})
			return
		}
	case topics.PayloadFrame, topics.PayloadInvalid:
		b.dead.Add(queue.DeadLetter{Component: "edge/inbox", Reason: "bad-topic",
			Detail: "a downlink rule maps this message to " + local + ", which is not for apps", Topic: r.Topic,
			Message: r.Origin.String(), Payload: r.Payload})
		return
	}
	if take := b.consumer(local); take != nil {
		take(local, r.Payload)
		return
	}
	if err := b.srv.Publish(access.CloudDownlinkPrincipal, local, r.Payload, r.Retain, r.QoS); err != nil {
		b.log.Warn("inbox: local publish failed", "topic", local, "error", err)
	}
}

func hasSeq(ms []topics.FrameMessage) bool {
	for i := range ms {
		if ms[i].Seq != 0 {
			return true
		}
	}
	return false
}
