package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

func profileAdminTests() []namedTest {
	return append([]namedTest{
		{"DeleteProfile", testDeleteProfile},
		{"UpdateProfile", testUpdateProfile},
		{"RevocationList", testRevocationList},
		{"CRLState", testCRLState},
		{"RemovedProfileRevokesItsCerts", testRemovedProfileRevokesItsCerts},
		{"AckSupersedesCerts", testAckSupersedesCerts},
		{"RevokedCountCounts", testRevokedCountCounts},
		{"RetryProfileItem", testRetryProfileItem},
	}, append(append(append(append(append(attackTests(), attack8Tests()...), attack9Tests()...), attack10Tests()...), lease11Tests()...), attack11Tests()...)...)
}

func testDeleteProfile(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	all, err := s.AllUsersGroup(ctx, tn.ID, now())
	if err != nil {
		t.Fatal(err)
	}
	// A profile nobody has goes at once; its identifier is free again.
	p0 := mustProfile(t, s, tn.ID, "com.example.unused")
	if err := s.DeleteProfile(ctx, p0.ID, now()); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteProfile(ctx, p0.ID, now()), store.ErrNotFound)
	mustProfile(t, s, tn.ID, "com.example.unused")

	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: now()}, now()); err != nil {
		t.Fatal(err)
	}
	claimAll(t, s, now().Add(time.Second))
	it := &store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: reconcile.Installed, Version: 1, Hash: "h",
		CommandUUID: "c1", Acknowledged: true, UpdatedAt: now()}
	if err := s.PutProfileItem(ctx, it); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ProfileOnDevices(ctx, p.ID); err != nil || n != 1 {
		t.Fatalf("on devices: %d %v", n, err)
	}
	if err := s.DeleteProfile(ctx, p.ID, now()); err != nil {
		t.Fatal(err)
	}
	// Hidden from the library, no longer a candidate, the device marked;
	// the item stays for the reconciler's RemoveProfile.
	wantErr(t, func() error { _, err := s.ConfigProfile(ctx, p.ID); return err }(), store.ErrNotFound)
	ps, _ := s.ConfigProfiles(ctx, tn.ID)
	for _, x := range ps {
		if x.ID == p.ID {
			t.Fatal("a deleted profile is listed")
		}
	}
	if cs, _ := s.CandidateProfiles(ctx, e.ID); len(cs) != 0 {
		t.Fatalf("candidates after delete: %+v", cs)
	}
	if got := claimAll(t, s, now().Add(time.Second)); len(got) != 1 || got[0] != e.ID {
		t.Fatalf("marked: %v", got)
	}
	if its, _ := s.ProfileItems(ctx, e.ID); len(its) != 1 {
		t.Fatalf("items: %+v", its)
	}
	// Nothing can be added to a deleted profile.
	wantErr(t, s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: now()}, now()), store.ErrNotFound)
	if _, err := s.AddProfileVersion(ctx, &store.ProfileVersion{ProfileID: p.ID, Plist: []byte("x"), Hash: "h2", CreatedAt: now()}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("version of a deleted profile: %v", err)
	}
	// Its identifier stays taken while a device still has it.
	if n, err := s.PurgeDeletedProfiles(ctx, tn.ID, p.Identifier); err != nil || n != 1 {
		t.Fatalf("left: %d %v", n, err)
	}
	wantErr(t, s.CreateProfile(ctx, &store.ConfigProfile{ID: id("pr"), TenantID: tn.ID, Identifier: p.Identifier, Name: "x", CreatedAt: now(), UpdatedAt: now()},
		&store.ProfileVersion{Plist: []byte("x"), Hash: "h", CreatedAt: now()}), store.ErrConflict)
	// Removed from the device: the tombstone goes.
	if err := s.DeleteProfileItem(ctx, e.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeDeletedProfiles(ctx, tn.ID, p.Identifier); err != nil || n != 0 {
		t.Fatalf("left after removal: %d %v", n, err)
	}
	mustProfile(t, s, tn.ID, p.Identifier)
}

func testUpdateProfile(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	bystander := enrolledFor(t, s, tn.ID, mustUser(t, s, tn.ID, "bob@a.example").ID)
	g := &store.Group{ID: id("gr"), TenantID: tn.ID, Name: "G", CreatedAt: now(), UpdatedAt: now()}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddGroupMembers(ctx, g.ID, []string{u.ID}, now()); err != nil {
		t.Fatal(err)
	}
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: g.ID, CreatedAt: now()}, now()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: reconcile.Installed,
		Version: 1, Hash: "h", Acknowledged: true, UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	claimAll(t, s, now().Add(time.Second))
	// A new name changes nothing on devices.
	name := "Office Wi-Fi"
	got, err := s.UpdateProfile(ctx, p.ID, store.ProfileChange{Name: &name}, now())
	if err != nil || got.Name != name {
		t.Fatalf("rename: %+v %v", got, err)
	}
	if m := claimAll(t, s, now().Add(time.Second)); len(m) != 0 {
		t.Fatalf("a rename marked %v", m)
	}
	// Platforms and minimum OS mark the profile's devices, only them.
	plats, minOS := []string{"macOS"}, "15.0"
	if got, err = s.UpdateProfile(ctx, p.ID, store.ProfileChange{Platforms: &plats, MinOS: &minOS}, now()); err != nil {
		t.Fatal(err)
	}
	if got.MinOS != "15.0" || len(got.Platforms) != 1 || got.Platforms[0] != "macOS" {
		t.Fatalf("update: %+v", got)
	}
	if m := claimAll(t, s, now().Add(time.Second)); len(m) != 1 || m[0] != e.ID {
		t.Fatalf("marked %v (bystander %s)", m, bystander.ID)
	}
	again, _ := s.ConfigProfile(ctx, p.ID)
	if again.MinOS != "15.0" || again.Name != name {
		t.Fatalf("stored: %+v", again)
	}
	// Signing clears the items' hash: every device gets it again.
	sign := true
	if _, err := s.UpdateProfile(ctx, p.ID, store.ProfileChange{Sign: &sign}, now()); err != nil {
		t.Fatal(err)
	}
	if its, _ := s.ProfileItems(ctx, e.ID); len(its) != 1 || its[0].Hash != "" {
		t.Fatalf("items after sign: %+v", its)
	}
	if m := claimAll(t, s, now().Add(time.Second)); len(m) != 1 {
		t.Fatalf("sign marked %v", m)
	}
	wantErr(t, func() error {
		_, err := s.UpdateProfile(ctx, "pr_nope", store.ProfileChange{Name: &name}, now())
		return err
	}(), store.ErrNotFound)
}

func testRevocationList(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	ended := enrolledFor(t, s, tn.ID, u.ID)
	p := mustProfile(t, s, tn.ID, "com.example.eaptls")
	t0 := now()
	issue := func(serial string, enr *store.Enrollment) {
		t.Helper()
		h := []byte("ch-" + serial)
		if err := s.AddProfileChallenge(ctx, &store.SCEPChallenge{Hash: h, DeviceID: enr.ID, ExpiresAt: t0.Add(time.Hour)}, p.ID); err != nil {
			t.Fatal(err)
		}
		pc := &store.ProfileCert{Serial: serial, DeviceID: enr.ID, ProfileID: p.ID, Subject: "CN=alice", Email: "alice@a.example",
			SHA256: []byte("h" + serial), NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), IssuedAt: t0}
		if err := s.ConsumeProfileChallenge(ctx, h, t0, pc); err != nil {
			t.Fatal(err)
		}
	}
	issue("b1", e)
	issue("b2", e)
	issue("b3", ended)
	status := func(serial string) string {
		t.Helper()
		st, _, err := s.CertStatus(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	n0, _ := s.RevokedCount(ctx)
	if status("b1") != store.CertGood || status("ffff") != store.CertUnknown {
		t.Fatal("status before revocation")
	}
	// An admin's revocation.
	if err := s.RevokeProfileCert(ctx, e.ID, "b1", "key:k", t0); err != nil {
		t.Fatal(err)
	}
	st, rc, err := s.CertStatus(ctx, "b1")
	if err != nil || st != store.CertRevoked || !rc.RevokedAt.Equal(t0) || rc.Kind != store.CertUser {
		t.Fatalf("revoked: %s %+v %v", st, rc, err)
	}
	// Ending an enrollment revokes its user certificates (and its identity).
	if err := s.EndEnrollment(ctx, ended.ID, "test", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if status("b3") != store.CertRevoked {
		t.Fatal("the ended enrollment's certificate is not revoked")
	}
	if cs, _ := s.ProfileCerts(ctx, ended.ID); len(cs) != 1 || cs[0].RevokedAt.IsZero() {
		t.Fatalf("ended enrollment's certs: %+v", cs)
	}
	// Deleting the user (cascade) keeps b2 revoked, not forgotten.
	if status("b2") != store.CertGood {
		t.Fatal("b2 revoked too early")
	}
	if err := s.DeleteUser(ctx, u.ID, store.Ending{Reason: "test", At: t0}); err != nil {
		t.Fatal(err)
	}
	if status("b2") != store.CertRevoked {
		t.Fatal("a deleted user's certificate is not revoked")
	}
	n1, _ := s.RevokedCount(ctx)
	if n1-n0 < 3 {
		t.Fatalf("revoked count %d → %d", n0, n1)
	}
	rs, err := s.RevokedCerts(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Serial] = true
	}
	if !seen["b1"] || !seen["b2"] || !seen["b3"] {
		t.Fatalf("revoked list: %+v", rs)
	}
	if rs, _ := s.RevokedCerts(ctx, t0.Add(400*24*time.Hour)); len(rs) != 0 {
		t.Fatalf("expired certificates listed: %+v", rs)
	}
}

func testCRLState(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.CRL(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no CRL yet: %v", err)
	}
	t0 := now()
	c1 := &store.CRLState{Number: 1, Revoked: 0, ThisUpdate: t0, NextUpdate: t0.Add(time.Hour), DER: []byte("one")}
	if err := s.PutCRL(ctx, c1, 0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.PutCRL(ctx, &store.CRLState{Number: 1, DER: []byte("other"), ThisUpdate: t0, NextUpdate: t0}, 0), store.ErrConflict)
	if err := s.PutCRL(ctx, &store.CRLState{Number: 2, Revoked: 3, ThisUpdate: t0, NextUpdate: t0.Add(time.Hour), DER: []byte("two")}, 1); err != nil {
		t.Fatal(err)
	}
	// An instance that read number 1 loses to the one that stored 2.
	wantErr(t, s.PutCRL(ctx, &store.CRLState{Number: 2, DER: []byte("late"), ThisUpdate: t0, NextUpdate: t0}, 1), store.ErrConflict)
	got, err := s.CRL(ctx)
	if err != nil || got.Number != 2 || got.Revoked != 3 || string(got.DER) != "two" || !got.NextUpdate.Equal(t0.Add(time.Hour)) {
		t.Fatalf("CRL: %+v %v", got, err)
	}
}

// testRemovedProfileRevokesItsCerts: when a profile's item goes (the
// device removed the profile, or it was never installed), the user
// certificates issued through it to that device are revoked, and nothing
// else is: another profile's, another device's.
func testRemovedProfileRevokesItsCerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	other := enrolledFor(t, s, tn.ID, u.ID)
	p := mustProfile(t, s, tn.ID, "com.example.eaptls")
	q := mustProfile(t, s, tn.ID, "com.example.vpn")
	t0 := now()
	issue := func(serial string, enr *store.Enrollment, prof *store.ConfigProfile) {
		t.Helper()
		h := []byte("rm-" + serial)
		if err := s.AddProfileChallenge(ctx, &store.SCEPChallenge{Hash: h, DeviceID: enr.ID, ExpiresAt: t0.Add(time.Hour)}, prof.ID); err != nil {
			t.Fatal(err)
		}
		pc := &store.ProfileCert{Serial: serial, DeviceID: enr.ID, ProfileID: prof.ID, Subject: "CN=alice", Email: "alice@a.example",
			SHA256: []byte("h" + serial), NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), IssuedAt: t0}
		if err := s.ConsumeProfileChallenge(ctx, h, t0, pc); err != nil {
			t.Fatal(err)
		}
	}
	issue("c1", e, p)     // goes with p's item on e
	issue("c2", e, q)     // another profile: stays
	issue("c3", other, p) // another device: stays until its own item goes
	for _, enr := range []*store.Enrollment{e, other} {
		if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: enr.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "removing", UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	status := func(serial string) string {
		t.Helper()
		st, _, err := s.CertStatus(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if err := s.DeleteProfileItem(ctx, e.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if status("c1") != store.CertRevoked || status("c2") != store.CertGood || status("c3") != store.CertGood {
		t.Fatalf("after e's removal: c1 %s c2 %s c3 %s", status("c1"), status("c2"), status("c3"))
	}
	// The reconciler's batch forgets items the same way.
	if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{DelItems: []store.DeletedItem{{DeviceID: other.ID, ProfileID: p.ID}}}); err != nil {
		t.Fatal(err)
	}
	if status("c3") != store.CertRevoked || status("c2") != store.CertGood {
		t.Fatalf("after the batch: c3 %s c2 %s", status("c3"), status("c2"))
	}
}
