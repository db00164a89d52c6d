package demo

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// Options are the demo's settings. The command `sedna demo` builds them
// from its flags.
type Options struct {
	// PerPhase is the number of messages each node publishes in each of
	// the three phases; it must be positive.
	PerPhase int
	// Dir keeps the stores. Empty: a temporary directory, removed after.
	Dir string
	// Version is the version the edge agents report.
	Version string
	// Log is the logger of the cloud manager and the agents.
	Log *slog.Logger
}

// demoNode is one edge node of the demo and what its apps published.
type demoNode struct {
	name  string
	dir   string
	link  *netfault.Proxy
	agent *edge.Agent
	acked map[uint64]bool
	mu    sync.Mutex
}

// Run runs the demo and writes what happens, and the count per node, to
// out. It returns an error if a message was lost or duplicated, or if a
// step failed; it gives up waiting for messages when ctx ends.
func Run(ctx context.Context, out io.Writer, o Options) (err error) {
	if o.PerPhase <= 0 {
		return errors.New("--messages must be positive")
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sedna-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	start := time.Now()

	// Users with a random password, for this run only.
	pwb := make([]byte, 12)
	_, _ = rand.Read(pwb)
	pw := hex.EncodeToString(pwb)
	hash, err := access.HashPassword(pw)
	if err != nil {
		return err
	}
	users := []access.User{
		{Username: "edge-a", PasswordHash: hash, Role: access.UserNode},
		{Username: "edge-b", PasswordHash: hash, Role: access.UserNode},
		{Username: "demo", PasswordHash: hash, Role: access.UserOperator}}
	for _, n := range flDemoNodes {
		users = append(users, access.User{Username: n, PasswordHash: hash, Role: access.UserNode})
	}
	creds, err := access.NewCredentials(users...)
	if err != nil {
		return err
	}
	m, err := cloud.Start(cloud.Config{DataDir: filepath.Join(dir, "cloud"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off",
		Data: cloud.DataConfig{Dirs: []string{dir}}}, // the federated example's validation set
		cloud.Options{Paradigms: all.All(), Logger: o.Log, Credentials: creds})
	if err != nil {
		return err
	}
	defer m.Close()
	say("cloud manager: broker %s", m.BrokerURL())

	// The cloud counts every message of every node by ID.
	type count struct{ got, dup int }
	var cmu sync.Mutex
	counts := map[string]map[uint64]int{}
	progress := make(chan struct{}, 1)
	cstore, err := store.OpenBadger(store.Options{Dir: filepath.Join(dir, "counter"), Logger: o.Log})
	if err != nil {
		return err
	}
	defer cstore.Close()
	cons, err := cloudlink.NewConsumer(cloudlink.ConsumerConfig{
		Client: cloudlink.ClientConfig{URL: m.BrokerURL(), ClientID: "demo-counter", Username: "demo", Password: pw},
		Store:  cstore, Logger: o.Log,
		Handler: func(d cloudlink.Delivery, _ *store.Batch) error {
			n, ok := demoCounter(d.Topic, d.Payload)
			if !ok {
				return nil
			}
			cmu.Lock()
			if counts[d.ID.Node] == nil {
				counts[d.ID.Node] = map[uint64]int{}
			}
			counts[d.ID.Node][n]++
			cmu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
			return nil
		}})
	if err != nil {
		return err
	}
	if err := cons.Start(); err != nil {
		return err
	}
	defer cons.Close()

	cloudAddr := m.BrokerURL()[len("tcp://"):]
	nodes := []*demoNode{{name: "edge-a"}, {name: "edge-b"}}
	for _, n := range nodes {
		n.dir = filepath.Join(dir, n.name)
		n.acked = map[uint64]bool{}
		if n.link, err = netfault.New(cloudAddr); err != nil {
			return err
		}
		defer n.link.Close()
		if err := n.start(pw, o.Log, o.Version); err != nil {
			return err
		}
		defer func(n *demoNode) { n.agent.Close() }(n)
		say("%s: broker %s, cloud link through %s", n.name, n.agent.BrokerAddr(), n.link.Addr())
	}

	phase := func(title string, from uint64, during func() error) error {
		say("%s", title)
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes)+1)
		for _, n := range nodes {
			wg.Add(1)
			go func(n *demoNode) {
				defer wg.Done()
				if err := n.publish(ctx, from, uint64(o.PerPhase)); err != nil {
					errs <- fmt.Errorf("%s: %w", n.name, err)
				}
			}(n)
		}
		if during != nil {
			if err := during(); err != nil {
				errs <- err
			}
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	per := uint64(o.PerPhase)
	if err := phase(fmt.Sprintf("phase 1: both nodes online, %d messages each", per), 0, nil); err != nil {
		return err
	}
	nodes[0].link.SetDown(true)
	if err := phase(fmt.Sprintf("phase 2: edge-a's link is down; edge-b's agent restarts; %d messages each", per), per, func() error {
		b := nodes[1]
		b.agent.Close()
		return b.start(pw, o.Log, o.Version)
	}); err != nil {
		return err
	}
	if err := phase(fmt.Sprintf("phase 3: edge-a still offline, queueing; %d messages each", per), 2*per, nil); err != nil {
		return err
	}
	stats := nodes[0].agent.Bridge().Queue().Stats()
	var waiting int64
	for _, s := range stats {
		waiting += s.Messages
	}
	say("edge-a holds %d messages on disk; its link comes back", waiting)
	nodes[0].link.SetDown(false)

	total := 3 * per
	for {
		cmu.Lock()
		done := len(counts["edge-a"]) >= int(total) && len(counts["edge-b"]) >= int(total)
		cmu.Unlock()
		if done {
			break
		}
		select {
		case <-progress:
		case <-ctx.Done():
			say("gave up waiting: %v", ctx.Err())
			goto report
		}
	}
report:
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tpublished\tPUBACKed\treached cloud\tlost\tduplicated\t")
	bad := false
	cmu.Lock()
	for _, n := range nodes {
		n.mu.Lock()
		c := count{}
		lost := 0
		for k := range n.acked {
			switch counts[n.name][k] {
			case 0:
				lost++
			case 1:
				c.got++
			default:
				c.got++
				c.dup += counts[n.name][k] - 1
			}
		}
		if lost > 0 || c.dup > 0 || len(n.acked) != int(total) {
			bad = true
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", n.name, total, len(n.acked), c.got, lost, c.dup)
		n.mu.Unlock()
	}
	cmu.Unlock()
	_ = tw.Flush()
	say("took %v", time.Since(start).Round(time.Millisecond))
	if bad {
		return errors.New("demo: messages were lost or duplicated")
	}
	say("nothing lost, nothing duplicated")
	b := nodes[1]
	b.mu.Lock()
	ag := b.agent
	b.mu.Unlock()
	if err := demoJointInference(ctx, say, m, ag, b.name, pw); err != nil {
		return fmt.Errorf("demo: joint inference: %w", err)
	}
	if err := demoFederated(ctx, say, m, dir, pw, o.Log); err != nil {
		return fmt.Errorf("demo: federated learning: %w", err)
	}
	if err := demoIncremental(ctx, say, m, ag, b.name, dir, pw); err != nil {
		return fmt.Errorf("demo: incremental learning: %w", err)
	}
	if err := demoLifelong(ctx, say, m, ag, b.name, dir, pw); err != nil {
		return fmt.Errorf("demo: lifelong learning: %w", err)
	}
	say("took %v in all", time.Since(start).Round(time.Millisecond))
	return nil
}

// demoCounter reads the number a demo app put in a message: the first 8
// bytes of a sensor reading, the event_id of a KubeEdge event.
func demoCounter(topic string, payload []byte) (uint64, bool) {
	if strings.Contains(topic, "/kubeedge/") {
		var ev struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(payload, &ev) != nil {
			return 0, false
		}
		n, err := strconv.ParseUint(ev.EventID, 10, 64)
		return n, err == nil
	}
	if strings.Contains(topic, "/app/sensors/") && len(payload) >= 8 {
		return binary.BigEndian.Uint64(payload), true
	}
	return 0, false
}

func (n *demoNode) start(pw string, log *slog.Logger, version string) error {
	a, err := edge.Start(edge.Config{Node: n.name, DataDir: n.dir, Broker: edge.BrokerConfig{Listen: "127.0.0.1:0"},
		Cloud:      edge.CloudLink{URL: "tcp://" + n.link.Addr(), Username: n.name, Password: pw},
		ExtraRules: []bridge.Rule{{Filter: "sensors/#", Direction: bridge.Out, RemotePrefix: topics.NodeAppPrefix("{node}")}},
		Metrics:    "off"}, edge.Options{Paradigms: all.All(), Logger: log, Version: version, KeepMemoryLimit: true})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.agent = a
	n.mu.Unlock()
	return nil
}

// publish sends count messages from local apps of the node: even ones as
// sensor readings (plain MQTT), odd ones as KubeEdge device events. A
// message counts as sent once PUBACKed; one refused while the agent
// restarts is sent again, as an MQTT app does.
func (n *demoNode) publish(ctx context.Context, from, count uint64) error {
	var c paho.Client
	connect := func() error {
		n.mu.Lock()
		addr := n.agent.BrokerAddr()
		n.mu.Unlock()
		c = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
			SetClientID(fmt.Sprintf("app-%s-%d", n.name, from)).SetAutoReconnect(false))
		t := c.Connect()
		if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
			return fmt.Errorf("connect to %s: %v", addr, t.Error())
		}
		return nil
	}
	for i := from; i < from+count; {
		if c == nil || !c.IsConnectionOpen() {
			if err := connect(); err != nil {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(50 * time.Millisecond): // the agent is restarting
				}
				continue
			}
		}
		// Up to 64 in flight.
		var toks []paho.Token
		var nums []uint64
		for j := i; j < from+count && len(toks) < 64; j++ {
			b := make([]byte, 64)
			binary.BigEndian.PutUint64(b, j)
			topic := "sensors/temperature"
			if j%2 == 1 {
				topic = topics.KubeEdgeUpload("thermometer-1")
				b = []byte(fmt.Sprintf(`{"event_id":"%d","timestamp":%d,"twin":{"temperature":{"actual":{"value":"21.5"}}}}`, j, time.Now().UnixMilli()))
			}
			toks = append(toks, c.Publish(topic, 1, false, b))
			nums = append(nums, j)
		}
		advance := true
		for k, t := range toks {
			if t.WaitTimeout(10*time.Second) && t.Error() == nil {
				n.mu.Lock()
				n.acked[nums[k]] = true
				n.mu.Unlock()
			} else if advance {
				advance = false
				i = nums[k] // resend from the first one not acknowledged
			}
		}
		if advance {
			i = nums[len(nums)-1] + 1
		} else {
			c.Disconnect(0)
			c = nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if c != nil {
		c.Disconnect(50)
	}
	return nil
}
