package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Re-enrollment and silence (issue 13, item 3).
func lifecycleTests() []namedTest {
	return []namedTest{
		{"Predecessor", testPredecessor},
		{"SilentFilter", testSilentFilter},
	}
}

func testPredecessor(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "T", "t.example")
	alice := mustUser(t, s, tn.ID, "alice@t.example")
	bob := mustUser(t, s, tn.ID, "bob@t.example")
	old := mustEnrollment(t, s, tn.ID, alice.ID, nil, time.Time{})
	next := mustEnrollment(t, s, tn.ID, alice.ID, nil, time.Time{})
	third := mustEnrollment(t, s, tn.ID, alice.ID, nil, time.Time{})
	bobs := mustEnrollment(t, s, tn.ID, bob.ID, nil, time.Time{})

	wantErr(t, s.SetPredecessor(ctx, "en-nobody", old.ID), store.ErrNotFound)
	wantErr(t, s.SetPredecessor(ctx, next.ID, next.ID), store.ErrConflict)
	wantErr(t, s.SetPredecessor(ctx, bobs.ID, old.ID), store.ErrConflict)      // another user's
	wantErr(t, s.SetPredecessor(ctx, next.ID, "en-nobody"), store.ErrConflict) // no such enrollment
	if err := s.SetPredecessor(ctx, next.ID, old.ID); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Enrollment(ctx, next.ID); err != nil || e.PredecessorID != old.ID {
		t.Fatalf("predecessor of next = %+v, %v", e, err)
	}
	if e, _ := s.Enrollment(ctx, old.ID); e.PredecessorID != "" {
		t.Fatalf("old got a predecessor %q", e.PredecessorID)
	}
	wantErr(t, s.SetPredecessor(ctx, next.ID, third.ID), store.ErrConflict) // has one already
	wantErr(t, s.SetPredecessor(ctx, third.ID, old.ID), store.ErrConflict)  // old is next's already
	if e, _ := s.Enrollment(ctx, third.ID); e.PredecessorID != "" {
		t.Fatalf("a refused link was written: %q", e.PredecessorID)
	}
	// The successor is found by filter.
	got, err := s.Enrollments(ctx, store.EnrollmentFilter{PredecessorID: old.ID})
	if err != nil || len(got) != 1 || got[0].ID != next.ID {
		t.Fatalf("successor of old = %v, %v", got, err)
	}
	if got, _ := s.Enrollments(ctx, store.EnrollmentFilter{PredecessorID: third.ID}); len(got) != 0 {
		t.Fatalf("third has a successor: %v", got)
	}
	// A chain: third succeeds next.
	if err := s.SetPredecessor(ctx, third.ID, next.ID); err != nil {
		t.Fatal(err)
	}
}

func testSilentFilter(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	tn := mustTenant(t, s, "T", "t.example")
	u := mustUser(t, s, tn.ID, "alice@t.example")
	seen := map[string]time.Time{}
	// Enrolled devices last seen 40, 20 and 1 days ago; one pending.
	for i, days := range []int{40, 20, 1} {
		e := mustEnrollment(t, s, tn.ID, u.ID, nil, time.Time{})
		at := t0.Add(-time.Duration(days) * 24 * time.Hour)
		if err := s.BindAppleEnrollment(ctx, e.ID, fmt.Sprint("APPLE-S", i), store.DeviceInfo{}, at); err != nil {
			t.Fatal(err)
		}
		seen[e.ID] = at
	}
	mustEnrollment(t, s, tn.ID, u.ID, nil, time.Time{})
	silent := func(days int) map[string]bool {
		t.Helper()
		es, err := s.Enrollments(ctx, store.EnrollmentFilter{Status: store.EnrollmentEnrolled, SeenBefore: t0.Add(-time.Duration(days) * 24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, e := range es {
			if !e.LastSeenAt.Equal(seen[e.ID]) {
				t.Fatalf("%s last seen %v, want %v", e.ID, e.LastSeenAt, seen[e.ID])
			}
			out[e.ID] = true
		}
		return out
	}
	if n := len(silent(30)); n != 1 {
		t.Fatalf("%d devices silent for 30 days, want 1", n)
	}
	if n := len(silent(10)); n != 2 {
		t.Fatalf("%d devices silent for 10 days, want 2", n)
	}
	// Being seen again takes a device out.
	for id, at := range seen {
		if at.Before(t0.Add(-30 * 24 * time.Hour)) {
			chs := &store.Channel{ID: id + "-ch", DeviceID: id, Kind: "device", PushToken: []byte{1}, CreatedAt: t0, UpdatedAt: t0}
			if err := s.PutChannel(ctx, chs); err != nil {
				t.Fatal(err)
			}
			if err := s.TouchChannel(ctx, id, chs.ID, t0); err != nil {
				t.Fatal(err)
			}
			seen[id] = t0
		}
	}
	if n := len(silent(30)); n != 0 {
		t.Fatalf("%d devices silent for 30 days after a touch, want 0", n)
	}
	// The dashboard counts the same devices.
	d, err := s.Dashboard(ctx, t0.Add(-24*time.Hour), t0.Add(-10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d.PendingDevices != 1 {
		t.Fatalf("dashboard: %d devices not seen for 10 days, want 1", d.PendingDevices)
	}
}
