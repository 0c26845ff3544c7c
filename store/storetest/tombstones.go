package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Endings (issue 13): deleting a user or a tenant leaves a tombstone per
// identity certificate of the enrollments that went with them.
func tombstoneTests() []namedTest {
	return []namedTest{
		{"TombstonesOnDelete", testTombstones},
	}
}

func testTombstones(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	tn := mustTenant(t, s, "T", "t.example")
	other := mustTenant(t, s, "O", "o.example")
	alice := mustUser(t, s, tn.ID, "alice@t.example")
	bob := mustUser(t, s, tn.ID, "bob@t.example")
	carol := mustUser(t, s, other.ID, "carol@o.example")
	// serial → (tenant, user) of one enrolled device with one certificate.
	devices := []struct {
		serial string
		tenant *store.Tenant
		user   *store.User
	}{{"a1", tn, alice}, {"b1", tn, bob}, {"c1", other, carol}}
	for i, d := range devices {
		ch := []byte("ch-" + d.serial)
		e := mustEnrollment(t, s, d.tenant.ID, d.user.ID, ch, t0.Add(time.Hour))
		c := &store.IdentityCert{Serial: d.serial, DeviceID: e.ID, SHA256: []byte("fp-" + d.serial), NotBefore: t0, NotAfter: t0.Add(time.Hour), IssuedAt: t0}
		if err := s.ConsumeSCEPChallenge(ctx, ch, t0, c); err != nil {
			t.Fatal(err)
		}
		if err := s.BindAppleEnrollment(ctx, e.ID, fmt.Sprint("APPLE-", i), store.DeviceInfo{}, t0); err != nil {
			t.Fatal(err)
		}
	}
	// A pending enrollment without a certificate leaves nothing.
	mustEnrollment(t, s, tn.ID, alice.ID, []byte("ch-pending"), t0.Add(time.Hour))

	wantErr(t, s.DeleteUser(ctx, "nobody", store.Ending{Reason: "x", At: t0}), store.ErrNotFound)
	t1 := t0.Add(time.Minute)
	if err := s.DeleteUser(ctx, alice.ID, store.Ending{Reason: "user deleted by test", At: t1}); err != nil {
		t.Fatal(err)
	}
	ts, err := s.Tombstone(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ts.SHA256, []byte("fp-a1")) || ts.AppleEnrollmentID != "APPLE-0" || ts.TenantID != tn.ID || ts.UserID != alice.ID ||
		ts.DeviceID == "" || ts.Reason != "user deleted by test" || !ts.EndedAt.Equal(t1) {
		t.Fatalf("tombstone %+v", ts)
	}
	if _, err := s.IdentityCert(ctx, "a1"); err == nil {
		t.Fatal("the deleted user's certificate is still there")
	}
	// Others are untouched.
	for _, serial := range []string{"b1", "c1"} {
		wantErr(t, func() error { _, err := s.Tombstone(ctx, serial); return err }(), store.ErrNotFound)
	}

	t2 := t1.Add(time.Hour)
	if err := s.DeleteTenant(ctx, tn.ID, true, store.Ending{Reason: "tenant deleted by test", At: t2}); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.Tombstone(ctx, "b1"); err != nil || ts.UserID != bob.ID || ts.Reason != "tenant deleted by test" || !ts.EndedAt.Equal(t2) {
		t.Fatalf("tenant cascade tombstone %+v, %v", ts, err)
	}
	wantErr(t, func() error { _, err := s.Tombstone(ctx, "c1"); return err }(), store.ErrNotFound)

	// Purging removes those ended before the cut-off only.
	n, err := s.PurgeTombstones(ctx, t2)
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v; want 1", n, err)
	}
	wantErr(t, func() error { _, err := s.Tombstone(ctx, "a1"); return err }(), store.ErrNotFound)
	if _, err := s.Tombstone(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
}
