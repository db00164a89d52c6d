// Package serial runs work one function at a time on a goroutine that owns
// some state: callbacks from brokers and timers queue functions with Do
// instead of locking, and Close stops the goroutine.
package serial

import "sync"

// Loop is an owner goroutine and its queue of work.
type Loop struct {
	ops     chan func()
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	started bool
}

// New makes a loop whose queue holds up to capacity functions; Do waits
// while it is full. Functions queued before Start run once it starts.
func New(capacity int) *Loop {
	return &Loop{ops: make(chan func(), capacity), stop: make(chan struct{}), done: make(chan struct{})}
}

// Start starts the goroutine.
func (l *Loop) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return
	}
	l.started = true
	go func() {
		defer close(l.done)
		for {
			select {
			case f := <-l.ops:
				f()
			case <-l.stop:
				return
			}
		}
	}()
}

// Do queues f; after Close it drops f.
func (l *Loop) Do(f func()) {
	select {
	case l.ops <- f:
	case <-l.stop:
	}
}

// Stopped is closed when Close is called: a caller waiting for a queued
// function's result waits on it too, since a function queued then never
// runs.
func (l *Loop) Stopped() <-chan struct{} { return l.stop }

// Close stops the goroutine after the function it is running, and waits.
// Functions still queued do not run.
func (l *Loop) Close() {
	l.once.Do(func() { close(l.stop) })
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if started {
		<-l.done
	}
}
