package enroll

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

// Findings 1 and 2 on the enrollment POST (unauthenticated): the nested
// definite-length BER and the three binary plists are refused within a
// second and a few MiB (before: out of memory, fatal stack overflow,
// out of memory, index-out-of-range panic).
func TestHostileEnrollmentBodies(t *testing.T) {
	for _, tc := range []struct{ name, err string }{
		{untrustedtest.NestedBER, "runs past its parent"},
		{untrustedtest.SelfReference, "binary property lists are not accepted"},
		{untrustedtest.Data64GiB, "binary property lists are not accepted"},
		{untrustedtest.IndexOutOfRange, "binary property lists are not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := untrustedtest.Read(t, tc.name)
			var err error
			untrustedtest.Bounded(t, time.Second, 4<<20, func() { _, err = ParseBody(body) })
			if !errors.Is(err, ErrBody) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
