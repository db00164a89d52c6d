package cloudlink

import (
	"errors"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// walStream is the one stream of the ingress write-ahead log.
const walStream = "in"

// IngressConfig configures the cloud's Ingress.
type IngressConfig struct {
	// Store is the cloud process's store.
	Store store.Store
	// Limits bound frames and envelopes; default topics.DefaultLimits.
	Limits topics.Limits
	// Dead receives refused frames and messages.
	Dead    *queue.DeadLetters
	Metrics *metrics.Set
	Logger  *slog.Logger
}

// Ingress is the cloud half of the uplink, a hook of the embedded cloud
// broker. For each frame a node's bridge publishes on topics.Uplink:
//
//  1. it checks the frame (a bad one is acked and dead-lettered, so it is
//     not resent forever) and each message: its destination must lie in
//     the sending node's own subtree, and envelope payloads must decode;
//  2. it drops message IDs already seen (a window per node, stream and
//     epoch, kept in the store: deliveries may come out of order and a
//     late lower seq is not a duplicate);
//  3. it writes the new messages ahead, with the window, in one store
//     write, before the bridge gets its PUBACK;
//  4. it publishes each new message unwrapped on its destination topic,
//     with envelopes stamped with their ID, and the frame, reduced to the
//     new messages, to frame subscribers, itself (inline) before the
//     PUBACK;
//  5. once both reached every subscriber (and the session hook stored
//     them for persistent sessions), the write-ahead entries are done.
//     After a crash, entries not done are published again at start:
//     consumers that deduplicate by ID (frames, envelopes) still get each
//     message once; plain subscribers of raw topics may see a message
//     twice across a crash (docs/TOPICS.md).
type Ingress struct {
	mqtt.HookBase
	cfg   IngressConfig
	srv   *broker.Server
	clock broker.Clock
	wal   *queue.Queue
	dedup *queue.Dedup
	log   *slog.Logger
	ready chan struct{}
}

// NewIngress opens the ingress's write-ahead log and dedup windows.
func NewIngress(cfg IngressConfig) (*Ingress, error) {
	cfg.Limits = cfg.Limits.OrDefault()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Store == nil || cfg.Dead == nil {
		return nil, errors.New("broker: ingress needs a store and a dead-letter store")
	}
	// The window records go into the log's own writes, which are made to
	// the store the process's store may be a view of.
	root, pfx := store.Split(cfg.Store)
	wal, err := queue.Open(store.Sub(cfg.Store, "ingress/wal/"), queue.Options{Name: "ingress", Metrics: cfg.Metrics, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &Ingress{cfg: cfg, wal: wal, dedup: queue.NewDedup(root, pfx+"ingress/dd/"), log: cfg.Logger,
		ready: make(chan struct{})}, nil
}

// ID names the hook.
func (h *Ingress) ID() string { return "sedna-ingress" }

// Provides says which events the hook handles.
func (h *Ingress) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnStarted
}

// Attach gives the hook its broker; call before the broker starts.
func (h *Ingress) Attach(s *broker.Server) { h.srv, h.clock = s, s.Now }

// OnStarted publishes what the write-ahead log holds from before a crash,
// then lets frames in.
func (h *Ingress) OnStarted() {
	defer close(h.ready)
	n, err := h.replay()
	if err != nil {
		h.log.Error("ingress: replay of the write-ahead log failed", "error", err)
	}
	if n > 0 {
		h.log.Info("ingress: replayed messages written ahead before a restart", "messages", n)
	}
}

// Stop closes the write-ahead log.
func (h *Ingress) Stop() error { return h.wal.Close() }

func (h *Ingress) replay() (int, error) {
	total := 0
	var from uint64
	for {
		recs, next, err := h.wal.Read(walStream, from, 512, 4<<20)
		if err != nil {
			return total, err
		}
		if len(recs) == 0 {
			return total, nil
		}
		from = next
		// Group consecutive records of one sender into frames.
		for i := 0; i < len(recs); {
			j := i
			o := recs[i].Origin
			for j < len(recs) && recs[j].Origin.Node == o.Node && recs[j].Origin.Stream == o.Stream && recs[j].Origin.Epoch == o.Epoch {
				j++
			}
			f := topics.Frame{Node: o.Node, Stream: o.Stream, Epoch: o.Epoch, Sent: h.clock.Now()}
			seqs := make([]uint64, 0, j-i)
			for k := i; k < j; k++ {
				r := &recs[k]
				_ = h.srv.Publish(access.NodePrincipal(o.Node), r.Topic, r.Payload, r.Retain, r.QoS)
				f.Messages = append(f.Messages, topics.FrameMessage{Seq: r.Origin.Seq, Topic: r.Topic, Payload: r.Payload,
					Retain: r.Retain, QoS: r.QoS, Time: r.Time, Expires: r.Expires})
				seqs = append(seqs, r.Seq)
			}
			if raw, err := f.Marshal(); err == nil && topics.ValidateName("node", o.Node) == nil {
				_ = h.srv.Publish(access.SystemPrincipal("ingress"), topics.Uplink(o.Node, o.Stream), raw, false, 1)
			}
			h.wal.Ack(walStream, seqs...)
			total += j - i
			i = j
		}
	}
}

// OnPublish takes a frame in before its PUBACK.
func (h *Ingress) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	p, perr := topics.Parse(pk.TopicName)
	if perr != nil || p.Class != topics.ClassUplink {
		return pk, nil
	}
	<-h.ready
	dead := func(reason, detail string, payload []byte) {
		h.cfg.Dead.Add(queue.DeadLetter{Component: "cloud/ingress", Reason: reason, Detail: detail,
			Topic: pk.TopicName, Client: cl.ID, Payload: payload})
	}
	f, err := topics.UnmarshalFrame(pk.Payload, h.cfg.Limits)
	if err == nil {
		f.Rebase(h.clock.Now())
	}
	if err != nil {
		dead(topics.ReasonOf(err), err.Error(), pk.Payload)
		return pk, packets.CodeSuccessIgnore
	}
	if f.Node != p.Node || f.Stream != p.Stream {
		dead("mismatch", fmt.Sprintf("frame of %s/%s published on %s", f.Node, f.Stream, pk.TopicName), pk.Payload)
		return pk, packets.CodeSuccessIgnore
	}
	txn, err := h.dedup.Lock(f.Node, f.Stream, f.Epoch)
	if err != nil {
		h.log.Error("ingress: dedup window unreadable; dropping the bridge's connection so it resends", "error", err)
		_ = h.srv.Mochi().DisconnectClient(cl, packets.ErrUnspecifiedError)
		return pk, packets.ErrRejectPacket
	}
	// The node's floor closes gaps here; frame subscribers get the gaps
	// as Skipped ranges instead, since the floor would not hold for them
	// (they may get a later frame before a message written ahead).
	skipped := append(f.Skipped, txn.Raise(f.Floor)...)
	txn.Skip(f.Skipped)
	now := h.clock.Now()
	var recs []queue.Record
	var keep []topics.FrameMessage
	dups, expired := 0, 0
	changed := false // a payload was stamped with its ID
	for i := range f.Messages {
		m := &f.Messages[i]
		if m.Seq != 0 && !txn.Add(m.Seq) {
			dups++
			continue
		}
		id := f.ID(m)
		before := len(m.Payload)
		if reason, detail := checkRelayed(f.Node, m, id, h.cfg.Limits); reason != "" {
			h.cfg.Dead.Add(queue.DeadLetter{Component: "cloud/ingress", Reason: reason, Detail: detail, Topic: m.Topic,
				Client: cl.ID, Message: id.String(), Payload: m.Payload})
			continue
		}
		changed = changed || len(m.Payload) != before || topics.PayloadOf(m.Topic) == topics.PayloadEnvelope
		if topics.Expired(m.Time, m.Expires, now, 0) {
			expired++
			continue
		}
		recs = append(recs, queue.Record{Topic: m.Topic, Payload: m.Payload, Retain: m.Retain, QoS: m.QoS,
			Time: m.Time, Expires: m.Expires, Origin: id})
		keep = append(keep, *m)
	}
	var extra store.Batch
	txn.Put(&extra)
	first, err := h.wal.Append(walStream, recs, &extra)
	txn.Done(err)
	if err != nil {
		h.log.Error("ingress: write-ahead failed; dropping the bridge's connection so it resends", "error", err)
		if h.cfg.Metrics != nil {
			reason := "store-error"
			if errors.Is(err, store.ErrFull) {
				reason = "disk-full"
			}
			h.cfg.Metrics.Refused.WithLabelValues(reason).Inc()
		}
		_ = h.srv.Mochi().DisconnectClient(cl, packets.ErrUnspecifiedError)
		return pk, packets.ErrRejectPacket
	}
	if h.cfg.Metrics != nil {
		if dups > 0 {
			h.cfg.Metrics.Duplicates.WithLabelValues("cloud-ingress").Add(float64(dups))
		}
		if expired > 0 {
			h.cfg.Metrics.Expired.WithLabelValues(string(f.Stream)).Add(float64(expired))
		}
	}
	if len(recs) == 0 && len(skipped) == 0 {
		return pk, packets.CodeSuccessIgnore
	}
	// Deliver here rather than let mochi pass the frame on: mochi sends
	// the PUBACK first and delivers nothing if that write fails (the
	// bridge died), while the frame is already written ahead and its IDs
	// marked seen. Inline publishes reach every subscriber (and the
	// session store) before they return.
	for i := range recs {
		_ = h.srv.Publish(access.NodePrincipal(f.Node), recs[i].Topic, recs[i].Payload, recs[i].Retain, recs[i].QoS)
	}
	out := pk.Payload
	if changed || len(keep) != len(f.Messages) || f.Floor != 0 || len(skipped) != len(f.Skipped) {
		// The kept messages' times are on this clock now (Rebase).
		f.Messages, f.Floor, f.Skipped, f.Sent = keep, 0, skipped, now
		if raw, err := f.Marshal(); err == nil {
			out = raw
		}
	}
	_ = h.srv.Publish(access.SystemPrincipal("ingress"), pk.TopicName, out, false, 1)
	if len(recs) > 0 {
		seqs := make([]uint64, len(recs))
		for i := range seqs {
			seqs[i] = first + uint64(i)
		}
		h.wal.Ack(walStream, seqs...)
	}
	return pk, packets.CodeSuccessIgnore
}

// checkRelayed returns a reason if a message from node may not be
// delivered: access.Authorize must let the node send it in a frame (its own
// subtree, not the bridge's own topics, a valid topic), and an envelope
// must decode (it is then stamped with its ID).
func checkRelayed(node string, m *topics.FrameMessage, id topics.ID, lim topics.Limits) (reason, detail string) {
	if err := access.Authorize(access.RoleCloud, "", access.NodePrincipal(node), access.PathFrame, m.Topic); err != nil {
		return "not-allowed", err.Error()
	}
	switch topics.PayloadOf(m.Topic) {
	case topics.PayloadFrame, topics.PayloadInvalid:
		return "not-allowed", "a relayed message may not go to " + m.Topic
	case topics.PayloadEnvelope:
		env, err := topics.UnmarshalEnvelope(m.Payload, lim)
		if err != nil {
			return topics.ReasonOf(err), err.Error()
		}
		if env.ID == id {
			return "", "" // stamped already (by the ingress, for a consumer)
		}
		env.ID = id
		raw, err := env.Marshal()
		if err != nil {
			return "malformed", err.Error()
		}
		m.Payload = raw
	}
	return "", ""
}
