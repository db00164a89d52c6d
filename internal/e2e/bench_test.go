package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sedna-go/sedna/topics"
)

// BenchmarkBridge measures edge->cloud QoS 1 throughput in one process
// (for profiles; `sedna bench` is the side-by-side measurement):
//
//	go test ./internal/e2e -run '^$' -bench Bridge -cpuprofile cpu.out
func BenchmarkBridge(b *testing.B) {
	for _, pubs := range []int{1, 4} {
		b.Run(fmt.Sprintf("publishers=%d", pubs), func(b *testing.B) {
			dir := b.TempDir()
			cl := startCloud(b, filepath.Join(dir, "cloud"), "")
			defer cl.Close()
			ag := startEdge(b, "edge-1", filepath.Join(dir, "edge"), cl.BrokerURL())
			defer ag.Close()
			got := make(chan struct{}, 1)
			var n int
			sub := client(b, cl.BrokerURL(), "sub", "app", true)
			want := b.N
			sub.Subscribe(topics.NodeAppPrefix("edge-1")+"sensors/#", 1, func(paho.Client, paho.Message) {
				n++
				if n == want {
					got <- struct{}{}
				}
			}).Wait()
			pubc := make([]paho.Client, pubs)
			for i := range pubc {
				pubc[i] = client(b, "tcp://"+ag.BrokerAddr(), fmt.Sprintf("pub-%d", i), "", true)
			}
			b.ResetTimer()
			done := make(chan struct{})
			for i := range pubc {
				go func(i int) {
					publishAll(b, pubc[i], "sensors/t", 1, 0, uint64(b.N/pubs+boolInt(i < b.N%pubs)), 64)
					done <- struct{}{}
				}(i)
			}
			for range pubc {
				<-done
			}
			select {
			case <-got:
			case <-time.After(60 * time.Second):
				b.Fatalf("received %d of %d", n, want)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
