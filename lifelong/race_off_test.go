//go:build !race

package lifelong_test

const raceEnabled = false
