package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k1, _ := ParseKey(NewKey())
	k2, _ := ParseKey(NewKey())
	s1, err := New(k1)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := New(k2)
	msg := []byte("-----BEGIN PRIVATE KEY-----")
	sealed := s1.Seal(msg, "ca-key")
	if bytes.Contains(sealed, msg) {
		t.Fatal("plaintext visible in sealed value")
	}
	if again := s1.Seal(msg, "ca-key"); bytes.Equal(again, sealed) {
		t.Fatal("sealing is deterministic (nonce reuse)")
	}
	got, err := s1.Open(sealed, "ca-key")
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s2.Open(sealed, "ca-key"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("other key: %v", err)
	}
	if _, err := s1.Open(sealed, "tls-key"); err == nil {
		t.Fatal("opened under another context")
	}
	bad := append([]byte{}, sealed...)
	bad[len(bad)-1] ^= 1
	if _, err := s1.Open(bad, "ca-key"); err == nil {
		t.Fatal("tampered value opened")
	}
	for _, junk := range [][]byte{nil, {1}, []byte("garbage garbage garbage garbage garbage")} {
		if _, err := s1.Open(junk, "ca-key"); err == nil {
			t.Fatalf("junk %q opened", junk)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{NewKey(), true},
		{"  " + NewKey() + "\n", true},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", true},
		{"c2hvcnQ=", false},
		{"not a key!", false},
		{"", false},
	} {
		_, err := ParseKey(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKey(%q) err=%v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: %v %v", created, err)
	}
	os.WriteFile(path, []byte("junk"), 0o600)
	if _, _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("junk key file accepted")
	}
}
