//go:build race

package sqlite_test

// raceEnabled: built with -race. Allocation counts are then not the
// program's: the race detector makes sync.Pool drop items at random
// (https://go.dev/doc/articles/race_detector), so the allocation tests
// skip their bounds.
const raceEnabled = true
