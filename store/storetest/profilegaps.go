package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// testAckSupersedesCerts: a new delivery of a profile with a SCEP payload
// issues a new user certificate; the previous one stays valid until the
// device acknowledges the new install, and is then revoked as superseded
// (RFC 5280 reason 4) — only that device's, only that profile's. A stale
// acknowledgement (of a command since replaced) revokes nothing.
func testAckSupersedesCerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	other := enrolledFor(t, s, tn.ID, u.ID)
	p := mustProfile(t, s, tn.ID, "com.example.eaptls")
	q := mustProfile(t, s, tn.ID, "com.example.vpn")
	t0 := now()
	// deliver queues an install of prof on enr through command cmd with a
	// challenge (as the reconciler's batch does) and the device's SCEP
	// request with it gets serial.
	deliver := func(enr *store.Enrollment, prof *store.ConfigProfile, cmd, serial string) {
		t.Helper()
		h := []byte("sup-" + serial)
		b := &store.ReconcileBatch{
			Challenges: []store.NewProfileChallenge{{ProfileID: prof.ID, CommandUUID: cmd,
				Challenge: store.SCEPChallenge{Hash: h, DeviceID: enr.ID, ExpiresAt: t0.Add(time.Hour), Kind: store.ChallengeProfile}}},
			PutItems: []store.ProfileItem{{DeviceID: enr.ID, ProfileID: prof.ID, Identifier: prof.Identifier, State: reconcile.Installing,
				Version: 1, Hash: "h-" + cmd, CommandUUID: cmd, UpdatedAt: t0}},
		}
		if err := s.ApplyReconcile(ctx, b); err != nil {
			t.Fatal(err)
		}
		pc := &store.ProfileCert{Serial: serial, DeviceID: enr.ID, ProfileID: prof.ID, Subject: "CN=alice", Email: "alice@a.example",
			SHA256: []byte("h" + serial), NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), IssuedAt: t0}
		if err := s.ConsumeProfileChallenge(ctx, h, t0, pc); err != nil {
			t.Fatal(err)
		}
	}
	status := func(serial string) (string, int) {
		t.Helper()
		st, rc, err := s.CertStatus(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		if rc == nil {
			return st, -1
		}
		return st, rc.Reason
	}
	deliver(e, p, "cmd-1", "s1")
	deliver(e, q, "cmd-q", "sq")
	deliver(other, p, "cmd-o", "so")
	// ack is the device's Acknowledged to the InstallProfile cmd.
	ack := func(enrollmentID, cmd string, at time.Time) error {
		_, _, err := s.AcknowledgeProfileItem(ctx, enrollmentID, cmd, "", nil, at)
		return err
	}
	for _, a := range [][2]string{{e.ID, "cmd-1"}, {e.ID, "cmd-q"}, {other.ID, "cmd-o"}} {
		if err := ack(a[0], a[1], t0); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := status("s1"); st != store.CertGood {
		t.Fatalf("the first delivery's own acknowledgement revoked its certificate: %s", st)
	}
	its, _ := s.ProfileItems(ctx, e.ID)
	if len(its) != 2 || !its[0].Acknowledged {
		t.Fatalf("items after the acknowledgement: %+v", its)
	}
	n0, err := s.RevokedCount(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Version 2 is queued and its certificate issued: the old one stays
	// good while the device has not acknowledged the install.
	deliver(e, p, "cmd-2", "s2")
	if st, _ := status("s1"); st != store.CertGood {
		t.Fatalf("the old certificate was revoked before the new install was acknowledged: %s", st)
	}
	wantErr(t, ack(e.ID, "cmd-1", t0), store.ErrNotFound) // a late answer to the replaced command
	if st, _ := status("s1"); st != store.CertGood {
		t.Fatalf("a stale acknowledgement revoked: %s", st)
	}
	if err := ack(e.ID, "cmd-2", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st, reason := status("s1"); st != store.CertRevoked || reason != 4 {
		t.Fatalf("s1 after the new install: %s reason %d, want revoked, superseded (4)", st, reason)
	}
	for _, serial := range []string{"s2", "sq", "so"} {
		if st, _ := status(serial); st != store.CertGood {
			t.Fatalf("%s: %s, want good", serial, st)
		}
	}
	if n, err := s.RevokedCount(ctx); err != nil || n != n0+1 {
		t.Fatalf("revocations counted: %d %v, want %d", n, err, n0+1)
	}
	// Acknowledged twice (a device resending its answer): nothing more.
	if err := ack(e.ID, "cmd-2", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st, _ := status("s2"); st != store.CertGood {
		t.Fatalf("s2 after a repeated acknowledgement: %s", st)
	}
	if n, _ := s.RevokedCount(ctx); n != n0+1 {
		t.Fatalf("revocations counted after a repeat: %d, want %d", n, n0+1)
	}
}

// testRevokedCountCounts: RevokedCount (a counter kept by the store, not
// a COUNT) follows every recorded revocation, once per certificate.
func testRevokedCountCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	p := mustProfile(t, s, tn.ID, "com.example.eaptls")
	t0 := now()
	n0, err := s.RevokedCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, serial := range []string{"r1", "r2"} {
		h := []byte("cnt-" + serial)
		if err := s.AddProfileChallenge(ctx, &store.SCEPChallenge{Hash: h, DeviceID: e.ID, ExpiresAt: t0.Add(time.Hour)}, p.ID); err != nil {
			t.Fatal(err)
		}
		pc := &store.ProfileCert{Serial: serial, DeviceID: e.ID, ProfileID: p.ID, Subject: "CN=alice", SHA256: []byte(serial),
			NotBefore: t0, NotAfter: t0.Add(time.Hour), IssuedAt: t0}
		if err := s.ConsumeProfileChallenge(ctx, h, t0, pc); err != nil {
			t.Fatal(err)
		}
		for range 2 { // revoking twice records one revocation
			if err := s.RevokeProfileCert(ctx, e.ID, serial, "test", t0); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.RevokedCount(ctx); err != nil || n != n0+int64(i)+1 {
			t.Fatalf("after revoking %s: %d %v, want %d", serial, n, err, n0+int64(i)+1)
		}
	}
	list, err := s.RevokedCerts(ctx, t0.Add(-time.Hour))
	if err != nil || int64(len(list)) != n0+2 {
		t.Fatalf("listed %d (%v), counted %d", len(list), err, n0+2)
	}
}

// testRetryProfileItem: an admin's retry makes a failed item pending and
// queues its device; anything else is refused, and a retry of a deleted
// profile's item never brings it back (the console's Retry after a
// deletion: 404, not a resurrected item or a 500).
func testRetryProfileItem(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	t0 := now()
	claimAll(t, s, t0.Add(time.Second))
	failed := store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: reconcile.Failed, Version: 1, Hash: "h",
		CommandUUID: "c1", Attempts: 8, Error: "MCInstallationErrorDomain 4001: refused", UpdatedAt: t0}
	if err := s.PutProfileItem(ctx, &failed); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.RetryProfileItem(ctx, "en_none", p.ID, t0), store.ErrNotFound)
	wantErr(t, s.RetryProfileItem(ctx, e.ID, "pr_none", t0), store.ErrNotFound)
	if err := s.RetryProfileItem(ctx, e.ID, p.ID, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	its, _ := s.ProfileItems(ctx, e.ID)
	if len(its) != 1 || its[0].State != reconcile.Pending || its[0].Attempts != 0 || !its[0].NextRetry.IsZero() || its[0].Hash != "" {
		t.Fatalf("after the retry: %+v", its)
	}
	if n, _ := s.DirtyCount(ctx, t0.Add(time.Second)); n != 1 {
		t.Fatalf("queued after the retry: %d, want 1", n)
	}
	wantErr(t, s.RetryProfileItem(ctx, e.ID, p.ID, t0), store.ErrConflict) // pending, not failed

	// The profile is deleted while the item is failed: the retry is
	// refused and the item left as the deletion left it.
	claimAll(t, s, t0.Add(2*time.Second))
	if err := s.PutProfileItem(ctx, &failed); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProfile(ctx, p.ID, t0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.RetryProfileItem(ctx, e.ID, p.ID, t0), store.ErrNotFound)
	if its, _ := s.ProfileItems(ctx, e.ID); len(its) != 1 || its[0].State != reconcile.Failed {
		t.Fatalf("a retry of a deleted profile changed its item: %+v", its)
	}
	// The reconciler then forgets the item; a late retry brings nothing back.
	if err := s.DeleteProfileItem(ctx, e.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.RetryProfileItem(ctx, e.ID, p.ID, t0), store.ErrNotFound)
	if its, _ := s.ProfileItems(ctx, e.ID); len(its) != 0 {
		t.Fatalf("a retry resurrected the item: %+v", its)
	}
}
