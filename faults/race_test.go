//go:build race

package faults

// raceEnabled: the suite runs under -race, so the worker binary is built
// with it too and a data race in a worker fails the case.
const raceEnabled = true
