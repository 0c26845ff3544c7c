package credential_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	if ctx := context.Background(); !p.Verify(ctx, "right", h) || p.Verify(ctx, "wrong", h) || p.Verify(ctx, "right", "") {
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

// memLimits is an in-memory store.RateLimitStore that counts writes.
type memLimits struct {
	mu     sync.Mutex
	n      map[string]int
	start  map[string]time.Time
	writes int
}

func (m *memLimits) RateLimitHit(_ context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if s, ok := m.start[key]; !ok || s.Add(window).Before(now) {
		m.n[key], m.start[key] = 0, now
	}
	m.n[key]++
	return m.n[key], m.start[key], nil
}

func (m *memLimits) RateLimitCount(_ context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.start[key]; ok && !s.Add(window).Before(now) {
		return m.n[key], s, nil
	}
	return 0, time.Time{}, nil
}

func (m *memLimits) RateLimitReset(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	delete(m.n, key)
	delete(m.start, key)
	return nil
}

func (m *memLimits) RateLimitUndo(_ context.Context, key string, start time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if m.start[key].Equal(start) && m.n[key] > 0 {
		m.n[key]--
	}
	return nil
}

// TestLockedOutStepsWriteNothing: once an address is over its limit, its
// steps (here for ever new accounts) are refused from a read: no write to
// the store that devices' results share, no row per account named.
func TestLockedOutStepsWriteNothing(t *testing.T) {
	ctx := context.Background()
	st := &memLimits{n: map[string]int{}, start: map[string]time.Time{}}
	l := credential.DefaultLimits
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < l.IPMax; i++ {
		if _, err := l.Begin(ctx, st, "signin", fmt.Sprintf("u%d@x.example", i), "198.51.100.7", now); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	writes, keys := st.writes, len(st.n)
	for i := 0; i < 100; i++ {
		_, err := l.Begin(ctx, st, "signin", fmt.Sprintf("new%d@x.example", i), "198.51.100.7", now)
		var le *credential.LockedError
		if !errors.As(err, &le) || le.Scope != "address" {
			t.Fatalf("locked-out address, step %d: %v", i, err)
		}
	}
	if st.writes != writes || len(st.n) != keys {
		t.Fatalf("100 refused steps wrote %d times and made %d keys, want none", st.writes-writes, len(st.n)-keys)
	}
}
