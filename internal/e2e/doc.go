// Package e2e holds the end-to-end tests of the event backbone: real
// brokers on loopback, real Badger stores on disk, real `sedna` processes
// where a kill must be real, Debian's mosquitto where a test names it, and
// the cloud tier's test cluster (three RabbitMQ nodes, three etcd members:
// internal/testcluster), started once by the first test that needs it.
// It has no non-test code but shared test helpers.
//
// The longest tests whose every wait is far longer than what they wait
// for (no round timeout, offload deadline or reconnection bound a busy
// machine could make them miss) run in parallel, two at a time on two
// cores, after the others: most of their time is spent waiting on other
// processes or on one core, so two of them side by side take about the
// time of one. A test with such a bound stays serial.
package e2e
