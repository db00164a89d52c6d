package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// ReconnectOptions are the options of the reconnect part: how many link
// outages, drawn how, and how long to wait for a bridge after each.
type ReconnectOptions struct {
	// Outages is the number of link outages.
	Outages int
	// Shortest and Longest bound the outages' durations, drawn uniformly
	// between them.
	Shortest, Longest time.Duration
	// Seed seeds the draw of the outages' durations, so that a run can be
	// repeated.
	Seed uint64
	// Deadline is how long after its link returned a bridge is given to
	// connect and deliver before the outage counts as missed.
	Deadline time.Duration
	// MosquittoRestart is the mosquitto bridge's restart_timeout: "1" for
	// a constant 1 s, "BASE CAP" for decorrelated jitter.
	MosquittoRestart string
}

// outageDurations draws n outage durations uniformly from [lo, hi] with a
// seeded generator, to 100 ms, so that a run can be repeated.
func outageDurations(n int, lo, hi time.Duration, seed uint64) []time.Duration {
	r := rand.New(rand.NewPCG(seed, 0x5ed7a))
	out := make([]time.Duration, n)
	for i := range out {
		d := lo
		if hi > lo {
			d += time.Duration(r.Int64N(int64(hi-lo) + 1))
		}
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}

// rcSystem is one bridge under test: its edge broker (a local app
// publishes there), the fault-injecting link between its bridge and its
// cloud broker, and what an observer on the cloud broker saw.
type rcSystem struct {
	name string
	link *netfault.Proxy
	app  paho.Client // a local app on the edge broker

	up   chan time.Time // the bridge's first publish of a new connection reached the cloud
	down chan time.Time // the cloud saw the bridge's connection end (its will)
	got  chan rcDelivery

	connected, delivered []time.Duration
	missed               int
}

type rcDelivery struct {
	n  uint64
	at time.Time
}

func newRCSystem(name string) *rcSystem {
	return &rcSystem{name: name, up: make(chan time.Time, 64), down: make(chan time.Time, 64), got: make(chan rcDelivery, 64)}
}

// note sends without blocking: a handler must not wait, and a full channel
// only means events nobody is waiting for.
func note[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func drain[T any](ch chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// waitFor returns the first value of ch accepted by ok, or false at the
// deadline or when ctx ends.
func waitFor[T any](ctx context.Context, ch chan T, deadline time.Duration, ok func(T) bool) (T, bool) {
	t := time.NewTimer(deadline)
	defer t.Stop()
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v, true
			}
		case <-t.C:
			var zero T
			return zero, false
		case <-ctx.Done():
			var zero T
			return zero, false
		}
	}
}

// reconnect measures how soon a bridge is back after its link returns:
// a 'sedna edge' process bridged to an embedded cloud broker, and a
// mosquitto bridged to another mosquitto, each through a netfault proxy
// that cuts the link for a seeded spread of durations, both at once. For
// each outage: from the link's return to the bridge's first publish of its
// new connection seen in the cloud (sedna: its online status; mosquitto:
// its bridge notification), and to a message queued at the edge during the
// outage delivered in the cloud.
func (b *bencher) reconnect(ctx context.Context) error {
	o := b.o.Reconnect
	if o.Outages <= 0 || o.Shortest <= 0 || o.Longest < o.Shortest {
		return errors.New("reconnect: want --outages > 0 and 0 < --outage-min <= --outage-max")
	}
	durs := outageDurations(o.Outages, o.Shortest, o.Longest, o.Seed)
	var total time.Duration
	for _, d := range durs {
		total += d
	}
	fmt.Fprintf(b.out, "\n## reconnect: from the link's return to the bridge connected and the first queued message delivered\n\n")
	fmt.Fprintf(b.out, "%d outages drawn from %v..%v (seed %d), %v of outage in all: %s\n\n",
		o.Outages, o.Shortest, o.Longest, o.Seed, total, joinDurations(durs))

	// sedna: a 'sedna edge' process, its bridge through a proxy to the
	// embedded cloud broker of a cloud manager in this process.
	pw, _, creds, err := benchUsers("reader")
	if err != nil {
		return err
	}
	m, err := cloud.Start(cloud.Config{DataDir: b.subdir("cloud-reconnect"), WriteMode: store.Process,
		Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off"}, cloud.Options{Paradigms: all.All(), Logger: b.o.Log, Credentials: creds})
	if err != nil {
		return err
	}
	defer m.Close()
	sedna := newRCSystem("sedna")
	if sedna.link, err = netfault.New(strings.TrimPrefix(m.BrokerURL(), "tcp://")); err != nil {
		return err
	}
	defer sedna.link.Close()
	queued := topics.NodeApp("bench", "sensors/reconnect")
	watchS, err := benchClient(m.BrokerURL(), "rc-watch", "reader", pw)
	if err != nil {
		return err
	}
	defer watchS.Disconnect(0)
	var smu sync.Mutex
	var lastSession uint64
	if err := subscribed(watchS, map[string]paho.MessageHandler{
		topics.NodeStatusTopic("bench"): func(_ paho.Client, msg paho.Message) {
			at := time.Now()
			env, err := topics.UnmarshalEnvelope(msg.Payload(), topics.DefaultLimits)
			if err != nil {
				return
			}
			var st topics.NodeStatus
			if env.DecodeBody(&st) != nil {
				return
			}
			smu.Lock()
			defer smu.Unlock()
			switch {
			case st.State == topics.NodeOnline && st.Session > lastSession:
				lastSession = st.Session
				note(sedna.up, at)
			case st.State == topics.NodeOffline:
				note(sedna.down, at)
			}
		},
		queued: rcCounter(sedna),
	}); err != nil {
		return err
	}
	e, err := b.startEdge(ctx, "process", "tcp://"+sedna.link.Addr(), "--password", pw)
	if err != nil {
		return err
	}
	defer e.stop()
	if sedna.app, err = benchClient("tcp://"+e.addr, "rc-app", "", ""); err != nil {
		return err
	}
	defer sedna.app.Disconnect(0)
	systems := []*rcSystem{sedna}

	// mosquitto: a bridge through a proxy to a second mosquitto.
	if b.mosq != "" {
		cloudAddr, stopCloud, err := b.startMosquitto("")
		if err != nil {
			return err
		}
		defer stopCloud()
		mq := newRCSystem("mosquitto (restart_timeout " + o.MosquittoRestart + ")")
		if mq.link, err = netfault.New(cloudAddr); err != nil {
			return err
		}
		defer mq.link.Close()
		watchM, err := benchClient("tcp://"+cloudAddr, "rc-watch", "", "")
		if err != nil {
			return err
		}
		defer watchM.Disconnect(0)
		if err := subscribed(watchM, map[string]paho.MessageHandler{
			"rc/bridge-state": func(_ paho.Client, msg paho.Message) {
				switch string(msg.Payload()) {
				case "1":
					note(mq.up, time.Now())
				case "0":
					note(mq.down, time.Now())
				}
			},
			queued: rcCounter(mq),
		}); err != nil {
			return err
		}
		conf := fmt.Sprintf("connection cloud\naddress %s\ntopic sensors/# out 1 \"\" %s\ncleansession true\nlocal_cleansession false\n"+
			"restart_timeout %s\nnotifications true\nnotification_topic rc/bridge-state\n",
			mq.link.Addr(), topics.NodeAppPrefix("bench"), o.MosquittoRestart)
		edgeAddr, stopEdge, err := b.startMosquitto(conf)
		if err != nil {
			return err
		}
		defer stopEdge()
		if mq.app, err = benchClient("tcp://"+edgeAddr, "rc-app", "", ""); err != nil {
			return err
		}
		defer mq.app.Disconnect(0)
		systems = append(systems, mq)
	}
	for _, s := range systems {
		if _, ok := waitFor(ctx, s.up, 30*time.Second, func(time.Time) bool { return true }); !ok {
			return fmt.Errorf("reconnect: %s's bridge did not connect at start", s.name)
		}
	}

	// One row per outage, printed as it ends (a full run takes minutes).
	head := "| outage |"
	for _, s := range systems {
		head += fmt.Sprintf(" %s: connected / delivered |", s.name)
	}
	fmt.Fprintln(b.out, head)
	fmt.Fprintln(b.out, "|---|"+strings.Repeat("---|", len(systems)))
	for i, d := range durs {
		n := uint64(i + 1)
		for _, s := range systems {
			drain(s.up)
			drain(s.down)
			drain(s.got)
		}
		cut := time.Now()
		for _, s := range systems {
			s.link.SetDown(true)
		}
		for _, s := range systems {
			if _, ok := waitFor(ctx, s.down, 10*time.Second, func(time.Time) bool { return true }); !ok {
				return fmt.Errorf("reconnect: the cloud did not see %s's bridge go", s.name)
			}
		}
		// A message queued at the edge while the link is down.
		payload := binary.BigEndian.AppendUint64(nil, n)
		for _, s := range systems {
			if t := s.app.Publish("sensors/reconnect", 1, false, payload); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				return fmt.Errorf("reconnect: %s: publish during the outage: %v", s.name, t.Error())
			}
		}
		select {
		case <-time.After(time.Until(cut.Add(d))): // the outage's length is the experiment's variable
		case <-ctx.Done():
			return ctx.Err()
		}
		back := make([]time.Time, len(systems))
		for j, s := range systems {
			back[j] = time.Now()
			s.link.SetDown(false)
		}
		row := fmt.Sprintf("| %v |", d)
		for j, s := range systems {
			up, ok := waitFor(ctx, s.up, o.Deadline, func(t time.Time) bool { return t.After(back[j]) })
			dl, ok2 := waitFor(ctx, s.got, o.Deadline, func(g rcDelivery) bool { return g.n == n })
			if !ok || !ok2 {
				s.missed++
				row += fmt.Sprintf(" connected: %v, delivered: %v, within %v |", ok, ok2, o.Deadline)
				continue
			}
			s.connected = append(s.connected, up.Sub(back[j]))
			s.delivered = append(s.delivered, dl.at.Sub(back[j]))
			row += fmt.Sprintf(" %v / %v |", up.Sub(back[j]).Round(time.Millisecond), dl.at.Sub(back[j]).Round(time.Millisecond))
		}
		fmt.Fprintln(b.out, row)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintln(b.out)
	tw := tabwriter.NewWriter(b.out, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| system\t outages\t connected p50\t p99\t max\t delivered p50\t p99\t max\t missed\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, s := range systems {
		c, dl := summarize(s.connected), summarize(s.delivered)
		fmt.Fprintf(tw, "| %s\t %d\t %v\t %v\t %v\t %v\t %v\t %v\t %d\t\n", s.name, len(durs), c[0], c[1], c[2], dl[0], dl[1], dl[2], s.missed)
	}
	return tw.Flush()
}

// rcCounter records the arrival of each queued message by its number.
func rcCounter(s *rcSystem) paho.MessageHandler {
	return func(_ paho.Client, msg paho.Message) {
		if p := msg.Payload(); len(p) == 8 {
			note(s.got, rcDelivery{n: binary.BigEndian.Uint64(p), at: time.Now()})
		}
	}
}

// subscribed subscribes c to each filter at QoS 1 and waits for the SUBACK.
func subscribed(c paho.Client, subs map[string]paho.MessageHandler) error {
	for filter, h := range subs {
		if t := c.Subscribe(filter, 1, h); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			return fmt.Errorf("subscribe %s: %v", filter, t.Error())
		}
	}
	return nil
}

// summarize returns p50, p99 (nearest rank) and max, to the millisecond.
func summarize(ds []time.Duration) [3]time.Duration {
	if len(ds) == 0 {
		return [3]time.Duration{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(i, 0)].Round(time.Millisecond)
	}
	return [3]time.Duration{rank(0.50), rank(0.99), s[len(s)-1].Round(time.Millisecond)}
}

func joinDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, " ")
}
