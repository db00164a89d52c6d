package memtrim_test

import (
	"fmt"

	"github.com/sedna-go/sedna/internal/memtrim"
)

// A long-running program releases what its start mapped once it is ready.
func Example() {
	r, err := memtrim.Release()
	if err != nil {
		panic(err)
	}
	fmt.Println(r.AfterKiB <= r.BeforeKiB)
	// Output: true
}
