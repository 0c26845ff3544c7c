package adminaccount_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/totp"
)

type fixture struct {
	svc   *adminaccount.Service
	st    store.Store
	clock time.Time
}

func setup(t *testing.T) *fixture {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, _ := seal.ParseKey(seal.NewKey())
	sealer, _ := seal.New(k)
	f := &fixture{st: st, clock: time.Unix(1_800_000_000, 0)}
	f.svc = adminaccount.New(st, sealer, password.Fast)
	f.svc.Now = func() time.Time { return f.clock }
	return f
}

// ready invites and sets up an account, returning it and its TOTP secret.
func (f *fixture) ready(t *testing.T, email, role string) (*store.Admin, []byte) {
	t.Helper()
	ctx := context.Background()
	_, tok, err := f.svc.Invite(ctx, email, "", role)
	if err != nil {
		t.Fatal(err)
	}
	secret := totp.NewSecret()
	a, err := f.svc.CompleteSetup(ctx, tok, "", "a long console password", secret, totp.Code(secret, f.clock), "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	f.clock = f.clock.Add(totp.Period * time.Second) // next code
	return a, secret
}

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		role string
		want [4]bool // Read, Support, Manage, Accounts
	}{
		{store.RoleOwner, [4]bool{true, true, true, true}},
		{store.RoleAdmin, [4]bool{true, true, true, false}},
		{store.RoleHelpDesk, [4]bool{true, true, false, false}},
		{store.RoleAuditor, [4]bool{true, false, false, false}},
		{"root", [4]bool{}},
	} {
		for p, want := range c.want {
			if got := adminaccount.Can(c.role, adminaccount.Permission(p)); got != want {
				t.Errorf("Can(%s, %d) = %v", c.role, p, got)
			}
		}
	}
}

func TestSetupLink(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, _, err := f.svc.Invite(ctx, "not-an-email", "", store.RoleOwner); err == nil {
		t.Fatal("bad email accepted")
	}
	if _, _, err := f.svc.Invite(ctx, "x@ops.example", "", "root"); err == nil {
		t.Fatal("bad role accepted")
	}
	a, tok, err := f.svc.Invite(ctx, "Root@Ops.Example", "Root", store.RoleOwner)
	if err != nil || a.Email != "root@ops.example" || a.Ready() {
		t.Fatal(a, err)
	}
	if _, _, err := f.svc.Invite(ctx, "root@ops.example", "", store.RoleOwner); !errors.Is(err, store.ErrConflict) {
		t.Fatal("duplicate:", err)
	}
	secret := totp.NewSecret()
	// 11 characters: a device user's password may be that short, a console
	// account's may not.
	if _, err := f.svc.CompleteSetup(ctx, tok, "", "elevenchars", secret, totp.Code(secret, f.clock), "ip"); err == nil || !strings.Contains(err.Error(), "at least 12") {
		t.Fatalf("an 11-character console password: %v", err)
	}
	if _, err := f.svc.CompleteSetup(ctx, tok, "", "short", secret, totp.Code(secret, f.clock), "ip"); err == nil {
		t.Fatal("short password accepted")
	}
	if _, err := f.svc.CompleteSetup(ctx, tok, "", "a long console password", secret, "000000", "ip"); err == nil {
		t.Fatal("wrong code accepted")
	}
	if _, err := f.svc.CompleteSetup(ctx, "forged", "", "a long console password", secret, totp.Code(secret, f.clock), "ip"); !errors.Is(err, adminaccount.ErrBadSetupLink) {
		t.Fatal(err)
	}
	if _, err := f.svc.CompleteSetup(ctx, tok, "", "a long console password", secret, totp.Code(secret, f.clock), "ip"); err != nil {
		t.Fatal(err)
	}
	// The link works once.
	if _, err := f.svc.SetupAccount(ctx, tok); !errors.Is(err, adminaccount.ErrBadSetupLink) {
		t.Fatal("reused setup link:", err)
	}
	// Expired links fail.
	_, tok2, _ := f.svc.Invite(ctx, "late@ops.example", "", store.RoleAuditor)
	f.clock = f.clock.Add(adminaccount.DefaultSetupTTL + time.Second)
	if _, err := f.svc.SetupAccount(ctx, tok2); !errors.Is(err, adminaccount.ErrBadSetupLink) {
		t.Fatal("expired link:", err)
	}
}

func TestSignInSessionsAndReset(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	a, secret := f.ready(t, "root@ops.example", store.RoleOwner)
	code := totp.Code(secret, f.clock)
	if _, err := f.svc.SignIn(ctx, "root@ops.example", "wrong password!", code, "ip"); !errors.Is(err, adminaccount.ErrBadCredentials) {
		t.Fatal(err)
	}
	if _, err := f.svc.SignIn(ctx, "root@ops.example", "a long console password", "123456", "ip"); !errors.Is(err, adminaccount.ErrBadCredentials) {
		t.Fatal(err)
	}
	if _, err := f.svc.SignIn(ctx, "nobody@ops.example", "a long console password", code, "ip"); !errors.Is(err, adminaccount.ErrBadCredentials) {
		t.Fatal(err)
	}
	if _, err := f.svc.SignIn(ctx, "ROOT@ops.example", "a long console password", code, "ip"); err != nil {
		t.Fatal(err)
	}
	// The same code does not work twice.
	if _, err := f.svc.SignIn(ctx, "root@ops.example", "a long console password", code, "ip"); !errors.Is(err, adminaccount.ErrBadCredentials) {
		t.Fatal("code replayed:", err)
	}
	cookie, err := f.svc.StartSession(ctx, a, "ip")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.Session(ctx, cookie); err != nil || got.ID != a.ID {
		t.Fatal(got, err)
	}
	if _, err := f.svc.Session(ctx, cookie+"x"); !errors.Is(err, adminaccount.ErrNoSession) {
		t.Fatal(err)
	}
	if adminaccount.CSRFToken(cookie) == adminaccount.CSRFToken(cookie+"x") || adminaccount.CSRFToken(cookie) == "" {
		t.Fatal("CSRF token")
	}
	// Activity keeps the session; idleness ends it.
	f.clock = f.clock.Add(20 * time.Minute)
	if _, err := f.svc.Session(ctx, cookie); err != nil {
		t.Fatal("active session ended:", err)
	}
	f.clock = f.clock.Add(31 * time.Minute)
	if _, err := f.svc.Session(ctx, cookie); !errors.Is(err, adminaccount.ErrNoSession) {
		t.Fatal("idle session lives:", err)
	}
	// Absolute lifetime.
	cookie, _ = f.svc.StartSession(ctx, a, "ip")
	for i := 0; i < 26; i++ {
		f.clock = f.clock.Add(29 * time.Minute)
		f.svc.Session(ctx, cookie)
	}
	if _, err := f.svc.Session(ctx, cookie); !errors.Is(err, adminaccount.ErrNoSession) {
		t.Fatal("session outlived its lifetime:", err)
	}
	// A reset ends sessions and the old password.
	cookie, _ = f.svc.StartSession(ctx, a, "ip")
	if _, _, err := f.svc.ResetSetup(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Session(ctx, cookie); !errors.Is(err, adminaccount.ErrNoSession) {
		t.Fatal("session survived a reset:", err)
	}
	f.clock = f.clock.Add(time.Minute)
	if _, err := f.svc.SignIn(ctx, "root@ops.example", "a long console password", totp.Code(secret, f.clock), "ip"); !errors.Is(err, adminaccount.ErrBadCredentials) {
		t.Fatal("signed in after reset:", err)
	}
}

func TestRateLimit(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	_, secret := f.ready(t, "root@ops.example", store.RoleOwner)
	for i := 0; i < 5; i++ {
		f.svc.SignIn(ctx, "root@ops.example", "wrong password!", "000000", "ip")
	}
	_, err := f.svc.SignIn(ctx, "root@ops.example", "a long console password", totp.Code(secret, f.clock), "ip")
	var locked *credential.LockedError
	if !errors.As(err, &locked) || locked.Scope != "account" {
		t.Fatal("not locked:", err)
	}
}

func TestLastOwnerAndSelf(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	root, _ := f.ready(t, "root@ops.example", store.RoleOwner)
	other, _ := f.ready(t, "other@ops.example", store.RoleAdmin)
	off, admin, owner := false, store.RoleAdmin, store.RoleOwner
	if _, err := f.svc.Update(ctx, root.ID, root.ID, &admin, nil); !errors.Is(err, adminaccount.ErrSelf) {
		t.Fatal(err)
	}
	if _, err := f.svc.Update(ctx, other.ID, root.ID, nil, &off); !errors.Is(err, adminaccount.ErrLastOwner) {
		t.Fatal("last owner disabled:", err)
	}
	if _, err := f.svc.Update(ctx, root.ID, other.ID, &owner, nil); err != nil {
		t.Fatal(err)
	}
	cookie, _ := f.svc.StartSession(ctx, root, "ip")
	if _, err := f.svc.Update(ctx, other.ID, root.ID, nil, &off); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Session(ctx, cookie); !errors.Is(err, adminaccount.ErrNoSession) {
		t.Fatal("disabled account keeps its session")
	}
}

func TestFirstOwner(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	tok, err := f.svc.InviteFirstOwner(ctx)
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	if again, err := f.svc.InviteFirstOwner(ctx); err != nil || again != "" {
		t.Fatal("second first-owner link:", again, err)
	}
	secret := totp.NewSecret()
	if _, err := f.svc.CompleteSetup(ctx, tok, "", "a long console password", secret, totp.Code(secret, f.clock), "ip"); err == nil {
		t.Fatal("first owner without an email")
	}
	a, err := f.svc.CompleteSetup(ctx, tok, "Boss@Ops.Example", "a long console password", secret, totp.Code(secret, f.clock), "ip")
	if err != nil || a.Email != "boss@ops.example" || a.Role != store.RoleOwner || !a.Ready() {
		t.Fatal(a, err)
	}
}

// TestRateLimitConcurrent: someone who knows an administrator's password
// sends many TOTP codes at once (one address each); at most the account's
// limit of them is checked, the rest are refused as locked.
func TestRateLimitConcurrent(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	_, secret := f.ready(t, "root@ops.example", store.RoleOwner)
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
			_, err := f.svc.SignIn(ctx, "root@ops.example", "a long console password", code, fmt.Sprintf("10.2.0.%d", i))
			var le *credential.LockedError
			switch {
			case errors.Is(err, adminaccount.ErrBadCredentials):
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
