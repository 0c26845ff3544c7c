package api

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseIdempotencyKey(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
		ok   bool
	}{
		{[]string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`}, "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{[]string{` "spaced" `}, "spaced", true},
		{[]string{`"with \"quotes\" and \\"`}, `with "quotes" and \`, true},
		{[]string{`"a b"`}, "a b", true},
		{[]string{"bare-token_1"}, "bare-token_1", true},
		{[]string{`"` + strings.Repeat("k", 255) + `"`}, strings.Repeat("k", 255), true},
		{[]string{`"` + strings.Repeat("k", 256) + `"`}, "", false},
		{[]string{strings.Repeat("k", 256)}, "", false},
		{[]string{`""`}, "", false},
		{[]string{""}, "", false},
		{[]string{`"unterminated`}, "", false},
		{[]string{`"a"b"`}, "", false},
		{[]string{`"bad \n escape"`}, "", false},
		{[]string{"\"caf\u00e9\""}, "", false},
		{[]string{"two words"}, "", false},
		{[]string{"a,b"}, "", false},
		{[]string{`"a"`, `"b"`}, "", false},
	} {
		got, ok := parseIdempotencyKey(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// The fingerprint ignores how the body was spelled but not what it says,
// nor the path, and the key is scoped to the credential.
func TestIdempotencyFingerprint(t *testing.T) {
	mk := func(path, principal string, body any) string {
		r := httptest.NewRequest("POST", path, nil)
		r.Header.Set(IdempotencyHeader, `"k"`)
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, principal))
		k, err := idempotency(r, body)
		if err != nil || k == nil || k.Key != "k" || k.Principal != principal {
			t.Fatalf("%+v %v", k, err)
		}
		return k.Fingerprint
	}
	a := mk("/api/v1/devices/X/commands", "key:a", map[string]any{"request_type": "ProfileList", "push": false})
	if b := mk("/api/v1/devices/X/commands", "key:b", map[string]any{"push": false, "request_type": "ProfileList"}); b != a {
		t.Fatal("key order changed the fingerprint")
	}
	if b := mk("/api/v1/devices/Y/commands", "key:a", map[string]any{"request_type": "ProfileList", "push": false}); b == a {
		t.Fatal("another path, same fingerprint")
	}
	if b := mk("/api/v1/devices/X/commands", "key:a", map[string]any{"request_type": "ProfileList", "push": true}); b == a {
		t.Fatal("another body, same fingerprint")
	}
	r := httptest.NewRequest("POST", "/api/v1/commands", nil)
	if k, err := idempotency(r, map[string]any{}); k != nil || err != nil {
		t.Fatalf("no header: %+v %v", k, err)
	}
}
