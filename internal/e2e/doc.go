// Package e2e holds the end-to-end tests of the event backbone: real
// brokers on loopback, real Badger stores on disk, real `sedna` processes
// where a kill must be real, and Debian's mosquitto where a test names it.
// It has no non-test code but shared test helpers.
package e2e
