package opaquetoken

import (
	"bytes"
	"errors"
	"testing"
)

func TestNewAndHeader(t *testing.T) {
	a, ha := New()
	b, _ := New()
	if a == b || !Valid(a) || len(a) != Len || !bytes.Equal(ha, Hash(a)) {
		t.Fatalf("New: %q %q", a, b)
	}
	for _, tc := range []struct {
		h    string
		want string
		err  error
	}{
		{"Bearer " + a, a, nil},
		{"bearer  " + a + " ", a, nil},
		{"", "", ErrMissing},
		{"   ", "", ErrMissing},
		{"Basic " + a, "", ErrMalformed},
		{"Bearer", "", ErrMalformed},
		{"Bearer " + a + "x", "", ErrMalformed},
		{"Bearer " + a[:42] + "!", "", ErrMalformed},
		{"Bearer " + a + " " + b, "", ErrMalformed},
	} {
		got, err := FromHeader(tc.h)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("FromHeader(%q) = %q, %v", tc.h, got, err)
		}
	}
}

func FuzzFromHeader(f *testing.F) {
	a, _ := New()
	for _, s := range []string{"Bearer " + a, "", "Bearer", "bearer x", "Bearer " + a + a, "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := FromHeader(h)
		if err != nil {
			if tok != "" {
				t.Fatal("token returned with an error")
			}
			return
		}
		if !Valid(tok) || len(tok) != Len {
			t.Fatalf("accepted %q", tok)
		}
	})
}
