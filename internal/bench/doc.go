// Package bench is `sedna bench`: it measures sedna side by side with
// mosquitto, in one run, and writes the report in Markdown.
//
// Its parts are the bridge (edge to cloud through a 'sedna edge' process's
// bridge, for each write mode, against a mosquitto bridge), the broker
// (publishers to one subscriber through one broker), slow (the same beside
// a subscriber that never reads), models (model distribution against the
// bridge's raw downlink), ji (joint inference against EdgeOnly), fl
// (federated learning's overhead per round and its accuracy) and reconnect
// (how soon a bridge is back after link outages). [Run] runs those that
// [Options] asks for.
//
// The bench owns the processes it starts ('sedna edge', 'sedna cloud' and
// mosquitto, from the binaries [Options] names) and a temporary directory
// for their stores; it stops and removes them before [Run] returns. It
// does not own the flags of the command: cmd/sedna parses them into
// [Options], and keeps the CPU profile of the bench process. The camera and
// the federated learning helpers it shares with the demo are in
// internal/demo.
package bench
