//go:build !race

package mdm

// raceEnabled: built with -race (allocation counts are then not the
// program's own).
const raceEnabled = false
