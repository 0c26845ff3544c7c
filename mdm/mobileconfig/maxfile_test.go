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
	for _, n := range []int{MaxFile + 1, 5 << 20} {
		if _, err := Read(pad(n)); !errors.Is(err, ErrProfile) || !strings.Contains(err.Error(), "larger than 2 MiB") {
			t.Errorf("a file of %d bytes: %v, want refused as larger than 2 MiB", n, err)
		}
	}
}
