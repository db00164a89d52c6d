//go:build !race

package e2e

// raceEnabled: heavy tests shrink under the race detector.
const raceEnabled = false
