package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func enrollmentTests() []namedTest {
	return []namedTest{
		{"AccessTokens", testAccessTokens},
		{"EnrollmentAndChallenge", testEnrollmentAndChallenge},
		{"ChallengeConsumedOnceUnderRace", testChallengeRace},
		{"RateLimits", testRateLimits},
		{"RateLimitUndo", testRateLimitUndo},
		{"RateLimitPrune", testRateLimitPrune},
		{"TOTPLastStep", testTOTPLastStep},
		{"Renewals", testRenewals},
	}
}

type namedTest struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

func testAccessTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	tok := &store.AccessToken{Hash: []byte("h1"), UserID: u.ID, TenantID: tn.ID, CreatedAt: now(), ExpiresAt: now().Add(time.Hour)}
	if err := s.CreateAccessToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateAccessToken(ctx, tok), store.ErrConflict)
	got, err := s.AccessToken(ctx, []byte("h1"))
	if err != nil || got.UserID != u.ID || got.TenantID != tn.ID || !got.ExpiresAt.Equal(tok.ExpiresAt) || got.DeviceID != "" {
		t.Fatalf("AccessToken = %+v, %v", got, err)
	}
	_, err = s.AccessToken(ctx, []byte("nope"))
	wantErr(t, err, store.ErrNotFound)
	if err := s.BindAccessToken(ctx, []byte("h1"), "E1"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindAccessToken(ctx, []byte("h1"), "E1"); err != nil {
		t.Fatal("re-binding to the same enrollment:", err)
	}
	wantErr(t, s.BindAccessToken(ctx, []byte("h1"), "E2"), store.ErrConflict)
	wantErr(t, s.BindAccessToken(ctx, []byte("nope"), "E1"), store.ErrNotFound)
	if got, _ := s.AccessToken(ctx, []byte("h1")); got.DeviceID != "E1" {
		t.Fatalf("bound to %q", got.DeviceID)
	}
	// Deleting the user removes its tokens.
	if err := s.DeleteUser(ctx, u.ID, store.Ending{}); err != nil {
		t.Fatal(err)
	}
	_, err = s.AccessToken(ctx, []byte("h1"))
	wantErr(t, err, store.ErrNotFound)
}

func mustEnrollment(t *testing.T, s store.Store, tenantID, userID string, challenge []byte, exp time.Time) *store.Enrollment {
	t.Helper()
	e := &store.Enrollment{ID: id("en"), TenantID: tenantID, UserID: userID, TokenHash: []byte("tok"), Platform: "iOS",
		Product: "iPhone15,3", OSVersion: "18.2", BuildVersion: "22C152", Language: "en-US", MachineInfo: []byte("<plist/>"),
		DeviceSignature: "apple", ProfileID: "net.example.pomona.t", Status: store.EnrollmentPending, CreatedAt: now(), UpdatedAt: now()}
	var ch *store.SCEPChallenge
	if challenge != nil {
		ch = &store.SCEPChallenge{Hash: challenge, ExpiresAt: exp}
	}
	if err := s.CreateEnrollment(context.Background(), e, ch); err != nil {
		t.Fatal(err)
	}
	return e
}

func testEnrollmentAndChallenge(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := mustEnrollment(t, s, tn.ID, u.ID, []byte("c1"), now().Add(time.Hour))
	got, err := s.Enrollment(ctx, e.ID)
	if err != nil || got.Product != "iPhone15,3" || got.Status != store.EnrollmentPending || string(got.MachineInfo) != "<plist/>" ||
		got.DeviceSignature != "apple" || got.ProfileID != "net.example.pomona.t" || got.Language != "en-US" || !got.CreatedAt.Equal(e.CreatedAt) {
		t.Fatalf("Enrollment = %+v, %v", got, err)
	}
	_, err = s.Enrollment(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
	ch, err := s.SCEPChallenge(ctx, []byte("c1"))
	if err != nil || ch.DeviceID != e.ID || !ch.UsedAt.IsZero() {
		t.Fatalf("SCEPChallenge = %+v, %v", ch, err)
	}
	cert := &store.IdentityCert{Serial: "01ab", DeviceID: e.ID, SHA256: []byte("fp1"), NotBefore: now(), NotAfter: now().Add(time.Hour), IssuedAt: now()}
	// A certificate for another enrollment cannot consume this challenge.
	other := mustEnrollment(t, s, tn.ID, u.ID, nil, time.Time{})
	wrong := *cert
	wrong.DeviceID = other.ID
	wantErr(t, s.ConsumeSCEPChallenge(ctx, []byte("c1"), now(), &wrong), store.ErrConflict)
	if err := s.ConsumeSCEPChallenge(ctx, []byte("c1"), now(), cert); err != nil {
		t.Fatal(err)
	}
	again := *cert
	again.Serial, again.SHA256 = "02", []byte("fp2")
	wantErr(t, s.ConsumeSCEPChallenge(ctx, []byte("c1"), now(), &again), store.ErrSCEPChallengeUsed)
	if _, err := s.IdentityCert(ctx, "02"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused consumption recorded a certificate")
	}
	wantErr(t, s.ConsumeSCEPChallenge(ctx, []byte("unknown"), now(), &again), store.ErrNotFound)
	ic, err := s.IdentityCert(ctx, "01ab")
	if err != nil || ic.DeviceID != e.ID || string(ic.SHA256) != "fp1" {
		t.Fatalf("IdentityCert = %+v, %v", ic, err)
	}
	// Expired challenges are refused.
	mustEnrollment(t, s, tn.ID, u.ID, []byte("old"), now().Add(-time.Second))
	exp := *cert
	exp.Serial, exp.SHA256 = "03", []byte("fp3")
	wantErr(t, s.ConsumeSCEPChallenge(ctx, []byte("old"), now(), &exp), store.ErrExpired)
}

func testChallengeRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := mustEnrollment(t, s, tn.ID, u.ID, []byte("race"), now().Add(time.Hour))
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &store.IdentityCert{Serial: string(rune('a' + i)), DeviceID: e.ID, SHA256: []byte{byte(i)}, NotBefore: now(), NotAfter: now(), IssuedAt: now()}
			err := s.ConsumeSCEPChallenge(ctx, []byte("race"), now(), c)
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, store.ErrSCEPChallengeUsed) {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("the challenge was consumed %d times", ok.Load())
	}
}

func testRateLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	for i := 1; i <= 3; i++ {
		n, start, err := s.RateLimitHit(ctx, "acct:a", time.Minute, t0.Add(time.Duration(i)*time.Second))
		if err != nil || n != i || !start.Equal(t0.Add(time.Second)) {
			t.Fatalf("hit %d: %d %v %v", i, n, start, err)
		}
	}
	if n, _, _ := s.RateLimitCount(ctx, "acct:a", time.Minute, t0.Add(10*time.Second)); n != 3 {
		t.Fatalf("count %d", n)
	}
	if n, _, _ := s.RateLimitCount(ctx, "acct:b", time.Minute, t0); n != 0 {
		t.Fatalf("other key %d", n)
	}
	// After the window a new one starts.
	if n, _, _ := s.RateLimitCount(ctx, "acct:a", time.Minute, t0.Add(2*time.Minute)); n != 0 {
		t.Fatalf("count after window %d", n)
	}
	if n, _, _ := s.RateLimitHit(ctx, "acct:a", time.Minute, t0.Add(2*time.Minute)); n != 1 {
		t.Fatalf("hit after window %d", n)
	}
	if err := s.RateLimitReset(ctx, "acct:a"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.RateLimitCount(ctx, "acct:a", time.Minute, t0.Add(2*time.Minute)); n != 0 {
		t.Fatalf("count after reset %d", n)
	}
	// Concurrent hits on one key (every device behind one NAT address
	// signing in at once) all succeed, are all counted, and each sees its
	// own count: a hit is one atomic statement, never a transaction that
	// can keep conflicting (the 200 sign-ins of a PostgreSQL bench once
	// got "transaction kept conflicting" → HTTP 500 from the old
	// read-then-write).
	const hits = 200
	var wg sync.WaitGroup
	seen := make([]int, hits)
	errs := make(chan error, hits)
	for i := 0; i < hits; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, _, err := s.RateLimitHit(ctx, "ip:x", time.Hour, t0)
			if err != nil {
				errs <- err
				return
			}
			if n >= 1 && n <= hits {
				seen[n-1]++ // distinct n: each index written by one goroutine at most
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent hit: %v", err)
	}
	if n, _, _ := s.RateLimitCount(ctx, "ip:x", time.Hour, t0); n != hits {
		t.Fatalf("concurrent hits counted %d, want %d", n, hits)
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("count %d returned to %d hits, want 1", i+1, c)
		}
	}
}

// testRateLimitUndo: a hit taken back lowers its own window's count, never
// below zero, and never a later window's.
func testRateLimitUndo(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	count := func(at time.Time) int {
		n, _, err := s.RateLimitCount(ctx, "u", time.Minute, at)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	_, start, _ := s.RateLimitHit(ctx, "u", time.Minute, t0)
	s.RateLimitHit(ctx, "u", time.Minute, t0.Add(time.Second))
	if err := s.RateLimitUndo(ctx, "u", start); err != nil || count(t0.Add(2*time.Second)) != 1 {
		t.Fatalf("after one undo: count %d err %v, want 1", count(t0.Add(2*time.Second)), err)
	}
	s.RateLimitUndo(ctx, "u", start)
	s.RateLimitUndo(ctx, "u", start)
	if n := count(t0.Add(2 * time.Second)); n != 0 {
		t.Fatalf("after more undos than hits: count %d, want 0", n)
	}
	if n, _, _ := s.RateLimitHit(ctx, "u", time.Minute, t0.Add(3*time.Second)); n != 1 {
		t.Fatalf("hit after the undos: %d, want 1 (the count went below zero)", n)
	}
	// A new window: an undo of the old window's hit changes nothing.
	_, start2, _ := s.RateLimitHit(ctx, "u", time.Minute, t0.Add(2*time.Minute))
	if err := s.RateLimitUndo(ctx, "u", start); err != nil || count(start2) != 1 {
		t.Fatalf("undo of an ended window's hit: count %d err %v, want 1", count(start2), err)
	}
	if err := s.RateLimitUndo(ctx, "gone", start); err != nil {
		t.Fatalf("undo of a missing key: %v", err)
	}
}

// testRateLimitPrune: counters whose window started before the cut are
// deleted, at most max per call; a running window keeps its count.
func testRateLimitPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	for i := 0; i < 5; i++ {
		s.RateLimitHit(ctx, fmt.Sprintf("old:%d", i), time.Minute, t0)
	}
	s.RateLimitHit(ctx, "new", time.Minute, t0.Add(time.Minute))
	s.RateLimitHit(ctx, "new", time.Minute, t0.Add(time.Minute))
	cut := t0.Add(time.Second)
	if n, err := s.RateLimitPrune(ctx, cut, 3); err != nil || n != 3 {
		t.Fatalf("first prune: %d %v, want 3 (max)", n, err)
	}
	if n, err := s.RateLimitPrune(ctx, cut, 3); err != nil || n != 2 {
		t.Fatalf("second prune: %d %v, want the other 2", n, err)
	}
	if n, err := s.RateLimitPrune(ctx, cut, 3); err != nil || n != 0 {
		t.Fatalf("third prune: %d %v, want 0", n, err)
	}
	if n, _, _ := s.RateLimitCount(ctx, "new", time.Minute, t0.Add(time.Minute)); n != 2 {
		t.Fatalf("running window's count after the prunes: %d, want 2", n)
	}
	// Pruned keys start again from nothing.
	if n, _, _ := s.RateLimitHit(ctx, "old:0", time.Minute, t0.Add(time.Minute)); n != 1 {
		t.Fatalf("hit of a pruned key: %d, want 1", n)
	}
}

func testTOTPLastStep(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.TOTPLastStep = 58_000_123; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.User(ctx, u.ID); got.TOTPLastStep != 58_000_123 {
		t.Fatalf("TOTPLastStep %d", got.TOTPLastStep)
	}
}
