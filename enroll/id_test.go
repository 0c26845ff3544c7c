package enroll

import (
	"regexp"
	"testing"
	"time"
)

// Enrollment ids sort by creation (the reconciler's batches are ranges
// of them, and rows keyed by them are then written in about that order)
// and end in 16 random characters.
func TestNewEnrollmentIDSortsByCreation(t *testing.T) {
	shape := regexp.MustCompile(`^en_[0-9a-f]{12}[a-z0-9]{16}$`)
	at := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 5000 {
		id := NewEnrollmentID(at.Add(time.Duration(i) * time.Millisecond))
		if !shape.MatchString(id) || seen[id] {
			t.Fatalf("id %q (seen before: %v)", id, seen[id])
		}
		if id <= prev {
			t.Fatalf("%q made after %q sorts before it", id, prev)
		}
		seen[id], prev = true, id
	}
}
