package app

import (
	"encoding/hex"
	"errors"
	"fmt"
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

// Record's CommandUUIDs are version 7: RFC 9562 layout, upper-case, and
// ordered by their millisecond (one batch's commands go to the end of the
// uuid indexes, not to random pages), still random within one.
func TestTimeOrderedUUID(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		u := timeOrderedUUID(t0.Add(time.Duration(i) * time.Millisecond))
		if len(u) != 36 || u[14] != '7' || !strings.ContainsRune("89AB", rune(u[19])) || strings.ToUpper(u) != u {
			t.Fatalf("not an upper-case version 7 UUID: %s", u)
		}
		if raw, err := hex.DecodeString(strings.ReplaceAll(u, "-", "")); err != nil || len(raw) != 16 || u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-' ||
			fmt.Sprintf("%X-%X-%X-%X-%X", raw[0:4], raw[4:6], raw[6:8], raw[8:10], raw[10:16]) != u {
			t.Fatalf("not 8-4-4-4-12 hex digits: %s", u)
		}
		if !strings.HasPrefix(u, "01A2310C") {
			t.Fatalf("%s does not start with the time 2026-12-01 10:00 UTC in ms (01A2310C…)", u)
		}
		if u <= prev {
			t.Fatalf("%s sorts before the previous millisecond's %s", u, prev)
		}
		if seen[u[15:]] {
			t.Fatalf("random part repeated: %s", u)
		}
		seen[u[15:]] = true
		prev = u
	}
	a, b := timeOrderedUUID(t0), timeOrderedUUID(t0)
	if a == b {
		t.Fatal("two UUIDs of one millisecond are equal")
	}
}
