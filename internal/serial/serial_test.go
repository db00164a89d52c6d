package serial_test

import (
	"sync"
	"testing"

	"github.com/sedna-go/sedna/internal/serial"
)

func TestLoopRunsInOrderOnOneGoroutineAndStops(t *testing.T) {
	l := serial.New(4)
	var got []int
	l.Do(func() { got = append(got, 0) }) // queued before Start
	l.Start()
	var wg sync.WaitGroup
	for i := 1; i <= 100; i++ {
		wg.Add(1)
		l.Do(func() { got = append(got, i); wg.Done() }) // no lock: one goroutine owns got
	}
	wg.Wait()
	l.Close()
	l.Do(func() { t.Error("ran after Close") })
	l.Close()
	if len(got) != 101 || got[0] != 0 || got[100] != 100 {
		t.Fatalf("ran %d functions, first %d, last %d", len(got), got[0], got[len(got)-1])
	}
	for i := range got {
		if got[i] != i {
			t.Fatalf("out of order at %d: %d", i, got[i])
		}
	}
	serial.New(1).Close() // never started: returns at once
}
