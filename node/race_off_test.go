//go:build !race

package node_test

// raceEnabled: the race detector is on (its shadow memory is private
// memory too, several times the heap).
const raceEnabled = false
