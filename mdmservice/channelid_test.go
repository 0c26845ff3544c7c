package mdmservice

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/enroll"
)

// Channel ids sort like their enrollments' ids (the queue's keys then
// follow the reconciler's batches, which are ranges of enrollment ids),
// end in enough randomness that nobody can name one, and never repeat.
func TestNewChannelIDSortsWithEnrollment(t *testing.T) {
	enrs := make([]string, 2000)
	for i := range enrs {
		enrs[i] = enroll.NewEnrollmentID()
	}
	slices.Sort(enrs)
	seen := map[string]bool{}
	shape := regexp.MustCompile(`^ch_[a-z0-9]{20}_[a-z0-9]{16}$`)
	var prev string
	for _, e := range enrs {
		for range 2 { // a device channel and a user channel of one enrollment
			id := NewChannelID(e)
			if !shape.MatchString(id) || !strings.HasPrefix(id, "ch_"+strings.TrimPrefix(e, "en_")+"_") {
				t.Fatalf("channel id %q of enrollment %q", id, e)
			}
			if seen[id] {
				t.Fatalf("channel id %q twice", id)
			}
			seen[id] = true
			if prev != "" && strings.TrimPrefix(prev, "ch_")[:20] > strings.TrimPrefix(id, "ch_")[:20] {
				t.Fatalf("%q of a later enrollment sorts before %q", id, prev)
			}
			prev = id
		}
	}
	// Whole ids sort in enrollment order too (two enrollments' channels
	// never interleave).
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		a, b := ids[i-1][3:23], ids[i][3:23]
		if a > b {
			t.Fatalf("sorted ids out of enrollment order: %q, %q", ids[i-1], ids[i])
		}
	}
}
