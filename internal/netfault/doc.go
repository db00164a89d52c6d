// Package netfault is a TCP proxy that injects link faults, for tests and
// for the device simulator.
//
// A [Proxy] listens on a loopback address and forwards every accepted
// connection to one target address, bytes unchanged in both directions.
// While it runs, the link it models can be cut ([Proxy.SetDown]), slowed
// ([Proxy.SetLatency], [Proxy.SetBandwidth]), black-holed
// ([Proxy.SetStall]) or reset ([Proxy.ResetAll]), and its traffic counted
// ([Proxy.Stats]).
//
// Ownership: a Proxy owns its listener, every client connection it accepts,
// every upstream connection it dials, and every goroutine it starts (one
// accept loop, plus per connection one supervisor and a reader and a writer
// per direction). [Proxy.Close] stops and waits for all of them. The
// target's server is not owned: the Proxy only dials it.
//
// Latency is a delay line per direction: a reader stamps each chunk with its
// arrival time and queues it, a writer releases it at arrival plus the
// latency, so latency does not cut throughput and order is preserved. The
// queue is bounded (about 2 MiB per direction and connection), so a link
// that is stalled or slowed pushes back on the sender as TCP would.
// Bandwidth is capped per direction by one token bucket shared by all the
// connections of the Proxy, because a Proxy models one link.
package netfault
