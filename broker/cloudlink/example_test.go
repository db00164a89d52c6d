package cloudlink_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// The cloud's outbox per node: Send keeps a message for a node until the
// node acknowledges it, online or not; SendNow is for what is worth
// nothing later, and fails while the node is away.
func Example() {
	quiet := slog.New(slog.DiscardHandler)
	s, _ := store.OpenTemp(store.Options{Logger: quiet})
	defer s.Close()

	d, err := cloudlink.NewDownlink(cloudlink.DownlinkConfig{Store: s, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	to := topics.ToNodeAppPrefix("edge-1")
	seq, err := d.Send("edge-1", to+"greeting", []byte("hello"), false, 1, time.Hour)
	fmt.Println(seq, err)
	fmt.Println(d.Online("edge-1"), d.SendNow("edge-1", to+"now", []byte("late is useless"), time.Second))

	recs, _, _ := d.Queue().Read("edge-1", 0, 10, 1<<20)
	fmt.Println(len(recs), recs[0].Topic)
	// Output:
	// 1 <nil>
	// false broker: downlink: the node is offline
	// 1 sedna/v1/to/edge-1/app/greeting
}
