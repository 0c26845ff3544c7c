//go:build !race

package sqlstore

// raceEnabled: built with -race (allocation counts are then not the
// program's own).
const raceEnabled = false
