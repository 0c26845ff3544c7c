package auth_test

import (
	"context"
	"errors"
	"path/filepath"
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
