package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// A device's answers to profile commands (store.ProfileResultStore): the
// acknowledgement moves only the enrollment's own item and queues one
// verifying ProfileList per wait; ProfileList's changes are written in one
// transaction or not at all.
func testProfileResults(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn, u, e, other, chans, t0 := twoDevicesOfAlice(t, s)
	p1, p2 := mustProfile(t, s, tn.ID, "com.example.a"), mustProfile(t, s, tn.ID, "com.example.b")
	put := func(en *store.Enrollment, p *store.ConfigProfile, cmd string) {
		t.Helper()
		if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: en.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing",
			Version: 1, Hash: "h", CommandUUID: cmd, Error: "earlier attempt failed", UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	put(e, p1, "CMD-A")
	put(e, p2, "CMD-B")
	put(other, p1, "CMD-O")
	verify := func() *store.CommandRecord {
		return &store.CommandRecord{UUID: id("V"), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"}
	}
	lists := func(en *store.Enrollment) int {
		t.Helper()
		q, err := s.QueuedCommands(ctx, chans[en.ID], 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range q {
			if c.RequestType == "ProfileList" {
				n++
			}
		}
		return n
	}

	// Another enrollment's command, or none, is not found and writes nothing.
	for _, cmd := range []string{"CMD-O", "nope", ""} {
		if _, q, err := s.AcknowledgeProfileItem(ctx, e.ID, cmd, chans[e.ID], verify(), t0); !errors.Is(err, store.ErrNotFound) || q {
			t.Fatalf("%q: %v %v", cmd, q, err)
		}
	}
	if lists(e) != 0 {
		t.Fatal("a ProfileList was queued for an unknown command")
	}
	it, q, err := s.AcknowledgeProfileItem(ctx, e.ID, "CMD-A", chans[e.ID], verify(), t0)
	if err != nil || !q || !it.Acknowledged || it.Error != "" || it.State != "installing" || it.ProfileID != p1.ID {
		t.Fatalf("first acknowledgement: %+v %v %v", it, q, err)
	}
	// A repeat, and the device's other install while the ProfileList
	// waits, queue nothing more.
	if _, q, err := s.AcknowledgeProfileItem(ctx, e.ID, "CMD-A", chans[e.ID], verify(), t0); err != nil || q {
		t.Fatalf("repeat: %v %v", q, err)
	}
	if it, q, err := s.AcknowledgeProfileItem(ctx, e.ID, "CMD-B", chans[e.ID], verify(), t0); err != nil || q || !it.Acknowledged {
		t.Fatalf("second install: %+v %v %v", it, q, err)
	}
	if n := lists(e); n != 1 {
		t.Fatalf("%d ProfileLists queued", n)
	}
	if lists(other) != 0 {
		t.Fatal("the other enrollment got a ProfileList")
	}
	if its, _ := s.ProfileItems(ctx, other.ID); len(its) != 1 || its[0].Acknowledged {
		t.Fatalf("the other enrollment's item moved: %+v", its)
	}
	// Without a command to queue only the item moves.
	if it, q, err := s.AcknowledgeProfileItem(ctx, other.ID, "CMD-O", chans[other.ID], nil, t0); err != nil || q || !it.Acknowledged {
		t.Fatalf("without verify: %+v %v %v", it, q, err)
	}
	if lists(other) != 0 {
		t.Fatal("a ProfileList was queued without one given")
	}

	// ProfileList: the enrollment's items, by identifier, in; changes out.
	t1 := t0.Add(1e9)
	var seen []string
	got, err := s.VerifyProfileItems(ctx, e.ID, func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		seen = nil
		for _, it := range items {
			seen = append(seen, it.Identifier)
		}
		a := items[0]
		a.State, a.UpdatedAt = "installed", t1
		return []store.ProfileItem{a}, []string{items[1].ProfileID}
	})
	if err != nil || len(got) != 1 || got[0].State != "installed" || len(seen) != 2 || seen[0] != "com.example.a" || seen[1] != "com.example.b" {
		t.Fatalf("verify: %+v %v %v", got, seen, err)
	}
	its, _ := s.ProfileItems(ctx, e.ID)
	if len(its) != 1 || its[0].ProfileID != p1.ID || its[0].State != "installed" || !its[0].UpdatedAt.Equal(t1) || !its[0].Acknowledged {
		t.Fatalf("after verify: %+v", its)
	}
	// An item of another enrollment is refused, and nothing of the call
	// is written.
	if _, err := s.VerifyProfileItems(ctx, e.ID, func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		a := items[0]
		a.State = "pending"
		b := a
		b.DeviceID = other.ID
		return []store.ProfileItem{a, b}, nil
	}); err == nil {
		t.Fatal("an item of another enrollment was written")
	}
	if its, _ := s.ProfileItems(ctx, e.ID); len(its) != 1 || its[0].State != "installed" {
		t.Fatalf("a refused verification wrote: %+v", its)
	}
	// No items: verify is not called.
	fresh := enrolledFor(t, s, tn.ID, u.ID)
	if got, err := s.VerifyProfileItems(ctx, fresh.ID, func([]store.ProfileItem) ([]store.ProfileItem, []string) {
		t.Fatal("called without items")
		return nil, nil
	}); err != nil || len(got) != 0 {
		t.Fatal(got, err)
	}
}

// twoDevicesOfAlice is the profile-result tests' fixture: tenant A, its
// user alice, two of her enrollments (e and other) with a device channel
// each (chans: enrollment ID → channel ID), and the time they were made.
func twoDevicesOfAlice(t *testing.T, s store.Store) (*store.Tenant, *store.User, *store.Enrollment, *store.Enrollment, map[string]string, time.Time) {
	t.Helper()
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e, other := enrolledFor(t, s, tn.ID, u.ID), enrolledFor(t, s, tn.ID, u.ID)
	t0 := now()
	chans := map[string]string{}
	for _, en := range []*store.Enrollment{e, other} {
		ch := &store.Channel{ID: id("ch"), DeviceID: en.ID, Kind: "device", PushToken: []byte("t"), CreatedAt: t0, UpdatedAt: t0, LastSeenAt: t0}
		if err := s.PutChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		chans[en.ID] = ch.ID
	}
	return tn, u, e, other, chans, t0
}
