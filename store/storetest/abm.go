package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func abmTests() []namedTest {
	return []namedTest{
		{"ABMServerTokens", testABMServerTokens},
		{"ABMWithoutGetToken", testABMWithoutGetToken},
	}
}

// testABMServerTokens: create (unknown tenant refused), list per tenant
// and all, read-modify-write keeps the identity columns, delete; a
// tenant's deletion takes its tokens.
func testABMServerTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	a := mustTenant(t, s, "A", "a.example")
	b := mustTenant(t, s, "B", "b.example")
	mk := func(id, tenant string, at time.Time) *store.ABMServerToken {
		return &store.ABMServerToken{ID: id, TenantID: tenant, Name: "srv " + id, Certificate: []byte("cert-" + id), KeySealed: []byte("key-" + id),
			CreatedAt: at, UpdatedAt: at}
	}
	if err := s.CreateABMServerToken(ctx, mk("abm_x", "tn_nope", t0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	for _, tok := range []*store.ABMServerToken{mk("abm_1", a.ID, t0), mk("abm_2", a.ID, t0.Add(time.Second)), mk("abm_3", b.ID, t0)} {
		if err := s.CreateABMServerToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateABMServerToken(ctx, mk("abm_1", a.ID, t0)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("taken id: %v", err)
	}
	got, err := s.ABMServerToken(ctx, "abm_1")
	if err != nil || got.TenantID != a.ID || !bytes.Equal(got.Certificate, []byte("cert-abm_1")) || got.Imported() || got.TokenSealed != nil ||
		!got.ImportedAt.IsZero() || !got.CreatedAt.Equal(t0) {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.ABMServerToken(ctx, "abm_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	list, err := s.ABMServerTokens(ctx, a.ID)
	if err != nil || len(list) != 2 || list[0].ID != "abm_1" || list[1].ID != "abm_2" {
		t.Fatalf("tenant list: %+v %v", list, err)
	}
	if all, _ := s.ABMServerTokens(ctx, ""); len(all) != 3 {
		t.Fatalf("all: %d", len(all))
	}

	exp := t0.Add(365 * 24 * time.Hour)
	up, err := s.UpdateABMServerToken(ctx, "abm_1", func(x *store.ABMServerToken) error {
		x.TokenSealed, x.OrgName, x.OrgID, x.ServerName, x.ServerUUID = []byte("sealed"), "Org", "123", "Pomona", "UUID-1"
		x.AccessTokenExpiry, x.ImportedAt, x.UpdatedAt = exp, t0.Add(time.Minute), t0.Add(time.Minute)
		x.DiscoveryURL, x.DiscoveryAssertedAt, x.DiscoveryError = "https://mdm.example/abm/discovery/x", t0, "ORG_NOT_SUPPORTED"
		x.Certificate, x.TenantID = []byte("changed"), b.ID // ignored
		return nil
	})
	if err != nil || !up.Imported() {
		t.Fatalf("update: %+v %v", up, err)
	}
	got, _ = s.ABMServerToken(ctx, "abm_1")
	if !got.Imported() || string(got.TokenSealed) != "sealed" || got.ServerUUID != "UUID-1" || got.OrgName != "Org" || got.OrgID != "123" ||
		!got.AccessTokenExpiry.Equal(exp) || got.TenantID != a.ID || string(got.Certificate) != "cert-abm_1" ||
		got.DiscoveryURL == "" || !got.DiscoveryAssertedAt.Equal(t0) || got.DiscoveryError != "ORG_NOT_SUPPORTED" {
		t.Fatalf("after update: %+v", got)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateABMServerToken(ctx, "abm_1", func(x *store.ABMServerToken) error { x.Name = "lost"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("refused update: %v", err)
	}
	if got, _ := s.ABMServerToken(ctx, "abm_1"); got.Name != "srv abm_1" {
		t.Fatalf("a refused update changed the name to %q", got.Name)
	}
	if _, err := s.UpdateABMServerToken(ctx, "abm_nope", func(*store.ABMServerToken) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}

	if err := s.DeleteABMServerToken(ctx, "abm_2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteABMServerToken(ctx, "abm_2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.DeleteTenant(ctx, b.ID, true, store.Ending{Reason: "test", At: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ABMServerToken(ctx, "abm_3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted tenant's token: %v", err)
	}
}

// testABMWithoutGetToken: enrolled enrollments whose profile does not
// advertise com.apple.mdm.token, with their newest certificate; other
// tenants', pending and ended enrollments are not listed.
func testABMWithoutGetToken(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	a := mustTenant(t, s, "A", "a.example")
	b := mustTenant(t, s, "B", "b.example")
	ua := mustUser(t, s, a.ID, "alice@a.example")
	ub := mustUser(t, s, b.ID, "bob@b.example")
	mk := func(tenant, user, apple, challenge string) *store.Enrollment {
		t.Helper()
		e := mustEnrollment(t, s, tenant, user, []byte(challenge), t0.Add(time.Hour))
		c := &store.IdentityCert{Serial: "s-" + challenge, EnrollmentID: e.ID, SHA256: []byte("h-" + challenge), NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), IssuedAt: t0}
		if err := s.ConsumeSCEPChallenge(ctx, []byte(challenge), t0, c); err != nil {
			t.Fatal(err)
		}
		if apple != "" {
			if err := s.BindAppleEnrollment(ctx, e.ID, apple, store.DeviceInfo{}, t0); err != nil {
				t.Fatal(err)
			}
		}
		return e
	}
	e1 := mk(a.ID, ua.ID, "A1", "c1") // no keys recorded
	e2 := mk(a.ID, ua.ID, "A2", "c2") // keys without the capability
	e3 := mk(a.ID, ua.ID, "A3", "c3") // keys with it
	mk(a.ID, ua.ID, "", "c4")         // never authenticated
	e5 := mk(a.ID, ua.ID, "A5", "c5") // ended
	mk(b.ID, ub.ID, "B1", "c6")       // another tenant
	keys := store.ProfileKeys{ManagedAppleID: "alice@a.example", Topic: "t", ServerURL: "https://x/mdm", CheckInURL: "https://x/ci"}
	if err := s.PutProfileKeys(ctx, e2.ID, keys, t0); err != nil {
		t.Fatal(err)
	}
	keys.GetToken = true
	if err := s.PutProfileKeys(ctx, e3.ID, keys, t0); err != nil {
		t.Fatal(err)
	}
	if k, err := s.ProfileKeys(ctx, e3.ID); err != nil || !k.GetToken {
		t.Fatalf("keys with GetToken: %+v %v", k, err)
	}
	if k, err := s.ProfileKeys(ctx, e2.ID); err != nil || k.GetToken {
		t.Fatalf("keys without GetToken: %+v %v", k, err)
	}
	if err := s.EndEnrollment(ctx, e5.ID, "test", t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.WithoutGetToken(ctx, a.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{e1.ID: "s-c1", e2.ID: "s-c2"}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %v", got, want)
	}
	for _, c := range got {
		if want[c.EnrollmentID] != c.Serial || c.Renewal != nil {
			t.Fatalf("candidate %+v, want %v", c, want)
		}
	}
	if got, _ := s.WithoutGetToken(ctx, a.ID, 1); len(got) != 1 {
		t.Fatalf("limit 1: %d", len(got))
	}
}
