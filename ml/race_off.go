//go:build !race

package ml

// raceEnabled selects the kernel that loads least per multiply-add.
const raceEnabled = false
