//go:build !race

package untrustedtest

// RaceSlowdown multiplies Bounded's time limit: 1 without the race
// detector.
const RaceSlowdown = 1
