package store_test

import (
	"log/slog"
	"testing"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/store/storetest"
)

func openBolt(mode store.Mode) storetest.Opener {
	return func(t *testing.T, dir string) store.Store {
		t.Helper()
		s, err := store.OpenBolt(store.Options{Dir: dir, Mode: mode, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestBoltConformanceProcess(t *testing.T) { storetest.Run(t, openBolt(store.Process)) }
func TestBoltConformanceSync(t *testing.T)    { storetest.Run(t, openBolt(store.Sync)) }

// A scan's callback may write to the store it scans (it runs outside the
// read transaction), and the scan still visits every key once, in order,
// across its chunks.
func TestBoltScanCallbackMayWrite(t *testing.T) {
	s, err := store.OpenBolt(store.Options{Dir: t.TempDir(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b store.Batch
	for i := range 1000 {
		b.Put([]byte{'k', byte(i >> 8), byte(i)}, make([]byte, 512))
	}
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	n := 0
	var last []byte
	err = s.Scan([]byte("k"), nil, func(k, _ []byte) error {
		if last != nil && string(k) <= string(last) {
			t.Fatalf("key %x after %x", k, last)
		}
		last = append(last[:0], k...)
		n++
		var w store.Batch
		w.Put(append([]byte("w"), k...), make([]byte, 4096)) // grows the file: a remap
		return s.Write(&w)
	})
	if err != nil || n != 1000 {
		t.Fatalf("scanned %d of 1000: %v", n, err)
	}
}

// Open picks the platform's backend for a new store (Badger on this
// 64-bit build) and keeps the backend of an existing one: a Bolt store
// opens as Bolt.
func TestOpenKeepsTheBackend(t *testing.T) {
	fresh, err := store.Open(store.Options{Dir: t.TempDir(), MinFreeBytes: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, isBadger := fresh.(*store.Badger)
	fresh.Close()
	dir := t.TempDir()
	b, err := store.OpenBolt(store.Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	again, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, isBolt := again.(*store.Bolt); !isBadger || !isBolt {
		t.Fatalf("a new store: %T; a Bolt store reopened: %T", fresh, again)
	}
}
