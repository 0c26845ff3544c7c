package credential_test

import (
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/totp"
)

var cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswords(t *testing.T) {
	p := credential.NewPasswords(cheap)
	h, err := password.Hash("right", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verify("right", h) || p.Verify("wrong", h) || p.Verify("right", "") {
		t.Fatal("Verify: want true only for the right password against a real hash")
	}
	if r := p.Rehash("right", h); r != "" {
		t.Errorf("Rehash of a current hash = %q, want none", r)
	}
	stronger := cheap
	stronger.Time = 2
	r := credential.NewPasswords(stronger).Rehash("right", h)
	if r == "" || password.NeedsRehash(r, stronger) || password.Verify("right", r) != nil {
		t.Errorf("Rehash to stronger parameters = %q, want a new hash of the same password", r)
	}
}

func TestVerifySealedCode(t *testing.T) {
	key, _ := seal.ParseKey(seal.NewKey())
	s, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("12345678901234567890")
	sealed := s.Seal(secret, "totp:u1")
	now := time.Unix(1_700_000_000, 0)
	code := totp.Code(secret, now)
	step, ok, err := credential.VerifySealedCode(s, sealed, "totp:u1", code, now, 0)
	if err != nil || !ok || step != totp.Step(now) {
		t.Fatalf("current code: step %d ok %v err %v", step, ok, err)
	}
	if _, ok, _ := credential.VerifySealedCode(s, sealed, "totp:u1", code, now, step); ok {
		t.Error("a code was accepted twice")
	}
	if _, _, err := credential.VerifySealedCode(s, sealed, "totp:other", code, now, 0); err == nil {
		t.Error("a secret sealed for another context opened")
	}
}
