package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// TestProfileWorkSentAhead: RecordResultNext sends its profile work's
// first statement with the result's, guessed from the store.ProfileAck
// before the command's type is read (sqlstore's sendProfileAhead). A
// guess that does not fit the command does nothing: a RemoveProfile's
// answer given an install's ProfileAck (the server does so when the
// device names no RequestType) leaves the item of that removal
// unacknowledged (without the guessed statement's type check it is
// acknowledged), and an install's answer given a ProfileList's
// ProfileAck is acknowledged by its own statement, one round trip more.
func TestProfileWorkSentAhead(t *testing.T) {
	ctx := context.Background()
	s, log := tracedStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &store.ConfigProfile{ID: "p1", TenantID: "t1", Identifier: "com.example.p1", Name: "p1", Platforms: []string{"iOS"},
		PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateProfile(ctx, p, &store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	send := func(uuid, rt, state string) {
		t.Helper()
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: rt, Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: "e1", ProfileID: "p1", Identifier: "com.example.p1", State: state,
			Version: 1, Hash: "h1", CommandUUID: uuid, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if q, err := s.NextCommand(ctx, "e1", "CH-1", true, now); err != nil || q.UUID != uuid {
			t.Fatalf("next: %+v %v", q, err)
		}
		log.Take()
	}
	count := func(what string, want, trips int) {
		t.Helper()
		if got, n := log.TakeTrips(); len(got) != want || n != trips {
			t.Errorf("%s sent %d statements in %d round trips, want %d in %d:\n%s", what, len(got), n, want, trips, strings.Join(got, "\n"))
		}
	}
	verifies := 0
	verify := func() *store.CommandRecord {
		verifies++
		return &store.CommandRecord{UUID: "list-1", RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now, CreatedBy: "profiles"}
	}

	send("r1", "RemoveProfile", "removing")
	ack := &store.ProfileAck{Verify: verify}
	if rt, q, err := s.RecordResultNext(ctx, "e1", "CH-1", "r1", "Acknowledged", []byte("<plist/>"), now, nil, ack); err != nil || rt != "RemoveProfile" || ack.Done || ack.Queued || q != nil {
		t.Fatalf("removal answer: %q %+v %+v %v", rt, ack, q, err)
	}
	count("a removal's answer with an install's ProfileAck", 5, 2)
	if its, err := s.ProfileItems(ctx, "e1"); err != nil || len(its) != 1 || its[0].Acknowledged || verifies != 0 {
		t.Fatalf("the removal's item was acknowledged as an install (%d verifying commands built): %+v %v", verifies, its, err)
	}

	send("i1", "InstallProfile", "installing")
	ack = &store.ProfileAck{Verify: verify, List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		t.Error("an install's answer verified as a ProfileList")
		return nil, nil
	}}
	if rt, q, err := s.RecordResultNext(ctx, "e1", "CH-1", "i1", "Acknowledged", []byte("<plist/>"), now, nil, ack); err != nil || rt != "InstallProfile" || !ack.Done || !ack.Queued || q == nil || q.UUID != "list-1" {
		t.Fatalf("install answer: %q %+v %+v %v", rt, ack, q, err)
	}
	// BEGIN, the result, the guessed items read (none); the item's own
	// statement; the verifying enqueue, the take, COMMIT.
	count("an install's answer with a ProfileList's ProfileAck", 7, 3)
	if its, err := s.ProfileItems(ctx, "e1"); err != nil || len(its) != 1 || !its[0].Acknowledged {
		t.Fatalf("items after the install answer: %+v %v", its, err)
	}
}
