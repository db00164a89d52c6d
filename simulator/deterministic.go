package simulator

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/sedna-go/sedna/topics"
)

// Deterministic mode: a discrete-event model of the fleet with a fake
// clock, one event queue and one seeded random source, so that a scenario of
// hundreds of nodes runs as fast as the machine allows and the same seed
// gives a byte-identical report. It models the backbone's promises, not its
// code: a node keeps acknowledged messages in a bounded queue on disk (which
// a kill does not lose), sends them over its link while it is up, and
// forgets them once the cloud acknowledged them; the cloud drops message IDs
// it has seen; a link that drops loses what was in flight, which is sent
// again after the reconnection backoff. Real mode runs the code itself.

type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type events []*event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(*event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

type desMsg struct {
	dev  *desDevice
	seq  int64
	size int
	sent time.Duration // when the device published it
	// stamp is the node's clock when it took the message: the queue's
	// maxAge is judged by it, as the agent does.
	stamp time.Time
}

type desDevice struct {
	name   string
	kind   string
	qos    int
	rate   float64
	size   int
	next   int64
	sent   []bool
	acked  []bool
	seen   []int32
	lat    []time.Duration
	offset time.Duration
	// twin devices: the answer to report seq was sent, received, after.
	deltaSent []bool
	deltaSeen []int32
	rtt       []time.Duration
}

// desParcel is a message kept for the other end of a node's link until
// it arrived, sent again after each reconnection: in the cloud's outbox
// for the node (a twin delta, a spec, a federated global), or in the
// node's durable uplink (a worker's report, a federated update). It
// survives a kill of the node.
type desParcel struct {
	deliver func() // at the other end
	epoch   int    // of the connection it was last sent on; -1: not sent
	// expires, if set, is when it is dropped unsent (the fake clock).
	expires time.Duration
}

type desNode struct {
	i         int
	name      string
	up        bool // the agent runs
	linkDown  bool
	stalled   bool
	connected bool
	latency   time.Duration
	bandwidth int // bytes/s, 0: unlimited
	queue     []*desMsg
	bytes     int64
	inflight  int // messages sent, not yet acknowledged
	epoch     int // bumps on every disconnection: stale deliveries are lost
	busyUntil time.Duration
	devices   []*desDevice
	backlog   int64
	diskFull  bool          // the queue holds what it holds; nothing new fits
	clock     time.Duration // the node's clock, off real (fake) time
	dropped   int64         // device connections dropped to refuse a publish
	outbox    []*desParcel  // what the cloud keeps for the node
	uplink    []*desParcel  // the node's reports, kept for the cloud
	// life counts the agent's starts: what a killed agent had scheduled
	// (a training) is dropped.
	life    int
	session uint64 // of the node's connections, as its status says
	jobs    *desNodeJobs
}

type desRun struct {
	s      *Scenario
	now    time.Duration
	q      events
	seq    uint64
	rng    *rand.Rand
	nodes  []*desNode
	seen   map[string]bool // cloud dedup: node/device/seq
	faults []string
	jobs   *desJobs // nil: the scenario has none
}

const desWindow = 64

func (r *desRun) at(t time.Duration, fn func()) {
	r.seq++
	heap.Push(&r.q, &event{at: t, seq: r.seq, fn: fn})
}

func runDeterministic(s *Scenario) (*Report, error) {
	r := &desRun{s: s, rng: rand.New(rand.NewPCG(s.Seed, s.Seed^0x5eed)), seen: map[string]bool{}}
	limit := int(time.Duration(s.Duration).Seconds()*maxRate(s)) + 16
	for i := range s.Nodes.Count {
		n := &desNode{i: i, name: s.NodeName(i), up: true}
		for _, d := range s.Devices {
			for k := range d.PerNode {
				dev := &desDevice{name: fmt.Sprintf("%s-%d", d.Kind, k), kind: d.Kind, qos: *d.QoS, rate: d.Rate, size: d.Size,
					sent: make([]bool, limit), acked: make([]bool, limit), seen: make([]int32, limit), lat: make([]time.Duration, limit)}
				if d.Kind == "twin" {
					dev.deltaSent, dev.deltaSeen, dev.rtt = make([]bool, limit), make([]int32, limit), make([]time.Duration, limit)
				}
				dev.offset = time.Duration(r.rng.Int64N(int64(time.Second / time.Duration(max(1, int(d.Rate))))))
				n.devices = append(n.devices, dev)
			}
		}
		r.nodes = append(r.nodes, n)
		r.at(time.Duration(r.rng.Int64N(int64(10*time.Millisecond))), func() { r.connect(n) })
		n.jobs = &desNodeJobs{specs: map[string]heldSpec{}, trained: map[string]desRound{}, training: map[string]desRound{}}
		for _, d := range n.devices {
			r.at(d.offset, func() { r.publish(n, d) })
		}
	}
	if len(s.Jobs) > 0 {
		jobs, err := newDesJobs(r)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		defer jobs.close()
		r.jobs = jobs
		r.at(desApplyAt, jobs.apply)
	}
	r.schedule()
	end := time.Duration(s.Duration)
	drainEnd := end + time.Duration(s.Drain)
	r.at(end, func() {
		for _, n := range r.nodes { // every fault that was meant to end does
			if !n.up {
				r.fault("%s started again to drain", n.name)
				r.restart(n)
			}
			n.linkDown, n.stalled = false, false
			r.connect(n)
		}
	})
	for r.q.Len() > 0 {
		e := heap.Pop(&r.q).(*event)
		if e.at > drainEnd {
			break
		}
		r.now = e.at
		e.fn()
		if r.now >= end && r.drained() && (r.jobs == nil || r.jobs.ended()) {
			break
		}
	}
	rep := &Report{Scenario: s.Name, Mode: s.Mode, Seed: s.Seed, Elapsed: r.now}
	var lat []time.Duration
	for _, n := range r.nodes {
		nr := NodeReport{Node: n.name, BacklogPeak: n.backlog, Dropped: n.dropped}
		for _, d := range n.devices {
			rep.tally(&nr, d.kind, d.qos, d.next, func(seq int64) outcome {
				o := outcome{sent: d.sent[seq], acked: d.acked[seq], seen: d.seen[seq], lat: d.lat[seq]}
				if d.deltaSeen != nil {
					o.deltaSent, o.deltaSeen, o.rtt = d.deltaSent[seq], d.deltaSeen[seq], d.rtt[seq]
				}
				return o
			}, &lat)
		}
		rep.Nodes = append(rep.Nodes, nr)
	}
	rep.total()
	rep.latencies(lat)
	rep.Faults = r.faults
	if r.jobs != nil {
		rep.Jobs = r.jobs.report()
	}
	rep.check(s.Expect)
	return rep, nil
}

func (r *desRun) fault(format string, a ...any) {
	r.faults = append(r.faults, fmt.Sprintf("%6.2fs ", r.now.Seconds())+fmt.Sprintf(format, a...))
}

func (r *desRun) drained() bool {
	for _, n := range r.nodes {
		if len(n.queue) > 0 {
			return false
		}
	}
	return true
}

// publish is a device's next message, and schedules the one after.
func (r *desRun) publish(n *desNode, d *desDevice) {
	if r.now >= time.Duration(r.s.Duration) {
		return
	}
	r.at(r.now+time.Duration(float64(time.Second)/d.rate), func() { r.publish(n, d) })
	if !n.up || d.next >= int64(len(d.sent)) {
		return // the node is down: the device waits
	}
	seq := d.next
	d.next++
	d.sent[seq] = true
	m := &desMsg{dev: d, seq: seq, size: d.size, sent: r.now, stamp: r.clockOf(n)}
	if d.qos == 0 {
		if n.connected {
			r.transmit(n, m, false)
		}
		return
	}
	q := r.s.Nodes.Queue
	if n.diskFull {
		q.MaxBytes = max(1, n.bytes)
	}
	if q.MaxBytes > 0 && n.bytes+int64(m.size) > q.MaxBytes {
		if q.Policy != "drop-oldest" {
			n.dropped++ // refused: no PUBACK, and the connection dropped
			return
		}
		for len(n.queue) > 0 && n.bytes+int64(m.size) > q.MaxBytes {
			n.bytes -= int64(n.queue[0].size)
			n.queue = n.queue[1:]
			if n.inflight > 0 {
				n.inflight--
			}
		}
	}
	n.queue = append(n.queue, m)
	n.bytes += int64(m.size)
	d.acked[seq] = true
	n.backlog = max(n.backlog, int64(len(n.queue)))
	r.pump(n)
}

// connect brings a node's bridge up when its link allows, after a backoff.
func (r *desRun) connect(n *desNode) {
	if n.connected || !n.up || n.linkDown {
		return
	}
	backoff := 50*time.Millisecond + time.Duration(r.rng.Int64N(int64(50*time.Millisecond)))
	epoch := n.epoch
	r.at(r.now+backoff+2*n.latency, func() {
		if n.epoch != epoch || !n.up || n.linkDown || n.connected {
			return
		}
		n.connected = true
		n.inflight = 0 // what was in flight is sent again
		n.session++
		if r.jobs != nil {
			r.jobs.online(n, true)
		}
		r.pump(n)
	})
}

func (r *desRun) disconnect(n *desNode) {
	if n.connected {
		n.connected = false
		n.epoch++
		n.inflight = 0
		if r.jobs != nil {
			r.jobs.online(n, false)
		}
	}
}

// desEpoch is the fake clock's real time at the start of a run.
var desEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clockOf is node n's wall clock.
func (r *desRun) clockOf(n *desNode) time.Time { return desEpoch.Add(r.now + n.clock) }

// pump sends queued messages up to the window; one older than the queue's
// maxAge by the node's clock is dropped instead (topics.Expired's rule: a
// stamp before the clock floor never expires).
func (r *desRun) pump(n *desNode) {
	if len(n.outbox) > 0 {
		r.carry(n, &n.outbox)
	}
	if len(n.uplink) > 0 {
		r.carry(n, &n.uplink)
	}
	maxAge := time.Duration(r.s.Nodes.Queue.MaxAge)
	for n.connected && !n.stalled && n.inflight < desWindow && n.inflight < len(n.queue) {
		m := n.queue[n.inflight]
		if topics.Expired(m.stamp, time.Time{}, r.clockOf(n), maxAge) {
			n.queue = append(n.queue[:n.inflight], n.queue[n.inflight+1:]...)
			n.bytes -= int64(m.size)
			continue
		}
		n.inflight++
		r.transmit(n, m, true)
	}
}

// carry sends a list of parcels (the node's outbox or uplink) over its
// link while it is connected: a parcel arrives after the link's latency
// unless the connection drops first, when it waits for the next one; one
// past its expiry is dropped unsent.
func (r *desRun) carry(n *desNode, list *[]*desParcel) {
	if !n.connected || n.stalled {
		return
	}
	kept := (*list)[:0]
	for _, p := range *list {
		if p.expires > 0 && r.now >= p.expires && p.epoch != n.epoch {
			continue
		}
		kept = append(kept, p)
	}
	clear((*list)[len(kept):])
	*list = kept
	for _, p := range *list {
		if p.epoch == n.epoch {
			continue // in flight on this connection
		}
		p.epoch = n.epoch
		epoch := n.epoch
		r.at(r.now+n.latency+100*time.Microsecond, func() {
			if n.epoch != epoch || !n.up {
				return // lost with its connection: sent again on the next
			}
			for i, x := range *list {
				if x == p {
					*list = append((*list)[:i], (*list)[i+1:]...)
					p.deliver()
					break
				}
			}
		})
	}
}

// send queues a parcel on a node's outbox or uplink and sends it if the
// link is up.
func (r *desRun) send(n *desNode, list *[]*desParcel, p *desParcel) {
	p.epoch = -1
	*list = append(*list, p)
	r.carry(n, list)
}

// transmit carries a message over the link; a durable one is acknowledged
// back and leaves the queue.
func (r *desRun) transmit(n *desNode, m *desMsg, durable bool) {
	ser := time.Duration(0)
	if n.bandwidth > 0 {
		ser = time.Duration(float64(m.size) / float64(n.bandwidth) * float64(time.Second))
	}
	start := max(r.now, n.busyUntil)
	n.busyUntil = start + ser
	arrive := n.busyUntil + n.latency + 100*time.Microsecond
	epoch := n.epoch
	r.at(arrive, func() {
		if n.epoch != epoch {
			return // the connection dropped: lost in flight
		}
		key := n.name + "/" + m.dev.name + "/" + strconv.FormatInt(m.seq, 10)
		if !r.seen[key] {
			r.seen[key] = true
			m.dev.seen[m.seq]++
			m.dev.lat[m.seq] = r.now - m.sent
			if dev := m.dev; dev.deltaSeen != nil { // the cloud answers a twin report
				dev.deltaSent[m.seq] = true
				r.send(n, &n.outbox, &desParcel{deliver: func() {
					dev.deltaSeen[m.seq]++
					dev.rtt[m.seq] = r.now - m.sent
				}})
			}
		}
		if !durable {
			return
		}
		r.at(r.now+n.latency, func() {
			if n.epoch != epoch {
				return // the ack was lost: the message goes again
			}
			for i, q := range n.queue {
				if q == m {
					n.queue = append(n.queue[:i], n.queue[i+1:]...)
					n.bytes -= int64(m.size)
					if i < n.inflight {
						n.inflight--
					}
					break
				}
			}
			r.pump(n)
		})
	})
}

func (r *desRun) restart(n *desNode) {
	n.up = true
	n.life++
	if r.jobs != nil {
		r.jobs.restarted(n)
	}
	r.connect(n)
}

// schedule arms the fault timeline on the fake clock.
func (r *desRun) schedule() {
	for _, st := range r.s.Timeline() {
		r.at(st.At, func() { r.apply(st.Fault, st.Nodes, st.On) })
	}
}

func (r *desRun) apply(f Fault, idx []int, on bool) {
	r.fault("%s", r.s.Describe(f, idx, on))
	for _, k := range idx {
		n := r.nodes[k]
		switch f.Action {
		case "linkDown":
			n.linkDown = on
			if on {
				r.disconnect(n)
			} else {
				r.connect(n)
			}
		case "linkUp":
			n.linkDown = false
			r.connect(n)
		case "latency":
			n.latency, _ = time.ParseDuration(f.Value)
		case "bandwidth":
			n.bandwidth, _ = strconv.Atoi(f.Value)
		case "reset":
			r.disconnect(n)
			r.connect(n)
		case "stall":
			n.stalled = on
			if !on {
				r.pump(n)
			}
		case "unstall":
			n.stalled = false
			r.pump(n)
		case "kill":
			n.up = false
			n.life++
			r.disconnect(n) // the queue is on disk: it survives
		case "restart":
			n.up = false
			n.life++
			r.disconnect(n)
			r.restart(n)
		case "clockSet", "clockSkew", "clockJump":
			n.clock = f.ClockOffset(n.clock, r.clockOf(n).Add(-n.clock))
		case "diskFull":
			n.diskFull = true
		case "diskFree":
			n.diskFull = false
		}
	}
}
