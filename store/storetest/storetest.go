// Package storetest is the contract every store.Store backend must meet.
// A backend's test calls Run with a constructor that returns a fresh,
// empty store; the same tests then run unchanged on SQLite, PostgreSQL
// and anything that comes later.
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

// Run runs the whole contract against stores made by newStore, one per
// sub-test.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"TenantCreateGet", testTenantCreateGet},
		{"TenantDomainUnique", testTenantDomainUnique},
		{"TenantUpdate", testTenantUpdate},
		{"TenantUpdateRollsBack", testTenantUpdateRollsBack},
		{"TenantDelete", testTenantDelete},
		{"TenantBranding", testTenantBranding},
		{"UserCreateGet", testUserCreateGet},
		{"UserDomainMustBelongToTenant", testUserDomain},
		{"UserEmailUnique", testUserEmailUnique},
		{"UserUpdate", testUserUpdate},
		{"UserListFilterPaginate", testUserList},
		{"UserDelete", testUserDelete},
		{"APIKeys", testAPIKeys},
		{"Secrets", testSecrets},
		{"ConcurrentDomainClaims", testConcurrentDomainClaims},
		{"ConcurrentUserUpdates", testConcurrentUserUpdates},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s.Backend() == "" {
				t.Fatal("Backend() is empty")
			}
		}},
	}
	for _, nt := range append(append(append(append(append(append(append(append(append(append(enrollmentTests(), mdmTests()...), adminTests()...), ownershipTests()...), tombstoneTests()...), deviceRequestTests()...), profileTests()...), lifecycleTests()...), abmTests()...), profileAdminTests()...), chunkedMarkTests()...) {
		tests = append(tests, struct {
			name string
			fn   func(t *testing.T, s store.Store)
		}{nt.name, nt.fn})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, s)
		})
	}
}

var seq atomic.Int64

func id(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

// now is truncated to microseconds: the precision every backend keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func mustTenant(t *testing.T, s store.Store, name string, domains ...string) *store.Tenant {
	t.Helper()
	tn := &store.Tenant{ID: id("t"), Name: name, Domains: domains, RequireSecondFactor: true, CreatedAt: now(), UpdatedAt: now()}
	if err := s.CreateTenant(context.Background(), tn); err != nil {
		t.Fatalf("CreateTenant(%s): %v", name, err)
	}
	return tn
}

func mustUser(t *testing.T, s store.Store, tenantID, email string) *store.User {
	t.Helper()
	u := &store.User{ID: id("u"), TenantID: tenantID, Email: email, ManagedAppleID: email, Name: "N " + email,
		PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", Enabled: true, CreatedAt: now(), UpdatedAt: now()}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func testTenantCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "Example Corp", "example.com", "corp.example.net")
	got, err := s.Tenant(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Example Corp" || !got.RequireSecondFactor || !got.CreatedAt.Equal(tn.CreatedAt) {
		t.Fatalf("got %+v", got)
	}
	if fmt.Sprint(got.Domains) != "[corp.example.net example.com]" {
		t.Fatalf("domains %v, want sorted [corp.example.net example.com]", got.Domains)
	}
	byDomain, err := s.TenantByDomain(ctx, "corp.example.net")
	if err != nil || byDomain.ID != tn.ID {
		t.Fatalf("TenantByDomain = %v, %v", byDomain, err)
	}
	_, err = s.TenantByDomain(ctx, "nobody.example")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Tenant(ctx, "missing")
	wantErr(t, err, store.ErrNotFound)

	mustTenant(t, s, "Another", "another.example")
	list, err := s.Tenants(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Tenants = %d, %v", len(list), err)
	}
	if list[0].Name != "Another" || len(list[1].Domains) != 2 {
		t.Fatalf("Tenants not ordered by name with domains: %+v", list)
	}
	if n, err := s.CountTenants(ctx); err != nil || n != 2 {
		t.Fatalf("CountTenants = %d, %v", n, err)
	}
}

func testTenantDomainUnique(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustTenant(t, s, "A", "a.example")
	dup := &store.Tenant{ID: id("t"), Name: "B", Domains: []string{"b.example", "a.example"}, CreatedAt: now(), UpdatedAt: now()}
	wantErr(t, s.CreateTenant(ctx, dup), store.ErrConflict)
	// Nothing of the failed tenant may remain.
	if _, err := s.Tenant(ctx, dup.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("half-written tenant: %v", err)
	}
	if _, err := s.TenantByDomain(ctx, "b.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("half-written domain: %v", err)
	}
}

func testTenantUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example", "old.example")
	mustTenant(t, s, "Other", "other.example")
	later := now().Add(time.Second)
	got, err := s.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error {
		x.Name = "A2"
		x.RequireSecondFactor = false
		x.Domains = []string{"new.example", "a.example"}
		x.UpdatedAt = later
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "A2" || got.RequireSecondFactor || fmt.Sprint(got.Domains) != "[a.example new.example]" {
		t.Fatalf("UpdateTenant returned %+v", got)
	}
	re, _ := s.Tenant(ctx, tn.ID)
	if re.Name != "A2" || fmt.Sprint(re.Domains) != "[a.example new.example]" || !re.UpdatedAt.Equal(later) {
		t.Fatalf("stored %+v", re)
	}
	if _, err := s.TenantByDomain(ctx, "old.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("removed domain still resolves")
	}
	_, err = s.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error { x.Domains = append(x.Domains, "other.example"); return nil })
	wantErr(t, err, store.ErrConflict)
	_, err = s.UpdateTenant(ctx, "missing", func(x *store.Tenant) error { return nil })
	wantErr(t, err, store.ErrNotFound)
}

func testTenantUpdateRollsBack(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example", "b.example")
	mustUser(t, s, tn.ID, "alice@b.example")
	// Renaming and dropping a domain that has a user must fail as a whole.
	_, err := s.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error {
		x.Name = "renamed"
		x.Domains = []string{"a.example", "c.example"}
		return nil
	})
	wantErr(t, err, store.ErrInUse)
	re, _ := s.Tenant(ctx, tn.ID)
	if re.Name != "A" || fmt.Sprint(re.Domains) != "[a.example b.example]" {
		t.Fatalf("failed update left changes: %+v", re)
	}
	// An error from fn aborts too.
	boom := errors.New("boom")
	_, err = s.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error { x.Name = "x"; return boom })
	wantErr(t, err, boom)
	if re, _ := s.Tenant(ctx, tn.ID); re.Name != "A" {
		t.Fatal("fn error did not roll back")
	}
}

func testTenantDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	wantErr(t, s.DeleteTenant(ctx, tn.ID, false, store.Ending{}), store.ErrInUse)
	if _, err := s.User(ctx, u.ID); err != nil {
		t.Fatal("refused delete removed the user")
	}
	if err := s.DeleteTenant(ctx, tn.ID, true, store.Ending{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("cascade left the user")
	}
	if _, err := s.TenantByDomain(ctx, "a.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("deleted tenant's domain still resolves")
	}
	wantErr(t, s.DeleteTenant(ctx, tn.ID, false, store.Ending{}), store.ErrNotFound)
	// The domain is free again.
	mustTenant(t, s, "B", "a.example")
}

func testUserCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice+work@a.example")
	got, err := s.User(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != u.Email || got.TenantID != tn.ID || got.PasswordHash != u.PasswordHash || !got.Enabled ||
		got.TOTPSecret != nil || !got.TOTPConfirmedAt.IsZero() || !got.LastSignInAt.IsZero() || !got.CreatedAt.Equal(u.CreatedAt) {
		t.Fatalf("got %+v want %+v", got, u)
	}
	byEmail, err := s.UserByEmail(ctx, "alice+work@a.example")
	if err != nil || byEmail.ID != u.ID {
		t.Fatalf("UserByEmail = %v, %v", byEmail, err)
	}
	_, err = s.UserByEmail(ctx, "bob@a.example")
	wantErr(t, err, store.ErrNotFound)
	if n, _ := s.CountUsers(ctx); n != 1 {
		t.Fatalf("CountUsers = %d", n)
	}
}

func testUserDomain(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustTenant(t, s, "A", "a.example")
	mustTenant(t, s, "B", "b.example")
	u := &store.User{ID: id("u"), TenantID: a.ID, Email: "x@b.example", ManagedAppleID: "x@b.example", Enabled: true, CreatedAt: now(), UpdatedAt: now()}
	wantErr(t, s.CreateUser(ctx, u), store.ErrNotFound)
	u.TenantID = "missing"
	wantErr(t, s.CreateUser(ctx, u), store.ErrNotFound)
	if n, _ := s.CountUsers(ctx); n != 0 {
		t.Fatal("refused user was stored")
	}
}

func testUserEmailUnique(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	first := mustUser(t, s, tn.ID, "alice@a.example")
	dup := &store.User{ID: id("u"), TenantID: tn.ID, Email: "alice@a.example", ManagedAppleID: "other@a.example", Enabled: true, CreatedAt: now(), UpdatedAt: now()}
	wantErr(t, s.CreateUser(ctx, dup), store.ErrConflict)
	got, _ := s.User(ctx, first.ID)
	if got.ManagedAppleID != "alice@a.example" {
		t.Fatal("conflicting create changed the existing user")
	}
}

func testUserUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example", "a2.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	mustUser(t, s, tn.ID, "bob@a.example")
	signIn := now().Add(time.Minute)
	got, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.Name = "Alice"
		x.Email = "alice@a2.example"
		x.ManagedAppleID = "alice@appleid.example"
		x.TOTPSecret = []byte{1, 2, 3}
		x.TOTPConfirmedAt = signIn
		x.Enabled = false
		x.TokensNotBefore = signIn
		x.LastSignInAt = signIn
		x.PasswordHash = "new"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	re, _ := s.User(ctx, u.ID)
	for _, x := range []*store.User{got, re} {
		if x.Name != "Alice" || x.Email != "alice@a2.example" || x.ManagedAppleID != "alice@appleid.example" ||
			string(x.TOTPSecret) != "\x01\x02\x03" || !x.TOTPConfirmedAt.Equal(signIn) || x.Enabled ||
			!x.TokensNotBefore.Equal(signIn) || !x.LastSignInAt.Equal(signIn) || x.PasswordHash != "new" {
			t.Fatalf("update not kept: %+v", x)
		}
	}
	// Clearing the second factor really clears it.
	re, err = s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.TOTPSecret = nil; x.TOTPConfirmedAt = time.Time{}; return nil })
	if err != nil || re.TOTPSecret != nil || !re.TOTPConfirmedAt.IsZero() {
		t.Fatalf("clear TOTP: %+v %v", re, err)
	}
	_, err = s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Email = "bob@a.example"; return nil })
	wantErr(t, err, store.ErrConflict)
	_, err = s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Email = "alice@elsewhere.example"; return nil })
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateUser(ctx, "missing", func(x *store.User) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	if re, _ := s.User(ctx, u.ID); re.Email != "alice@a2.example" {
		t.Fatal("refused update changed the user")
	}
}

func testUserList(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustTenant(t, s, "A", "a.example")
	b := mustTenant(t, s, "B", "b.example")
	for _, e := range []string{"c@a.example", "a@a.example", "b@a.example", "d@a.example"} {
		mustUser(t, s, a.ID, e)
	}
	mustUser(t, s, b.ID, "z@b.example")
	all, err := s.Users(ctx, store.UserFilter{})
	if err != nil || len(all) != 5 {
		t.Fatalf("all users: %d %v", len(all), err)
	}
	page1, _ := s.Users(ctx, store.UserFilter{TenantID: a.ID, Limit: 3})
	if len(page1) != 3 || page1[0].Email != "a@a.example" || page1[2].Email != "c@a.example" {
		t.Fatalf("page1 %v", emails(page1))
	}
	page2, _ := s.Users(ctx, store.UserFilter{TenantID: a.ID, Limit: 3, After: page1[2].Email})
	if len(page2) != 1 || page2[0].Email != "d@a.example" {
		t.Fatalf("page2 %v", emails(page2))
	}
	one, _ := s.Users(ctx, store.UserFilter{Email: "z@b.example"})
	if len(one) != 1 || one[0].TenantID != b.ID {
		t.Fatalf("by email %v", emails(one))
	}
	none, err := s.Users(ctx, store.UserFilter{TenantID: b.ID, Email: "a@a.example"})
	if err != nil || len(none) != 0 {
		t.Fatalf("crossed filter %v %v", emails(none), err)
	}
}

func emails(us []store.User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Email)
	}
	return out
}

func testUserDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	if err := s.DeleteUser(ctx, u.ID, store.Ending{}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteUser(ctx, u.ID, store.Ending{}), store.ErrNotFound)
	// The domain is no longer in use.
	if _, err := s.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error { x.Domains = []string{"b.example"}; return nil }); err != nil {
		t.Fatal(err)
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := &store.APIKey{ID: "k1", Name: "ci", SecretHash: []byte{9, 9}, CreatedAt: now()}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateAPIKey(ctx, &store.APIKey{ID: "k1", Name: "dup", SecretHash: []byte{1}, CreatedAt: now()}), store.ErrConflict)
	got, err := s.APIKey(ctx, "k1")
	if err != nil || got.Name != "ci" || string(got.SecretHash) != "\x09\x09" || !got.RevokedAt.IsZero() {
		t.Fatalf("APIKey = %+v, %v", got, err)
	}
	used := now().Add(time.Second)
	if err := s.TouchAPIKey(ctx, "k1", used); err != nil {
		t.Fatal(err)
	}
	rev := now().Add(2 * time.Second)
	if err := s.RevokeAPIKey(ctx, "k1", rev); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, "k1", rev.Add(time.Hour)); err != nil {
		t.Fatal("second revoke:", err)
	}
	got, _ = s.APIKey(ctx, "k1")
	if !got.LastUsedAt.Equal(used) || !got.RevokedAt.Equal(rev) {
		t.Fatalf("after touch+revoke %+v", got)
	}
	wantErr(t, s.RevokeAPIKey(ctx, "nope", rev), store.ErrNotFound)
	_, err = s.APIKey(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
	s.CreateAPIKey(ctx, &store.APIKey{ID: "k2", Name: "b", SecretHash: []byte{2}, CreatedAt: now().Add(time.Minute)})
	list, err := s.APIKeys(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "k1" {
		t.Fatalf("APIKeys = %+v %v", list, err)
	}
	if n, _ := s.CountAPIKeys(ctx); n != 2 {
		t.Fatalf("CountAPIKeys = %d", n)
	}
}

func testSecrets(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.Secret(ctx, "ca")
	wantErr(t, err, store.ErrNotFound)
	if err := s.CreateSecret(ctx, "ca", []byte("one")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateSecret(ctx, "ca", []byte("two")), store.ErrConflict)
	if v, _ := s.Secret(ctx, "ca"); string(v) != "one" {
		t.Fatalf("CreateSecret overwrote: %q", v)
	}
	if err := s.PutSecret(ctx, "ca", []byte("three")); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Secret(ctx, "ca"); string(v) != "three" {
		t.Fatalf("PutSecret: %q", v)
	}
	if err := s.PutSecret(ctx, "new", []byte{0, 255}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Secret(ctx, "new"); string(v) != "\x00\xff" {
		t.Fatalf("binary secret: %q", v)
	}
}

// Two tenants racing for one domain: exactly one wins.
func testConcurrentDomainClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	var won atomic.Int32
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tn := &store.Tenant{ID: id("t"), Name: fmt.Sprint("T", i), Domains: []string{"contested.example"}, CreatedAt: now(), UpdatedAt: now()}
			err := s.CreateTenant(ctx, tn)
			if err == nil {
				won.Add(1)
			} else if !errors.Is(err, store.ErrConflict) {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("unexpected error: %v", err)
	}
	if won.Load() != 1 {
		t.Fatalf("%d tenants claimed the domain", won.Load())
	}
	if n, _ := s.CountTenants(ctx); n != 1 {
		t.Fatalf("%d tenants stored", n)
	}
}

// Concurrent read-modify-writes of one user lose no update.
func testConcurrentUserUpdates(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	const n = 20
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Name += "x"; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ := s.User(ctx, u.ID)
	if want := "N alice@a.example"; len(got.Name) != len(want)+n {
		t.Fatalf("lost updates: name %q has %d x, want %d", got.Name, len(got.Name)-len(want), n)
	}
}

func testTenantBranding(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := &store.Tenant{ID: id("t"), Name: "B", Domains: []string{"b.example"}, CreatedAt: now(), UpdatedAt: now(),
		AccentColor: "#0057b8", Contact: "IT help desk: extension 4357", PrivacyURL: "https://b.example/privacy"}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	got, err := s.Tenant(ctx, tn.ID)
	if err != nil || got.AccentColor != "#0057b8" || got.Contact != tn.Contact || got.PrivacyURL != tn.PrivacyURL || !got.LogoUpdatedAt.IsZero() {
		t.Fatalf("created %+v %v", got, err)
	}
	// UpdateTenant changes the branding and keeps it through other changes.
	if _, err := s.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error { x.AccentColor, x.PrivacyURL = "#003366", ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error { x.Name = "B2"; return nil }); err != nil {
		t.Fatal(err)
	}
	got, _ = s.TenantByDomain(ctx, "b.example")
	if got.AccentColor != "#003366" || got.PrivacyURL != "" || got.Contact != tn.Contact || got.Name != "B2" {
		t.Fatalf("after updates %+v", got)
	}

	// The logo: none, set, replaced, listed through LogoUpdatedAt, removed.
	_, err = s.TenantLogo(ctx, tn.ID)
	wantErr(t, err, store.ErrNotFound)
	png := []byte("\x89PNG\r\n\x1a\n\x00binary\xff")
	at := now()
	if err := s.SetTenantLogo(ctx, tn.ID, &store.Logo{ContentType: "image/png", Data: png, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	later := at.Add(time.Second)
	if err := s.SetTenantLogo(ctx, tn.ID, &store.Logo{ContentType: "image/jpeg", Data: png[:5], UpdatedAt: later}); err != nil {
		t.Fatal(err)
	}
	l, err := s.TenantLogo(ctx, tn.ID)
	if err != nil || l.ContentType != "image/jpeg" || string(l.Data) != string(png[:5]) || !l.UpdatedAt.Equal(later) {
		t.Fatalf("logo %+v %v", l, err)
	}
	if err := s.SetTenantLogo(ctx, tn.ID, &store.Logo{ContentType: "image/png", Data: png, UpdatedAt: later}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.TenantLogo(ctx, tn.ID); string(l.Data) != string(png) {
		t.Fatalf("binary logo changed in the store: %q", l.Data)
	}
	got, _ = s.Tenant(ctx, tn.ID)
	if !got.LogoUpdatedAt.Equal(later) {
		t.Fatalf("LogoUpdatedAt %v, want %v", got.LogoUpdatedAt, later)
	}
	all, _ := s.Tenants(ctx)
	for _, x := range all {
		if x.ID == tn.ID && (!x.LogoUpdatedAt.Equal(later) || x.AccentColor != "#003366") {
			t.Fatalf("Tenants() lists %+v", x)
		}
	}
	wantErr(t, s.SetTenantLogo(ctx, "missing", &store.Logo{ContentType: "image/png", Data: png, UpdatedAt: at}), store.ErrNotFound)
	if err := s.SetTenantLogo(ctx, tn.ID, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.TenantLogo(ctx, tn.ID)
	wantErr(t, err, store.ErrNotFound)
	if got, _ := s.Tenant(ctx, tn.ID); !got.LogoUpdatedAt.IsZero() {
		t.Fatal("removed logo still dated")
	}
	// Deleting the tenant deletes its logo.
	s.SetTenantLogo(ctx, tn.ID, &store.Logo{ContentType: "image/png", Data: png, UpdatedAt: at})
	if err := s.DeleteTenant(ctx, tn.ID, false, store.Ending{}); err != nil {
		t.Fatal(err)
	}
	_, err = s.TenantLogo(ctx, tn.ID)
	wantErr(t, err, store.ErrNotFound)
}
