//go:build !race

package faults

// raceEnabled: the suite runs without -race, so the worker binary is built
// without it.
const raceEnabled = false
