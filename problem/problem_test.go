package problem

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindsAndChain(t *testing.T) {
	cause := errors.New("disk on fire")
	tests := []struct {
		name     string
		err      error
		kind     Kind
		code     string
		message  string
		errorStr string
	}{
		{"new", New(NotFound, "device %s not found", "d1"), NotFound, "not_found", "device d1 not found", "device d1 not found"},
		{"coded", Coded(Forbidden, "com.apple.unrecognized.device", "ended"), Forbidden, "com.apple.unrecognized.device", "ended", "ended"},
		{"wrapped cause hidden from message", Wrap(Unavailable, cause, "no push certificate"), Unavailable, "unavailable", "no push certificate", "no push certificate: disk on fire"},
		{"found through fmt wrapping", fmt.Errorf("ctx: %w", FieldError(Invalid, "email", "not an email")), Invalid, "invalid", "not an email", "ctx: not an email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := As(tc.err)
			if !ok {
				t.Fatalf("As found no *Error in %v", tc.err)
			}
			if e.Kind != tc.kind || KindOf(tc.err) != tc.kind || e.Code != tc.code || e.Message != tc.message {
				t.Fatalf("got kind %v code %q message %q", e.Kind, e.Code, e.Message)
			}
			if tc.err.Error() != tc.errorStr {
				t.Fatalf("Error() = %q, want %q", tc.err.Error(), tc.errorStr)
			}
		})
	}
	if KindOf(cause) != 0 {
		t.Fatal("a plain error has no Kind")
	}
	if !errors.Is(Wrap(Invalid, cause, "x"), cause) {
		t.Fatal("Unwrap lost the cause")
	}
	for k := Invalid; k <= Unavailable; k++ {
		if k.String() == "" || k.String()[0] == 'k' {
			t.Fatalf("kind %d has no name", k)
		}
	}
}
