//go:build !race

package server_test

// raceSlowdown scales time limits; 1 without the race detector.
const raceSlowdown = 1
