package totp

import (
	"strings"
	"testing"
	"time"
)

// RFC 6238 Appendix B, SHA-1, 8 digits.
func TestRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		code string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	} {
		if got := CodeAt(secret, tc.unix/Period, 8); got != tc.code {
			t.Errorf("T=%d: %s want %s", tc.unix, got, tc.code)
		}
	}
}

func TestVerifyWindowAndSingleUse(t *testing.T) {
	secret := NewSecret()
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name string
		at   time.Time
		last int64
		ok   bool
	}{
		{"now", now, 0, true},
		{"previous step", now.Add(-30 * time.Second), 0, true},
		{"next step", now.Add(30 * time.Second), 0, true},
		{"two steps old", now.Add(-60 * time.Second), 0, false},
		{"already used", now, Step(now), false},
		{"older than last used", now, Step(now) + 1, false},
	} {
		code := Code(secret, tc.at)
		_, ok := Verify(secret, code, now, tc.last)
		if ok != tc.ok {
			t.Errorf("%s: ok=%v", tc.name, ok)
		}
	}
	code := Code(secret, now)
	if s, ok := Verify(secret, " "+code[:3]+" "+code[3:]+" ", now, 0); !ok || s != Step(now) {
		t.Fatal("spaces in the code not tolerated")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", "12345x"} {
		if _, ok := Verify(secret, bad, now, 0); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEncodingAndURI(t *testing.T) {
	secret := NewSecret()
	enc := Encode(secret)
	back, err := Decode(strings.ToLower(enc[:8]) + " " + enc[8:])
	if err != nil || string(back) != string(secret) {
		t.Fatalf("Decode: %v", err)
	}
	if _, err := Decode("not base32!"); err == nil {
		t.Fatal("junk decoded")
	}
	u := URI(secret, "Example Corp", "alice+work@example.com")
	for _, want := range []string{"otpauth://totp/Example%20Corp:alice+work@example.com?", "secret=" + enc, "issuer=Example+Corp", "digits=6", "period=30"} {
		if !strings.Contains(u, want) {
			t.Errorf("URI %s lacks %s", u, want)
		}
	}
}
