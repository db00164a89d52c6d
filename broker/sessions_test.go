package broker

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/store"
)

// A persistent subscriber that reconnects again and again while messages
// flow loses none: mochi hands messages published during a session
// takeover to the old session and then drops them; the session hook gives
// them to the new one. The last connection reconnects by itself if the
// broker drops it (one that falls too far behind is disconnected as slow,
// and its session keeps the rest for it), as a persistent client does.
func TestPersistentSubscriberReconnectingLosesNothing(t *testing.T) {
	t.Run("with-session-store", func(t *testing.T) {
		s := openTestStore(t, t.TempDir())
		defer s.Close()
		takeoverFlow(t, startServer(t, Config{Role: access.RoleEdge, Node: "node-a", Store: s}))
	})
	t.Run("in-memory", func(t *testing.T) {
		takeoverFlow(t, startServer(t, Config{Role: access.RoleEdge, Node: "node-a"}))
	})
}

func takeoverFlow(t *testing.T, srv *Server) {
	n := uint64(20000)
	if raceEnabled {
		n = 5000
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	all := make(chan struct{})
	handler := func(_ paho.Client, m paho.Message) {
		k := binary.BigEndian.Uint64(m.Payload())
		mu.Lock()
		defer mu.Unlock()
		if !seen[k] {
			seen[k] = true
			if uint64(len(seen)) == n {
				close(all)
			}
		}
	}
	sub := func(reconnect bool) paho.Client {
		c, err := tryDial(srv.URL(), "persistent-sub", "", func(o *paho.ClientOptions) {
			o.SetCleanSession(false)
			o.SetDefaultPublishHandler(handler)
			o.SetAutoReconnect(reconnect).SetMaxReconnectInterval(100 * time.Millisecond)
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := sub(false)
	if tok := c.Subscribe("flow", 1, handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := dial(t, srv.URL(), "pub", "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(0); i < n; i++ {
			b := make([]byte, 64)
			binary.BigEndian.PutUint64(b, i)
			pub.Publish("flow", 1, false, b)
		}
	}()
	// Take the session over with new connections while the flow runs.
	for round := 0; ; round++ {
		select {
		case <-done:
		default:
			next := sub(false)
			c.Disconnect(0)
			c = next
			continue
		}
		break
	}
	last := sub(true)
	c.Disconnect(0)
	c = last
	defer c.Disconnect(0)
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		var missing []uint64
		for i := uint64(0); i < n && len(missing) < 20; i++ {
			if !seen[i] {
				missing = append(missing, i)
			}
		}
		t.Fatalf("%d of %d delivered; first missing %v", len(seen), n, fmt.Sprint(missing))
	}
}

// The hook's writes fit a store whose transactions are small (an edge
// node's Badger, 1 MiB memtables): a burst of small session records far
// larger than one transaction, then the removal of a session with all of
// them, are written in pieces and none is refused as too large.
func TestSessionWritesFitASmallStore(t *testing.T) {
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := &SessionHook{s: st}
	var ops []sessionOp
	for i := range 4000 { // 4,000 records of about 100 bytes: 3 or more transactions' worth
		ops = append(ops, sessionOp{key: fmt.Appendf(nil, "sess/c1/%06d", i), value: make([]byte, 80)})
	}
	if err := h.apply(ops); err != nil {
		t.Fatalf("the burst: %v", err)
	}
	n := 0
	if err := st.Scan([]byte("sess/c1/"), nil, func(_, _ []byte) error { n++; return nil }); err != nil || n != 4000 {
		t.Fatalf("%d records kept (%v), want 4000", n, err)
	}
	if err := h.apply([]sessionOp{{key: []byte("sess/c1/"), scan: true}}); err != nil {
		t.Fatalf("the removal: %v", err)
	}
	n = 0
	if err := st.Scan([]byte("sess/c1/"), nil, func(_, _ []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("%d records left (%v)", n, err)
	}
}
