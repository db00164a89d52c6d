package broker

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// slowFanIn publishes pubs x each QoS 1 messages of 256 bytes into one
// subscriber that takes its time over each, and returns how many distinct
// messages the subscriber got.
func slowFanIn(t *testing.T, srv *Server, user string, pubs, each int, work time.Duration) (got int, dups int) {
	t.Helper()
	var mu sync.Mutex
	seen := make(map[uint64]int, pubs*each)
	all := make(chan struct{})
	var count atomic.Int64
	sub := dial(t, srv.URL(), "slow-sub", user, func(o *paho.ClientOptions) {
		o.SetOrderMatters(true)
	})
	tok := sub.Subscribe("fan/in", 1, func(_ paho.Client, m paho.Message) {
		// The slow part: simulated work (a spin: sleep is far coarser).
		for start := time.Now(); time.Since(start) < work; {
		}
		k := binary.BigEndian.Uint64(m.Payload())
		mu.Lock()
		seen[k]++
		mu.Unlock()
		if count.Add(1) == int64(pubs*each) {
			close(all)
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	var wg sync.WaitGroup
	for p := 0; p < pubs; p++ {
		c := dial(t, srv.URL(), fmt.Sprintf("pub-%d", p), user)
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			toks := make(chan paho.Token, 200)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for tk := range toks {
					tk.WaitTimeout(120 * time.Second)
				}
			}()
			for i := 0; i < each; i++ {
				b := make([]byte, 256)
				binary.BigEndian.PutUint64(b, uint64(p)<<32|uint64(i))
				toks <- c.Publish("fan/in", 1, false, b)
			}
			close(toks)
			<-done
		}(p)
	}
	wg.Wait()
	// Every publish is acknowledged; wait until the subscriber has all, or
	// until nothing more arrives for a while (messages were dropped).
	last := int64(-1)
	for {
		select {
		case <-all:
		case <-time.After(time.Second):
			if n := count.Load(); n != last {
				last = n
				continue
			}
		}
		break
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range seen {
		if c > 1 {
			dups += c - 1
		}
	}
	return len(seen), dups
}

// Must-show 6: 4 publishers x 25,000 QoS 1 messages into one slow
// subscriber lose nothing, on the edge broker and on the cloud broker.
// The control run, with the back-pressure hook off, shows the counter sees
// the loss mochi's full client queue causes.
func TestSlowSubscriberLosesNothing(t *testing.T) {
	pubs, each := 4, 25000
	if raceEnabled {
		each = 5000 // the race detector slows the subscriber far more than the brokers
	}
	cases := []struct {
		name string
		cfg  Config
		user string
	}{
		{"edge", Config{Role: RoleEdge, Node: "node-a"}, ""},
		{"cloud", Config{Role: RoleCloud, Credentials: testCredentials(t)}, "app"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startServer(t, c.cfg)
			got, dups := slowFanIn(t, srv, c.user, pubs, each, 10*time.Microsecond)
			t.Logf("%s: %d of %d delivered, %d duplicates", c.name, got, pubs*each, dups)
			if got != pubs*each || dups != 0 {
				t.Fatalf("%d of %d delivered, %d duplicates", got, pubs*each, dups)
			}
		})
	}
	t.Run("control-without-backpressure", func(t *testing.T) {
		srv := startServer(t, Config{Role: RoleEdge, Node: "node-a", SlowSubscribers: SlowSubscriberOptions{Disabled: true}})
		got, _ := slowFanIn(t, srv, "", pubs, each, 50*time.Microsecond)
		t.Logf("control: %d of %d delivered", got, pubs*each)
		if got == pubs*each {
			t.Fatalf("without back-pressure nothing was lost: the test cannot tell")
		}
	})
}
