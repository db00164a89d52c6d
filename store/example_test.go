package store_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/sedna-go/sedna/store"
)

// One store per process; each part gets a view with its own prefix.
func Example() {
	s, err := store.OpenTemp(store.Options{Mode: store.Process}) // OpenBadger opens one in a directory of one's own
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	queue := store.Sub(s, "queue/")
	var b store.Batch
	b.Put([]byte("0001"), []byte("first"))
	b.Put([]byte("0002"), []byte("second"))
	if err := queue.Write(&b); err != nil { // atomic, group-committed
		fmt.Println(err)
		return
	}
	_ = queue.Scan(nil, nil, func(k, v []byte) error {
		fmt.Printf("%s=%s\n", k, v)
		return nil
	})

	// Large values go in chunks that each fit a transaction.
	info, _ := store.PutBlob(s, "model/v1", bytes.NewReader(make([]byte, 600<<10)), 0)
	r, _ := store.OpenBlob(s, "model/v1")
	n, _ := io.Copy(io.Discard, r)
	fmt.Println(info.Chunks, "chunks,", n, "bytes")
	// Output:
	// 0001=first
	// 0002=second
	// 3 chunks, 614400 bytes
}
