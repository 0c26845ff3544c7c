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

func (m *memLimits) RateLimitPrune(_ context.Context, before time.Time, max int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, s := range m.start {
		if n < max && s.Before(before) {
			delete(m.n, k)
			delete(m.start, k)
			n++
		}
	}
	m.writes++
	return n, nil
}

func newMem() *memLimits { return &memLimits{n: map[string]int{}, start: map[string]time.Time{}} }

// TestFailureInFlightDuringResetCounts: a wrong guess being checked while
// the person signs in successfully is not forgiven by that sign-in's
// reset (Session 14 noted that it was: each of the person's sign-ins
// forgave up to Max guesses in flight).
func TestFailureInFlightDuringResetCounts(t *testing.T) {
	ctx := context.Background()
	l := credential.DefaultLimits
	now := time.Unix(1_700_000_000, 0)
	st := newMem()
	count := func() int {
		n, _, _ := st.RateLimitCount(ctx, "signin:acct:a@x.example", l.Window, now)
		return n
	}
	// A failure that ended before the success: forgiven.
	for i := 0; i < 1; i++ {
		a, _ := l.Begin(ctx, st, "signin", "a@x.example", "198.51.100.1", now)
		a.Failed(ctx, now)
	}
	// Three guesses in flight (their checks running), then the person's
	// sign-in succeeds and resets the account.
	var guesses []*credential.Attempt
	for i := 0; i < 3; i++ {
		a, err := l.Begin(ctx, st, "signin", "a@x.example", "203.0.113.9", now)
		if err != nil {
			t.Fatal(err)
		}
		guesses = append(guesses, a)
	}
	ok, err := l.Begin(ctx, st, "signin", "a@x.example", "198.51.100.1", now)
	if err != nil {
		t.Fatal(err)
	}
	ok.Succeeded(ctx)
	l.Reset(ctx, st, "signin", "a@x.example")
	if n := count(); n != 0 {
		t.Fatalf("after the reset: %d, want 0", n)
	}
	for _, a := range guesses {
		a.Failed(ctx, now.Add(time.Second))
	}
	if n := count(); n != 3 {
		t.Fatalf("the 3 guesses in flight during the reset count %d, want 3", n)
	}
	// Without a reset in between, a failure is counted once only.
	a, _ := l.Begin(ctx, st, "signin", "a@x.example", "203.0.113.9", now)
	a.Failed(ctx, now)
	a.Failed(ctx, now)
	if n := count(); n != 4 {
		t.Fatalf("one more failure: %d, want 4", n)
	}
	// A step whose window ran out while it was checked is not counted in
	// the next one.
	b, _ := l.Begin(ctx, st, "signin", "b@x.example", "203.0.113.10", now)
	b.Failed(ctx, now.Add(l.Window+time.Second))
	if n, _, _ := st.RateLimitCount(ctx, "signin:acct:b@x.example", l.Window, now.Add(l.Window+time.Second)); n != 0 {
		t.Fatalf("failure of an ended window counted again: %d", n)
	}
}

// TestPruneBoundsTableUnderAddressRotation: an attacker takes a new
// address every minute for 6 hours, naming IPMax new accounts from each
// (every step a fresh row: 31 a minute). With the pruner's pass every 5
// minutes the table holds at most the rows of one window and one
// interval; without it, every row stays (11,160 here).
func TestPruneBoundsTableUnderAddressRotation(t *testing.T) {
	ctx := context.Background()
	l := credential.DefaultLimits
	st := newMem()
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	p := &credential.Pruner{Store: st, Limits: []*credential.Limits{&l}, Now: func() time.Time { return now }}
	perMinute := l.IPMax + 1
	bound := perMinute * int((l.Window+5*time.Minute)/time.Minute+1)
	most := 0
	for m := 0; m < 360; m++ {
		now = t0.Add(time.Duration(m) * time.Minute)
		ip := fmt.Sprintf("198.51.%d.%d", m/250, m%250)
		for i := 0; i < l.IPMax; i++ {
			a, err := l.Begin(ctx, st, "signin", fmt.Sprintf("m%d-u%d@x.example", m, i), ip, now)
			if err != nil {
				t.Fatal(err)
			}
			a.Failed(ctx, now)
		}
		if m%5 == 4 {
			if _, err := p.Prune(ctx); err != nil {
				t.Fatal(err)
			}
		}
		most = max(most, len(st.n))
	}
	if most > bound {
		t.Fatalf("the table reached %d rows, want at most %d (one window and one interval of the attack)", most, bound)
	}
	// A running window is never pruned: the last address is still locked out.
	if _, err := l.Begin(ctx, st, "signin", "new@x.example", fmt.Sprintf("198.51.%d.%d", 359/250, 359%250), now); err == nil {
		t.Fatal("the prune forgot a running window's count")
	}
}
