package mobileconfig

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestReadMaxFile: Read refuses a file over MaxFile whatever it holds, as
// its doc says; white space before the property list (which Read skips)
// made a file of any size acceptable on the old code.
func TestReadMaxFile(t *testing.T) {
	pad := func(n int) []byte { return append(bytes.Repeat([]byte{' '}, n-len(WiFi)), WiFi...) }
	if _, err := Read(pad(MaxFile)); err != nil {
		t.Fatalf("a file of MaxFile bytes: %v", err)
	}
	// An unsigned property list over 1 MiB (padded inside, where the
	// white space Read skips does not help) is refused in an
	// administrator's terms, not in the parser's ("unacceptable property
	// list: N bytes (at most 1048576)").
	inner := bytes.Replace([]byte(WiFi), []byte("<plist"), append([]byte("<!--"+strings.Repeat("x", 1<<20)+"-->"), "<plist"...), 1)
	if _, err := Read(inner); !errors.Is(err, ErrProfile) || !strings.Contains(err.Error(), "property list is larger than 1 MiB") || !strings.Contains(err.Error(), "an unsigned profile, or what a signed one wraps, is at most 1 MiB") {
		t.Errorf("a property list of %d bytes: %v", len(inner), err)
	}
	for _, n := range []int{MaxFile + 1, 5 << 20} {
		if _, err := Read(pad(n)); !errors.Is(err, ErrProfile) || !strings.Contains(err.Error(), "larger than 2 MiB") {
			t.Errorf("a file of %d bytes: %v, want refused as larger than 2 MiB", n, err)
		}
	}
}
