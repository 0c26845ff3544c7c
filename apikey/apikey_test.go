package apikey

import (
	"strings"
	"testing"
)

func TestNewParseMatch(t *testing.T) {
	key, id, hash := New()
	gid, sec, err := Parse(key)
	if err != nil || gid != id {
		t.Fatalf("Parse(%q) = %q, %v", key, gid, err)
	}
	if !Match(sec, hash) {
		t.Fatal("own secret does not match")
	}
	if strings.Contains(string(hash), sec) {
		t.Fatal("hash contains the secret")
	}
	other, _, _ := New()
	_, osec, _ := Parse(other)
	if Match(osec, hash) {
		t.Fatal("another key's secret matches")
	}
}

func TestParseRejects(t *testing.T) {
	key, _, _ := New()
	for _, bad := range []string{"", "pomona_", key[:len(key)-1], "x" + key, strings.Replace(key, "_", "-", -1),
		strings.ToUpper(key), key + "=", "Bearer " + key} {
		if _, _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
