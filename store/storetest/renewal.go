package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// testRenewals: candidates are the newest certificate of enrolled
// enrollments inside the window, keyset-paged; a renewal challenge issues
// a successor recorded as renewing the old certificate and marks the
// renewal done; failures and restarts keep count.
func testRenewals(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	mk := func(apple string, challenge string, notAfter time.Time) (*store.Enrollment, *store.IdentityCert) {
		t.Helper()
		e := mustEnrollment(t, s, tn.ID, u.ID, []byte(challenge), t0.Add(time.Hour))
		c := &store.IdentityCert{Serial: "s-" + challenge, DeviceID: e.ID, SHA256: []byte("h-" + challenge), NotBefore: t0, NotAfter: notAfter, IssuedAt: t0}
		if err := s.ConsumeSCEPChallenge(ctx, []byte(challenge), t0, c); err != nil {
			t.Fatal(err)
		}
		if apple != "" {
			if err := s.BindAppleEnrollment(ctx, e.ID, apple, store.DeviceInfo{}, t0); err != nil {
				t.Fatal(err)
			}
		}
		return e, c
	}
	e1, c1 := mk("A1", "c1", t0.Add(10*24*time.Hour))
	_, _ = mk("A2", "c2", t0.Add(20*24*time.Hour))
	mk("", "c3", t0.Add(5*24*time.Hour))     // never authenticated: not a candidate
	mk("A4", "c4", t0.Add(100*24*time.Hour)) // outside the window
	mk("A5", "c5", t0.Add(-24*time.Hour))    // expired already
	window := t0.Add(60 * 24 * time.Hour)

	got, err := s.RenewalCandidates(ctx, t0, "", window, 1)
	if err != nil || len(got) != 1 || got[0].Serial != c1.Serial || got[0].Renewal != nil || !got[0].NotAfter.Equal(c1.NotAfter) {
		t.Fatalf("first page: %+v %v", got, err)
	}
	got, err = s.RenewalCandidates(ctx, got[0].NotAfter, got[0].Serial, window, 10)
	if err != nil || len(got) != 1 || got[0].Serial != "s-c2" {
		t.Fatalf("second page: %+v %v", got, err)
	}

	r := &store.Renewal{Serial: c1.Serial, DeviceID: e1.ID, QueuedAt: t0}
	if err := s.StartRenewal(ctx, r, &store.SCEPChallenge{Hash: []byte("r1"), ExpiresAt: t0.Add(time.Hour)}); err != nil || r.Attempts != 1 {
		t.Fatalf("start: %v %+v", err, r)
	}
	if err := s.StartRenewal(ctx, &store.Renewal{Serial: c1.Serial, DeviceID: e1.ID, QueuedAt: t0}, &store.SCEPChallenge{Hash: []byte("r1b"), ExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second start of a queued renewal: %v", err)
	}
	if err := s.SetRenewalCommand(ctx, c1.Serial, "CMD-1", t0); err != nil {
		t.Fatal(err)
	}
	if rr, err := s.RenewalByCommand(ctx, "CMD-1"); err != nil || rr.Serial != c1.Serial || rr.Status != store.RenewalQueued {
		t.Fatalf("by command: %+v %v", rr, err)
	}
	if _, err := s.RenewalByCommand(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown command: %v", err)
	}
	ch, err := s.SCEPChallenge(ctx, []byte("r1"))
	if err != nil || ch.Kind != store.ChallengeRenewal || ch.Renews != c1.Serial || ch.DeviceID != e1.ID {
		t.Fatalf("renewal challenge: %+v %v", ch, err)
	}
	if ch, _ := s.SCEPChallenge(ctx, []byte("c2")); ch.Kind != store.ChallengeEnrollment {
		t.Fatalf("enrollment challenge kind %q", ch.Kind)
	}
	got, _ = s.RenewalCandidates(ctx, t0, "", window, 10)
	if len(got) != 2 || got[0].Renewal == nil || got[0].Renewal.Status != store.RenewalQueued || got[0].Renewal.CommandUUID != "CMD-1" {
		t.Fatalf("candidate with its renewal: %+v", got)
	}

	// Stale, then failed, then restarted.
	if st, err := s.StaleRenewals(ctx, t0.Add(time.Second), 10); err != nil || len(st) != 1 || st[0].Serial != c1.Serial {
		t.Fatalf("stale: %+v %v", st, err)
	}
	if ok, err := s.FailRenewal(ctx, c1.Serial, "no SCEP", t0.Add(time.Minute)); !ok || err != nil {
		t.Fatalf("fail: %v %v", ok, err)
	}
	if ok, _ := s.FailRenewal(ctx, c1.Serial, "again", t0.Add(time.Minute)); ok {
		t.Fatal("a failed renewal failed again")
	}
	if st, _ := s.StaleRenewals(ctx, t0.Add(time.Hour), 10); len(st) != 0 {
		t.Fatalf("a failed renewal is stale: %+v", st)
	}
	if lr, err := s.LatestRenewal(ctx, e1.ID); err != nil || lr.Status != store.RenewalFailed || lr.Error != "no SCEP" {
		t.Fatalf("latest: %+v %v", lr, err)
	}
	r2 := &store.Renewal{Serial: c1.Serial, DeviceID: e1.ID, QueuedAt: t0.Add(time.Hour)}
	if err := s.StartRenewal(ctx, r2, &store.SCEPChallenge{Hash: []byte("r2"), ExpiresAt: t0.Add(2 * time.Hour)}); err != nil || r2.Attempts != 2 {
		t.Fatalf("restart: %v %+v", err, r2)
	}

	// SCEP with the renewal challenge: the successor renews c1, the
	// renewal is done, and c1 is no longer a candidate.
	next := &store.IdentityCert{Serial: "s-next", DeviceID: e1.ID, SHA256: []byte("h-next"), NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), IssuedAt: t0.Add(time.Hour)}
	if err := s.ConsumeSCEPChallenge(ctx, []byte("r2"), t0.Add(time.Hour), next); err != nil {
		t.Fatal(err)
	}
	if ic, err := s.IdentityCert(ctx, "s-next"); err != nil || ic.RenewedFrom != c1.Serial {
		t.Fatalf("successor: %+v %v", ic, err)
	}
	if lr, _ := s.LatestRenewal(ctx, e1.ID); lr.Status != store.RenewalDone || lr.NewSerial != "s-next" {
		t.Fatalf("after SCEP: %+v", lr)
	}
	got, _ = s.RenewalCandidates(ctx, t0, "", window, 10)
	if len(got) != 1 || got[0].Serial != "s-c2" {
		t.Fatalf("candidates after renewal: %+v", got)
	}
	if _, err := s.LatestRenewal(ctx, "en_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no renewal: %v", err)
	}

	// The immutable profile keys: recorded, replaced, read back.
	if _, err := s.ProfileKeys(ctx, e1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("keys before any: %v", err)
	}
	k := store.ProfileKeys{ManagedAppleID: "alice@appleid.example", Topic: "com.apple.mgmt.External.x", ServerURL: "https://a/mdm/connect", CheckInURL: "https://a/mdm/checkin"}
	for i := 0; i < 2; i++ {
		if err := s.PutProfileKeys(ctx, e1.ID, k, t0); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ProfileKeys(ctx, e1.ID); err != nil || *got != k {
			t.Fatalf("keys %d: %+v %v", i, got, err)
		}
		k.Topic = "com.apple.mgmt.External.y"
	}
	if err := s.PutProfileKeys(ctx, "en_none", k, t0); err == nil {
		t.Fatal("keys stored for an unknown enrollment")
	}
}
