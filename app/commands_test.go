package app

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

// Finding 3: an admin's raw plist (API or console) with one of the hostile
// binary plists is refused as a command, not decoded (before: stack
// overflow, out of memory, index out of range).
func TestBuildRefusesBinaryPlists(t *testing.T) {
	c := &Commands{}
	for _, name := range untrustedtest.BinaryPlists {
		b := untrustedtest.Read(t, name)
		var err error
		untrustedtest.Bounded(t, time.Second, 1<<20, func() { _, _, err = c.Build("iOS", EnqueueRequest{Plist: b}) })
		var r *catalog.Refusal
		if !errors.As(err, &r) || !strings.Contains(r.Reason, "binary property lists are not accepted") {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
