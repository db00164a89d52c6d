package queue_test

import (
	"fmt"
	"log/slog"

	"github.com/sedna-go/sedna/broker/queue"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// A queue in a view of the process's store: appended records are on disk
// when Append returns, read in order, and gone once acknowledged; a
// reopened queue resumes with what was not.
func Example() {
	s, _ := store.OpenTemp(store.Options{Logger: slog.New(slog.DiscardHandler)})
	defer s.Close()

	q, _ := queue.Open(store.Sub(s, "uplink/"), queue.Options{Name: "uplink", MaxBytes: 1 << 20})
	first, _ := q.Append("events", []queue.Record{
		{Topic: topics.NodeEvents("edge-1", "a"), Payload: []byte("1"), QoS: 1},
		{Topic: topics.NodeEvents("edge-1", "b"), Payload: []byte("2"), QoS: 1},
	}, nil)
	recs, _, _ := q.Read("events", first, 10, 1<<20)
	for _, r := range recs {
		fmt.Println(r.Seq, r.Topic)
	}
	q.Ack("events", recs[0].Seq)
	_ = q.Close()

	q, _ = queue.Open(store.Sub(s, "uplink/"), queue.Options{Name: "uplink"})
	defer q.Close()
	recs, _, _ = q.Read("events", 0, 10, 1<<20)
	fmt.Println(len(recs), "waiting after a reopen:", recs[0].Seq)
	// Output:
	// 1 sedna/v1/node/edge-1/events/a
	// 2 sedna/v1/node/edge-1/events/b
	// 1 waiting after a reopen: 2
}

// A receiver's window of one sender: deliveries may come out of order, and
// a repeat is dropped whenever it comes.
func ExampleDedup() {
	s, _ := store.OpenTemp(store.Options{Logger: slog.New(slog.DiscardHandler)})
	defer s.Close()

	d := queue.NewDedup(s, "dd/")
	txn, _ := d.Lock("edge-1", topics.StreamEvents, 1)
	for _, seq := range []uint64{1, 3, 2, 3} {
		fmt.Println(seq, txn.Add(seq))
	}
	var b store.Batch
	txn.Put(&b) // written with the messages it let through
	txn.Done(s.Write(&b))
	// Output:
	// 1 true
	// 3 true
	// 2 true
	// 3 false
}
