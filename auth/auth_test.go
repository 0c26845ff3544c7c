package auth_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/totp"
)

type fixture struct {
	st    *sqlstore.Store
	svc   *auth.Service
	dir   *directory.Service
	clock time.Time
	t1    *store.Tenant
	alice *store.User
}

func setup(t *testing.T) *fixture {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, _ := seal.ParseKey(seal.NewKey())
	sealer, _ := seal.New(k)
	f := &fixture{st: st, clock: time.Unix(1_800_000_000, 0)}
	f.svc = auth.New(st, sealer, password.Fast)
	f.svc.Now = func() time.Time { return f.clock }
	f.dir = directory.New(st)
	f.dir.Password = password.Fast
	f.t1, _ = f.dir.CreateTenant(ctx, directory.TenantInput{Name: "One", Domains: []string{"one.example"}})
	f.dir.CreateTenant(ctx, directory.TenantInput{Name: "Two", Domains: []string{"two.example"}})
	f.alice, err = f.dir.CreateUser(ctx, directory.UserInput{Email: "alice@one.example", Password: "alice-password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.dir.CreateUser(ctx, directory.UserInput{Email: "bob@two.example", Password: "bob-password"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPasswordAndLimits(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, tenant, email, pw string
		want                    error
	}{
		{"right", f.t1.ID, "alice@one.example", "alice-password", nil},
		{"wrong password", f.t1.ID, "alice@one.example", "nope", auth.ErrBadCredentials},
		{"unknown account", f.t1.ID, "zed@one.example", "alice-password", auth.ErrBadCredentials},
		{"other tenant's user", f.t1.ID, "bob@two.example", "bob-password", auth.ErrBadCredentials},
	} {
		_, err := f.svc.VerifyPassword(ctx, tc.tenant, tc.email, tc.pw, "10.0.0.1")
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Disabled users are refused even with the right password.
	off := false
	f.dir.UpdateUser(ctx, f.alice.ID, directory.UserPatch{Enabled: &off})
	if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", "10.0.0.2"); !errors.Is(err, auth.ErrDisabled) {
		t.Fatalf("disabled: %v", err)
	}
	on := true
	f.dir.UpdateUser(ctx, f.alice.ID, directory.UserPatch{Enabled: &on})

	// Per-account lock-out after 5 failures (one already counted above).
	for i := 0; i < 4; i++ {
		f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "wrong", "10.0.0.3")
	}
	_, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", "10.0.0.4")
	var le *credential.LockedError
	if !errors.As(err, &le) || le.Scope != "account" || le.RetryAfter <= 0 {
		t.Fatalf("after 5 failures: %v", err)
	}
	f.clock = f.clock.Add(16 * time.Minute)
	if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", "10.0.0.4"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// Per-address limit across accounts.
	for i := 0; i < 30; i++ {
		f.svc.VerifyPassword(ctx, f.t1.ID, "spray"+string(rune('a'+i%26))+"@one.example", "x", "10.9.9.9")
	}
	if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", "10.9.9.9"); !errors.As(err, &le) || le.Scope != "address" {
		t.Fatalf("address limit: %v", err)
	}
}

func TestTOTPSetupVerifyAndTokens(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if got := auth.NextStep(f.t1, f.alice); got != auth.SecondFactorSetup {
		t.Fatalf("next step %s", got)
	}
	secret := totp.NewSecret()
	if _, err := f.svc.ConfirmTOTP(ctx, f.alice.ID, secret, "000000", "ip"); !errors.Is(err, auth.ErrBadCode) {
		t.Fatalf("wrong setup code: %v", err)
	}
	if u, _ := f.st.User(ctx, f.alice.ID); u.TOTPSecret != nil {
		t.Fatal("a failed setup stored the secret")
	}
	u, err := f.svc.ConfirmTOTP(ctx, f.alice.ID, secret, totp.Code(secret, f.clock), "ip")
	if err != nil || auth.NextStep(f.t1, u) != auth.SecondFactorVerify {
		t.Fatalf("confirm: %v", err)
	}
	if string(u.TOTPSecret) == string(secret) {
		t.Fatal("TOTP secret stored unsealed")
	}
	// The setup code cannot be replayed; the next step's code works once.
	if _, err := f.svc.VerifyTOTP(ctx, f.alice.ID, totp.Code(secret, f.clock), "ip"); !errors.Is(err, auth.ErrBadCode) {
		t.Fatalf("replayed setup code: %v", err)
	}
	f.clock = f.clock.Add(30 * time.Second)
	code := totp.Code(secret, f.clock)
	if _, err := f.svc.VerifyTOTP(ctx, f.alice.ID, code, "ip"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.VerifyTOTP(ctx, f.alice.ID, code, "ip"); !errors.Is(err, auth.ErrBadCode) {
		t.Fatalf("code reused: %v", err)
	}

	// Tokens.
	tok, err := f.svc.IssueToken(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	h := "Bearer " + tok
	if g, err := f.svc.Authorize(ctx, f.t1.ID, h); err != nil || g.User.ID != f.alice.ID {
		t.Fatalf("authorize: %v", err)
	}
	if got, _ := f.st.User(ctx, f.alice.ID); got.LastSignInAt.IsZero() {
		t.Fatal("last sign-in not recorded")
	}
	for name, hdr := range map[string]string{"missing": "", "malformed": "Bearer abc", "unknown": "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := f.svc.Authorize(ctx, f.t1.ID, hdr); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
	if _, err := f.svc.Authorize(ctx, "tn_other", h); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("other tenant: %v", err)
	}
	// Forced re-authentication revokes; stale access still identifies.
	f.clock = f.clock.Add(time.Second)
	f.dir.Now = func() time.Time { return f.clock }
	f.dir.Reauthenticate(ctx, f.alice.ID)
	if _, err := f.svc.Authorize(ctx, f.t1.ID, h); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if g, err := f.svc.AuthorizeStale(ctx, f.t1.ID, h); err != nil || g.User.ID != f.alice.ID {
		t.Fatalf("stale: %v", err)
	}
	tok2, _ := f.svc.IssueToken(ctx, u)
	if _, err := f.svc.Authorize(ctx, f.t1.ID, "Bearer "+tok2); err != nil {
		t.Fatalf("new token after re-auth: %v", err)
	}
	f.clock = f.clock.Add(auth.DefaultTokenTTL + time.Second)
	if _, err := f.svc.Authorize(ctx, f.t1.ID, "Bearer "+tok2); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("expired token accepted: %v", err)
	}
}

// TestLimitsCountAttemptsNotSuccesses: the limits count a step before it is
// checked (so concurrent guesses cannot all pass one count) and take back
// the steps that succeeded: an office behind one address signs in more
// people than the address's failure limit, and a correct password before
// the code step is no failure; the refused steps count nothing either.
func TestLimitsCountAttemptsNotSuccesses(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", "192.0.2.1"); err != nil {
			t.Fatalf("sign-in %d from one address: %v", i, err)
		}
	}
	for i := 0; i < 4; i++ {
		f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "wrong", "192.0.2.2")
	}
	if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", "192.0.2.2"); err != nil {
		t.Fatalf("right password after 4 failures: %v", err)
	}
	f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "wrong", "192.0.2.2")
	var le *credential.LockedError
	for i := 0; i < 3; i++ { // refused steps: not counted, the lock does not grow
		if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "wrong", "192.0.2.2"); !errors.As(err, &le) {
			t.Fatalf("after 5 failures: %v", err)
		}
	}
	if n, _, _ := f.st.RateLimitCount(ctx, "signin:acct:alice@one.example", 15*time.Minute, f.clock); n != 5 {
		t.Fatalf("account counter %d after 5 failures and 3 refusals, want 5", n)
	}
}

// TestLimitsConcurrentCodes: someone holding the password sends many TOTP
// codes at once; at most the account's limit of them is checked.
func TestLimitsConcurrentCodes(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	secret := totp.NewSecret()
	if _, err := f.svc.ConfirmTOTP(ctx, f.alice.ID, secret, totp.Code(secret, f.clock), "ip"); err != nil {
		t.Fatal(err)
	}
	f.clock = f.clock.Add(2 * time.Minute)
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		valid[totp.Code(secret, f.clock.Add(d))] = true
	}
	var bad, locked atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code := fmt.Sprintf("%06d", i)
			if valid[code] {
				code = "abcdef"
			}
			_, err := f.svc.VerifyTOTP(ctx, f.alice.ID, code, fmt.Sprintf("10.1.%d.%d", i/200, i%200))
			var le *credential.LockedError
			switch {
			case errors.Is(err, auth.ErrBadCode):
				bad.Add(1)
			case errors.As(err, &le):
				locked.Add(1)
			default:
				t.Errorf("code %s: %v", code, err)
			}
		}(i)
	}
	wg.Wait()
	if bad.Load() > 5 || bad.Load()+locked.Load() != 60 {
		t.Fatalf("%d codes checked and %d refused, want at most 5 checked", bad.Load(), locked.Load())
	}
}

// TestLimitsPerIPv6Slash64: the per-address limit counts an IPv6 client by
// its /64 (which one host can rotate through freely), IPv4 by address.
func TestLimitsPerIPv6Slash64(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		ip := fmt.Sprintf("2001:db8:1:2:%x::%x", i, i+1)
		f.svc.VerifyPassword(ctx, f.t1.ID, fmt.Sprintf("spray%d@one.example", i), "x", ip)
	}
	var le *credential.LockedError
	for _, ip := range []string{"2001:db8:1:2:ffff::1", "2001:db8:1:2::1%eth0"} {
		if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", ip); !errors.As(err, &le) || le.Scope != "address" {
			t.Fatalf("%s, in the /64 that failed 30 times: %v", ip, err)
		}
	}
	for _, ip := range []string{"2001:db8:1:3::1", "192.0.2.9", "::ffff:192.0.2.10"} {
		if _, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", ip); err != nil {
			t.Fatalf("%s, another network: %v", ip, err)
		}
	}
	for k, want := range map[string]string{"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64", "fe80::1%eth0": "fe80::/64",
		"::ffff:192.0.2.10": "192.0.2.10", "192.0.2.10": "192.0.2.10", "not an address": "not an address"} {
		if got := credential.AddressKey(k); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", k, got, want)
		}
	}
}

// heldStore holds UserByEmail for requests whose context carries holdKey
// until release is closed: a guess whose check is in flight.
type heldStore struct {
	*sqlstore.Store
	entered chan struct{}
	release chan struct{}
}

type holdKey struct{}

func (h *heldStore) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	if ctx.Value(holdKey{}) != nil {
		h.entered <- struct{}{}
		<-h.release
	}
	return h.Store.UserByEmail(ctx, email)
}

// TestGuessesInFlightSurviveSuccessReset: wrong passwords being checked
// while the person signs in and gets a token stay counted once they fail.
// Before, the success's reset deleted the counter under them: each of the
// person's sign-ins forgave every guess in flight (here 3 of 5).
func TestGuessesInFlightSurviveSuccessReset(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	h := &heldStore{Store: f.st, entered: make(chan struct{}), release: make(chan struct{})}
	f.svc.Store = h
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gctx := context.WithValue(ctx, holdKey{}, true)
			if _, err := f.svc.VerifyPassword(gctx, f.t1.ID, "alice@one.example", "guess", "203.0.113.9"); !errors.Is(err, auth.ErrBadCredentials) {
				t.Errorf("guess: %v", err)
			}
		}()
	}
	for i := 0; i < 3; i++ {
		<-h.entered
	}
	u, err := f.svc.VerifyPassword(ctx, f.t1.ID, "alice@one.example", "alice-password", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.IssueToken(ctx, u); err != nil {
		t.Fatal(err)
	}
	// Real time moves on while a password is checked; a clock that stood
	// still would begin the window the failures count again in at the very
	// start they were first counted in, and Failed could not tell it from
	// theirs (the test once passed or failed with the goroutines' order).
	f.clock = f.clock.Add(time.Second)
	close(h.release)
	wg.Wait()
	if n, _, _ := f.st.RateLimitCount(ctx, "signin:acct:alice@one.example", 15*time.Minute, f.clock); n != 3 {
		t.Fatalf("account counter %d after 3 guesses that failed after the reset, want 3", n)
	}
}
