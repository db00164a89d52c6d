package queue

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

func openTestStore(t testing.TB, dir string) *store.Badger {
	t.Helper()
	s, err := store.OpenBadger(store.Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func recs(n int, size int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{Topic: "t", Payload: make([]byte, size)}
	}
	return out
}

func TestQueueAppendReadAckAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	q, err := Open(store.Sub(s, "q/"), Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := q.Append("a", []Record{{Topic: "x", Payload: []byte("1")}, {Topic: "y", Payload: []byte("2"), Retain: true, QoS: 1}}, nil)
	if err != nil || first != 1 {
		t.Fatalf("append: %d %v", first, err)
	}
	if _, err := q.Append("b", []Record{{Topic: "z", Payload: []byte("3"), Origin: topics.ID{Node: "n", Stream: "events", Epoch: 9, Seq: 4}}}, nil); err != nil {
		t.Fatal(err)
	}
	got, next, err := q.Read("a", 0, 10, 1<<20)
	if err != nil || len(got) != 2 || next != 3 || got[1].Topic != "y" || !got[1].Retain || got[1].QoS != 1 {
		t.Fatalf("read: %+v next %d %v", got, next, err)
	}
	if n := q.Ack("a", 1); n != 1 {
		t.Fatalf("ack: %d", n)
	}
	if n := q.Ack("a", 1); n != 0 {
		t.Fatalf("second ack counted: %d", n)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, dir)
	defer s.Close()
	q, err = Open(store.Sub(s, "q/"), Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got, _, _ = q.Read("a", 0, 10, 1<<20)
	if len(got) != 1 || got[0].Seq != 2 || string(got[0].Payload) != "2" {
		t.Fatalf("after reopen: %+v", got)
	}
	got, _, _ = q.Read("b", 0, 10, 1<<20)
	if len(got) != 1 || got[0].Origin != (topics.ID{Node: "n", Stream: "events", Epoch: 9, Seq: 4}) {
		t.Fatalf("origin lost: %+v", got)
	}
	// New seqs continue after the old ones, even once all are acked.
	q.Ack("a", 2)
	if first, _ := q.Append("a", recs(1, 1), nil); first != 3 {
		t.Fatalf("seq after reopen = %d, want 3", first)
	}
}

func TestQueueOutOfOrderAcksAndStoreReads(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	// A tiny cache forces reads from the store.
	q, err := Open(store.Sub(s, "q/"), Options{Name: "test", CacheBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Append("s", recs(100, 10), nil); err != nil {
		t.Fatal(err)
	}
	q.Ack("s", 3, 2, 5)
	if done, written := q.Cursor("s"); done != 0 || written != 100 {
		t.Fatalf("cursor %d written %d", done, written)
	}
	q.Ack("s", 1)
	if done, _ := q.Cursor("s"); done != 3 {
		t.Fatalf("cursor %d, want 3", done)
	}
	got, next, err := q.Read("s", 0, 1000, 1<<20)
	if err != nil || len(got) != 96 || got[0].Seq != 4 || got[1].Seq != 6 || next != 101 {
		t.Fatalf("read %d records from %d, next %d, %v", len(got), got[0].Seq, next, err)
	}
	// Byte-bounded reads return at least one record.
	got, next, _ = q.Read("s", 0, 1000, 1)
	if len(got) != 1 || next != 6 { // 5 is done: skipped
		t.Fatalf("bounded read: %d records, next %d", len(got), next)
	}
	q.AckThrough("s", 100)
	if st := q.Stats(); len(st) != 1 || st[0].Messages != 0 || st[0].Bytes != 0 {
		t.Fatalf("stats after acking all: %+v", st)
	}
}

func TestQueueFullPolicies(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	size := int64(recs(1, 100)[0].size())
	refuse, err := Open(store.Sub(s, "r/"), Options{Name: "r", MaxBytes: 10 * size})
	if err != nil {
		t.Fatal(err)
	}
	defer refuse.Close()
	if _, err := refuse.Append(string(topics.StreamBulk), recs(10, 100), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := refuse.Append(string(topics.StreamBulk), recs(1, 100), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("refuse policy: %v", err)
	}
	refuse.Ack(string(topics.StreamBulk), 1)
	if _, err := refuse.Append(string(topics.StreamBulk), recs(1, 100), nil); err != nil {
		t.Fatalf("after an ack there is room: %v", err)
	}

	var dropped []string
	drop, err := Open(store.Sub(s, "d/"), Options{Name: "d", MaxBytes: 10 * size, Policy: DropOldest,
		OnDrop: func(stream string, n int, reason string) { dropped = append(dropped, fmt.Sprint(stream, n, reason)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Close()
	if _, err := drop.Append(string(topics.StreamBulk), recs(5, 100), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := drop.Append(string(topics.StreamControl), recs(5, 100), nil); err != nil {
		t.Fatal(err)
	}
	// Room for 2 more control messages: the oldest bulk ones go first
	// (same stream first, then the least urgent).
	if _, err := drop.Append(string(topics.StreamControl), recs(2, 100), nil); err != nil {
		t.Fatal(err)
	}
	if done, _ := drop.Cursor(string(topics.StreamControl)); done != 2 {
		t.Fatalf("control cursor %d: the oldest control messages of the same stream go first", done)
	}
	if fmt.Sprint(dropped) != "[control2full]" {
		t.Fatalf("drops reported: %v", dropped)
	}
	if _, err := Open(store.Sub(s, "x/"), Options{Policy: "bogus"}); err == nil {
		t.Fatal("unknown policy accepted")
	}

	// A drop report that appends to the same queue (the bridge sends an
	// error event) once deadlocked: the report now comes after the lock.
	var self *Queue
	reports := 0
	self, err = Open(store.Sub(s, "r/"), Options{Name: "r", MaxBytes: 10 * size, Policy: DropOldest,
		OnDrop: func(stream string, n int, reason string) {
			reports++
			// It may find the queue full again; what matters is that it
			// returns.
			_, _ = self.Append(string(topics.StreamEvents), recs(1, 100), nil)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	for range 30 {
		if _, err := self.Append(string(topics.StreamTelemetry), recs(1, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	if reports == 0 {
		t.Fatal("no drop reported")
	}

	// Reports queued with AppendIfRoom (as the bridge does) never evict
	// data: the newest messages that fit stay.
	var keep *Queue
	keep, err = Open(store.Sub(s, "k/"), Options{Name: "k", MaxBytes: 10 * size, Policy: DropOldest,
		OnDrop: func(stream string, n int, reason string) {
			_, _ = keep.AppendIfRoom(string(topics.StreamEvents), recs(1, 100))
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	for range 30 {
		if _, err := keep.Append(string(topics.StreamTelemetry), recs(1, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	if done, _ := keep.Cursor(string(topics.StreamTelemetry)); done != 20 {
		t.Fatalf("%d of 30 telemetry messages dropped, want 20 (the 10 newest fit)", done)
	}
}

func TestQueueConcurrentAppendsKeepSeqsContiguous(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	q, err := Open(store.Sub(s, "q/"), Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := q.Append("s", recs(1, 8), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// A reader running meanwhile must never see a hole below "written".
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			case <-q.Changed():
			}
			got, _, err := q.Read("s", 0, 10000, 1<<30)
			if err != nil {
				t.Error(err)
				return
			}
			for i, r := range got {
				if r.Seq != uint64(i+1) {
					t.Errorf("hole: record %d has seq %d", i, r.Seq)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-readerDone
	if _, written := q.Cursor("s"); written != 1600 {
		t.Fatalf("written %d", written)
	}
}

func TestQueueTrimsDoneRecords(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	q, err := Open(store.Sub(s, "q/"), Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append("s", recs(300, 8), nil); err != nil {
		t.Fatal(err)
	}
	q.AckThrough("s", 300)
	if err := q.Close(); err != nil { // flushes the trim
		t.Fatal(err)
	}
	n := 0
	_ = s.Scan([]byte("q/m/"), nil, func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d done records still stored", n)
	}
	if v, err := s.Get([]byte("q/c/s")); err != nil || len(v) != 8 || v[7] != 44 || v[6] != 1 {
		t.Fatalf("cursor not stored: %v %v", v, err)
	}
}

func TestRecordCodec(t *testing.T) {
	in := Record{Topic: "a/b", Payload: []byte{0, 1, 2}, Retain: true, QoS: 2, Time: time.Unix(5, 6), Expires: time.Unix(7, 0),
		Origin: topics.ID{Node: "n", Stream: "bulk", Epoch: 1, Seq: 2}}
	out, err := decodeRecord(encodeRecord(&in))
	if err != nil || out.Topic != in.Topic || string(out.Payload) != string(in.Payload) || !out.Retain || out.QoS != 2 ||
		!out.Time.Equal(in.Time) || !out.Expires.Equal(in.Expires) || out.Origin != in.Origin {
		t.Fatalf("%+v %v", out, err)
	}
	for _, bad := range [][]byte{nil, {2}, append(encodeRecord(&in)[:18], 0xff)} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decoded %v", bad)
		}
	}
}

// A queue in a store whose transactions are small (an edge node's Badger,
// 1 MiB memtables) writes and trims thousands of tiny records in pieces:
// none is refused for the number of records in one write.
func TestQueueFitsASmallStore(t *testing.T) {
	s, err := store.OpenBadger(store.Options{Dir: t.TempDir(), GCInterval: -1, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := Open(store.Sub(s, "q/"), Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append("s", recs(5000, 1), nil); err != nil {
		t.Fatalf("5,000 tiny records in one append: %v", err)
	}
	q.AckThrough("s", 5000)
	if err := q.Close(); err != nil { // flushes the trim
		t.Fatal(err)
	}
	n := 0
	_ = s.Scan([]byte("q/m/"), nil, func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d done records still stored: the trim failed", n)
	}
}
