package broker

import (
	"bytes"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TakeoverHook keeps messages that mochi would lose while a persistent
// session is taken over by a new connection of the same client ID.
//
// mochi marks the old client taken over, copies its in-flight messages to
// the new client, then clears the old one; but until the new client is in
// its client index, publishes still find the old client and land in its
// in-flight set after the copy, where nothing ever sends them (measured:
// about 1 in 1,000 messages lost by a subscriber reconnecting while 20,000
// flowed). This hook takes every message queued for a taken-over client
// and queues it for the session's current connection instead, as soon as
// that connection is established.
type TakeoverHook struct {
	mqtt.HookBase
	log     *slog.Logger
	persist func(cl *mqtt.Client, pk packets.Packet) // the session store's, if any

	mu    sync.Mutex
	live  map[string]*mqtt.Client     // the established connection of each client ID
	stash map[string][]packets.Packet // rescued messages waiting for it
}

// NewTakeoverHook makes the hook; persist, if set, stores a rescued
// message for the new session (the SessionHook's OnQosPublish).
func NewTakeoverHook(log *slog.Logger, persist func(cl *mqtt.Client, pk packets.Packet)) *TakeoverHook {
	return &TakeoverHook{log: log, persist: persist, live: map[string]*mqtt.Client{}, stash: map[string][]packets.Packet{}}
}

// ID names the hook.
func (h *TakeoverHook) ID() string { return "sedna-takeover" }

// Provides says which events the hook handles.
func (h *TakeoverHook) Provides(b byte) bool {
	return b == mqtt.OnQosPublish || b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

// OnQosPublish rescues a message queued for a taken-over client. The old
// client is marked taken over before its in-flight set is copied, so a
// message queued after the copy is always seen here.
func (h *TakeoverHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || !cl.IsTakenOver() {
		return
	}
	h.rescue(cl, pk)
}

// rescue gives pk to the current connection of old's client ID, or keeps
// it until that connection is established.
func (h *TakeoverHook) rescue(old *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	cur, ok := h.live[old.ID]
	if !ok || cur == old || cur.IsTakenOver() {
		h.stash[old.ID] = append(h.stash[old.ID], pk)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	h.deliver(cur, pk)
}

// OnSessionEstablished records the current connection of a client ID and
// gives it what was rescued meanwhile.
func (h *TakeoverHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	h.live[cl.ID] = cl
	rescued := h.stash[cl.ID]
	delete(h.stash, cl.ID)
	h.mu.Unlock()
	for _, pk := range rescued {
		h.deliver(cl, pk)
	}
}

// OnDisconnect forgets a connection that ended (not one taken over).
func (h *TakeoverHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.mu.Lock()
	if h.live[cl.ID] == cl {
		delete(h.live, cl.ID)
	}
	if expire && !cl.IsTakenOver() {
		delete(h.stash, cl.ID)
	}
	h.mu.Unlock()
}

func (h *TakeoverHook) deliver(cl *mqtt.Client, pk packets.Packet) {
	// A message queued for the old client just before it was marked, but
	// seen here just after, was also copied to the new one, under the same
	// packet ID; the new client has not read any acknowledgement yet when
	// its session is established, so the copy is still there.
	if ex, ok := cl.State.Inflight.Get(pk.PacketID); ok && ex.TopicName == pk.TopicName && bytes.Equal(ex.Payload, pk.Payload) {
		return
	}
	id, err := cl.NextPacketID()
	if err != nil {
		h.log.Warn("takeover: no packet ID left for a rescued message", "client", cl.ID, "topic", pk.TopicName)
		return
	}
	out := pk.Copy(false)
	out.PacketID = uint16(id)
	out.FixedHeader.Dup = false
	cl.State.Inflight.Set(out)
	if cl.IsTakenOver() {
		// Taken over meanwhile: the copy to its successor may have missed
		// out (it is marked before it is copied), so rescue it again; at
		// worst the successor gets it twice.
		h.rescue(cl, pk)
		return
	}
	if h.persist != nil {
		h.persist(cl, out)
	}
	if !cl.Closed() {
		_ = cl.WritePacket(out)
	}
}
