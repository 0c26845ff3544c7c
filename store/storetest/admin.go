package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

func adminTests() []namedTest {
	return []namedTest{
		{"Admins", testAdmins},
		{"AdminSessions", testAdminSessions},
		{"Dashboard", testDashboard},
	}
}

func mustAdmin(t *testing.T, s store.Store, email, role string) *store.Admin {
	t.Helper()
	a := &store.Admin{ID: id("ad"), Email: email, Role: role, Enabled: true, SetupHash: []byte(email), SetupExpiresAt: now().Add(time.Hour),
		CreatedAt: now(), UpdatedAt: now()}
	if err := s.CreateAdmin(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func testAdmins(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustAdmin(t, s, "root@ops.example", store.RoleOwner)
	wantErr(t, s.CreateAdmin(ctx, &store.Admin{ID: id("ad"), Email: a.Email, Role: store.RoleAdmin, CreatedAt: now(), UpdatedAt: now()}), store.ErrConflict)
	// Two accounts without a setup token may coexist (NULL is not a duplicate).
	for _, e := range []string{"b@ops.example", "c@ops.example"} {
		if err := s.CreateAdmin(ctx, &store.Admin{ID: id("ad"), Email: e, Role: store.RoleAuditor, CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.AdminByEmail(ctx, a.Email)
	if err != nil || got.ID != a.ID || got.Role != store.RoleOwner || !got.Enabled || got.Ready() || !got.SetupExpiresAt.Equal(a.SetupExpiresAt) {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := s.AdminBySetupHash(ctx, []byte(a.Email)); err != nil || got.ID != a.ID {
		t.Fatalf("by setup hash: %+v %v", got, err)
	}
	_, err = s.AdminBySetupHash(ctx, nil)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Admin(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)

	up, err := s.UpdateAdmin(ctx, a.ID, func(x *store.Admin) error {
		x.PasswordHash, x.TOTPSecret, x.SetupHash, x.SetupExpiresAt, x.TOTPLastStep = "$argon2id$x", []byte{1, 2, 3}, nil, time.Time{}, 42
		return nil
	})
	if err != nil || !up.Ready() {
		t.Fatalf("%+v %v", up, err)
	}
	got, _ = s.Admin(ctx, a.ID)
	if !got.Ready() || got.SetupHash != nil || got.TOTPLastStep != 42 || !bytes.Equal(got.TOTPSecret, []byte{1, 2, 3}) {
		t.Fatalf("after update %+v", got)
	}
	_, err = s.AdminBySetupHash(ctx, []byte(a.Email))
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateAdmin(ctx, a.ID, func(x *store.Admin) error { x.Email = "b@ops.example"; return nil })
	wantErr(t, err, store.ErrConflict)
	all, err := s.Admins(ctx)
	if err != nil || len(all) != 3 || all[0].Email != "b@ops.example" {
		t.Fatalf("%v %v", all, err)
	}
	if n, _ := s.CountAdmins(ctx); n != 3 {
		t.Fatal(n)
	}
}

func testAdminSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustAdmin(t, s, "root@ops.example", store.RoleOwner)
	b := mustAdmin(t, s, "help@ops.example", store.RoleHelpDesk)
	for i, who := range []string{a.ID, a.ID, b.ID} {
		if err := s.CreateAdminSession(ctx, &store.AdminSession{Hash: []byte{byte(i)}, AdminID: who, CreatedAt: now(), LastSeenAt: now(),
			ExpiresAt: now().Add(time.Hour), Remote: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, s.CreateAdminSession(ctx, &store.AdminSession{Hash: []byte{0}, AdminID: a.ID, CreatedAt: now(), LastSeenAt: now(), ExpiresAt: now()}), store.ErrConflict)
	later := now().Add(time.Minute)
	if err := s.TouchAdminSession(ctx, []byte{0}, later); err != nil {
		t.Fatal(err)
	}
	got, err := s.AdminSession(ctx, []byte{0})
	if err != nil || got.AdminID != a.ID || !got.LastSeenAt.Equal(later) || got.Remote != "127.0.0.1" {
		t.Fatalf("%+v %v", got, err)
	}
	if err := s.DeleteAdminSession(ctx, []byte{0}); err != nil {
		t.Fatal(err)
	}
	_, err = s.AdminSession(ctx, []byte{0})
	wantErr(t, err, store.ErrNotFound)
	if err := s.DeleteAdminSessions(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.AdminSession(ctx, []byte{1})
	wantErr(t, err, store.ErrNotFound)
	if _, err := s.AdminSession(ctx, []byte{2}); err != nil {
		t.Fatal("another account's session went too:", err)
	}
}

func testDashboard(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	mustEnrollment(t, s, e1.TenantID, e1.UserID, nil, time.Time{}) // still pending
	t0 := now()
	if err := s.BindAppleEnrollment(ctx, e1.ID, "A1", store.DeviceInfo{OSVersion: "18.2"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.BindAppleEnrollment(ctx, e2.ID, "A2", store.DeviceInfo{OSVersion: "17.6"}, t0.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"A1", "A2"} {
		ref := e1.ID
		if ch == "A2" {
			ref = e2.ID
		}
		if err := s.PutChannel(ctx, &store.Channel{ID: ch, DeviceID: ref, Kind: "device", CreatedAt: t0, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for i, rt := range []string{"DeviceInformation", "InstallProfile", "ProfileList"} {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: id("c"), RequestType: rt, Payload: []byte("x"), CreatedAt: t0.Add(time.Duration(i))}, []string{"A1", "A2"}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := s.NextCommand(ctx, e1.ID, "A1", true, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordResult(ctx, e1.ID, "A1", q.UUID, mdm.Error, []byte("e"), t0, nil); err != nil {
		t.Fatal(err)
	}
	d, err := s.Dashboard(ctx, t0.Add(-7*24*time.Hour), t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Enrolled) != 2 || d.Enrolled[0].OSVersion != "17.6" || d.Enrolled[0].Count != 1 || d.Enrolled[1].Platform != "iOS" {
		t.Fatalf("enrolled %+v", d.Enrolled)
	}
	total := 0
	for _, p := range d.PerDay {
		total += p.Count
		if p.Day.Hour() != 0 || p.Day.After(t0) {
			t.Fatalf("day %v", p.Day)
		}
	}
	if total != 2 || len(d.PerDay) != 2 {
		t.Fatalf("per day %+v", d.PerDay)
	}
	if d.Pending != 5 || d.EnrollmentsOpen != 1 {
		t.Fatalf("pending %d open %d", d.Pending, d.EnrollmentsOpen)
	}
	if len(d.RecentErrors) != 1 || d.RecentErrors[0].EnrollmentID != e1.ID || d.RecentErrors[0].RequestType != "DeviceInformation" {
		t.Fatalf("errors %+v", d.RecentErrors)
	}
}
