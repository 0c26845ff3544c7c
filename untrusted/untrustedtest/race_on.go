//go:build race

package untrustedtest

// RaceSlowdown multiplies Bounded's time limit: the race detector makes
// code 2–20× slower (https://go.dev/doc/articles/race_detector).
const RaceSlowdown = 4
