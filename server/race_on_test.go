//go:build race

package server_test

// raceSlowdown scales time limits: the race detector makes the server
// several times slower (an 8 MiB upload took 0.6 s instead of 0.06 s).
const raceSlowdown = 4
