package queue

import (
	"math/rand/v2"
	"testing"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

func TestWindowShuffledDeliveries(t *testing.T) {
	// Every seq once, shuffled, then everything again: no late lower seq
	// is taken for a duplicate, every repeat is.
	for _, seed := range []uint64{1, 2, 3} {
		r := rand.New(rand.NewPCG(seed, seed))
		seqs := r.Perm(5000)
		var w Window
		for _, s := range seqs {
			if !w.Add(uint64(s + 1)) {
				t.Fatalf("seed %d: first delivery of %d taken for a duplicate", seed, s+1)
			}
		}
		if w.Watermark != 5000 || len(w.Above) != 0 {
			t.Fatalf("seed %d: watermark %d, %d above", seed, w.Watermark, len(w.Above))
		}
		for _, s := range r.Perm(5000) {
			if w.Add(uint64(s + 1)) {
				t.Fatalf("seed %d: repeat of %d accepted", seed, s+1)
			}
		}
	}
}

func TestWindowRaiseAndCodec(t *testing.T) {
	var w Window
	for _, s := range []uint64{1, 2, 5, 9} {
		w.Add(s)
	}
	if w.Watermark != 2 || len(w.Above) != 2 || !w.Seen(5) || w.Seen(3) {
		t.Fatalf("%+v", w)
	}
	w2, err := unmarshalWindow(w.marshal())
	if err != nil || w2.Watermark != 2 || len(w2.Above) != 2 || w2.Above[1] != 9 {
		t.Fatalf("codec: %+v %v", w2, err)
	}
	gaps := w.Raise(6) // seqs 3, 4, 6 will never come
	if w.Watermark != 6 || len(w.Above) != 1 || w.Above[0] != 9 {
		t.Fatalf("raise: %+v", w)
	}
	if len(gaps) != 2 || gaps[0] != (topics.SeqRange{From: 3, To: 4}) || gaps[1] != (topics.SeqRange{From: 6, To: 6}) {
		t.Fatalf("gaps closed: %v", gaps)
	}
	w.AddRange(topics.SeqRange{From: 11, To: 12})
	if w.Watermark != 6 || !w.Seen(11) || !w.Seen(12) || w.Seen(10) {
		t.Fatalf("add range above: %+v", w)
	}
	w.AddRange(topics.SeqRange{From: 7, To: 10})
	if w.Watermark != 12 || len(w.Above) != 0 {
		t.Fatalf("add range at the watermark: %+v", w)
	}
	if _, err := unmarshalWindow([]byte{1, 2}); err == nil {
		t.Fatal("short record accepted")
	}
}

func TestDedupPersistsAndRollsBack(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	d := NewDedup(s, "dd/")
	txn, err := d.Lock("n", topics.StreamBulk, 7)
	if err != nil {
		t.Fatal(err)
	}
	txn.Add(1)
	txn.Add(2)
	var b store.Batch
	txn.Put(&b)
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	txn.Done(nil)
	// A failed write rolls the window back.
	txn, _ = d.Lock("n", topics.StreamBulk, 7)
	txn.Add(3)
	txn.Done(store.ErrFull)
	txn, _ = d.Lock("n", topics.StreamBulk, 7)
	if txn.Seen(3) || !txn.Seen(2) {
		t.Fatal("rollback failed")
	}
	txn.Done(nil)
	// A fresh Dedup reads the stored window.
	d2 := NewDedup(s, "dd/")
	txn, _ = d2.Lock("n", topics.StreamBulk, 7)
	defer txn.Done(nil)
	if txn.Watermark() != 2 {
		t.Fatalf("stored watermark %d", txn.Watermark())
	}
	other, _ := d2.Lock("n", topics.StreamBulk, 8)
	defer other.Done(nil)
	if other.Seen(1) {
		t.Fatal("a new epoch shares the old epoch's window")
	}
}
