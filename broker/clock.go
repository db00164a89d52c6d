package broker

import "time"

// Clock tells the wall-clock time. The broker, bridge and queues stamp and
// expire messages by it; nil means time.Now. A simulator gives each
// virtual node its own, to skew it or make it jump as a board's clock does.
type Clock func() time.Time

// Now is c's time, or time.Now() when c is nil.
func (c Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}
