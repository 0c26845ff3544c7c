//go:build !race

package sqlite_test

// raceEnabled: built with -race (race_on_test.go).
const raceEnabled = false
