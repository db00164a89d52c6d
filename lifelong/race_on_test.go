//go:build race

package lifelong_test

// raceEnabled: the race detector slows training about fourfold, so the
// comparison with one global model leaves out its larger model.
const raceEnabled = true
