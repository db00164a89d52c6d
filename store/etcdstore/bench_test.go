package etcdstore_test

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/store/etcdstore"
)

// BenchmarkWrite compares one Write of a small batch (what the relay's
// window and an outbox append cost per frame: 4 records of 256 bytes)
// on Badger in each write mode and on etcd (one member on loopback, its
// log fsynced), side by side in one run, by one writer and by 16 at once
// (16 on any GOMAXPROCS).
func BenchmarkWrite(b *testing.B) {
	open := map[string]func(b *testing.B) store.Store{
		"badger-process": func(b *testing.B) store.Store {
			s, err := store.OpenBadger(store.Options{Dir: b.TempDir(), Mode: store.Process, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"badger-sync": func(b *testing.B) store.Store {
			s, err := store.OpenBadger(store.Options{Dir: b.TempDir(), Mode: store.Sync, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"etcd": func(b *testing.B) store.Store {
			s, err := etcdstore.Open(etcdstore.Options{Client: client(b, endpoint), Prefix: b.Name() + "/"})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	val := make([]byte, 256)
	for _, name := range []string{"badger-process", "badger-sync", "etcd"} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/writers=%d", name, par), func(b *testing.B) {
				s := open[name](b)
				defer s.Close()
				b.ReportAllocs()
				var n atomicCounter
				write := func() error {
					i := n.next()
					var batch store.Batch
					for j := range 4 {
						batch.Put(fmt.Appendf(nil, "k/%010d/%d", i, j), val)
					}
					return s.Write(&batch)
				}
				if par == 1 {
					for b.Loop() {
						if err := write(); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := write(); err != nil {
							b.Error(err) // not Fatal: this is not the benchmark's goroutine
							return
						}
					}
				})
			})
		}
	}
}

type atomicCounter struct{ v atomic.Int64 }

func (c *atomicCounter) next() int64 { return c.v.Add(1) }

// BenchmarkPutBlob stores a 16 MiB model as the model registry does
// (store.PutBlob, 256 KiB chunks) on Badger in sync mode and on etcd, side
// by side: what keeping the models' bytes in etcd costs the replicas.
func BenchmarkPutBlob(b *testing.B) {
	const size, chunk = 16 << 20, 256 << 10
	model := make([]byte, size)
	for i := range model {
		model[i] = byte(i * 7)
	}
	for _, name := range []string{"badger-sync", "etcd"} {
		b.Run(name, func(b *testing.B) {
			var s store.Store
			var err error
			if name == "etcd" {
				s, err = etcdstore.Open(etcdstore.Options{Client: client(b, endpoint), Prefix: b.Name() + "/"})
			} else {
				s, err = store.OpenBadger(store.Options{Dir: b.TempDir(), Mode: store.Sync, GCInterval: -1})
			}
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				info, err := store.PutBlob(s, fmt.Sprintf("model-%d", i), bytes.NewReader(model), chunk)
				if err != nil {
					b.Fatal(err)
				}
				// Deleted again, so that etcd's quota holds every round.
				if err := store.DeleteBlob(s, info.Key); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
