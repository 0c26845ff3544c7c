package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// RecordResultNext with a store.ProfileAck: an acknowledged InstallProfile
// moves its profile item in the result's own transaction and the
// verifying ProfileList it queues is the next command handed out; a
// failed acknowledgement is rolled back alone (the result stays, Done is
// false); other results and commands that are not Pomona's are left as
// they were.
func testResultAcknowledgesProfile(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn, _, e, other, chans, t0 := twoDevicesOfAlice(t, s)
	p := mustProfile(t, s, tn.ID, "com.example.a")
	// queue stores a command for en's channel and hands it out (sent).
	queue := func(en *store.Enrollment, rt string) string {
		t.Helper()
		c := &store.CommandRecord{UUID: id("C"), RequestType: rt, Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "test"}
		if err := s.Enqueue(ctx, c, []string{chans[en.ID]}); err != nil {
			t.Fatal(err)
		}
		if q, err := s.NextCommand(ctx, en.ID, chans[en.ID], true, t0); err != nil || q.UUID != c.UUID {
			t.Fatalf("next: %+v %v", q, err)
		}
		return c.UUID
	}
	item := func(en *store.Enrollment, cmd string) {
		t.Helper()
		if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: en.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing",
			Version: 1, Hash: "h", CommandUUID: cmd, Error: "earlier attempt failed", UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	itemOf := func(en *store.Enrollment) store.ProfileItem {
		t.Helper()
		its, err := s.ProfileItems(ctx, en.ID)
		if err != nil || len(its) != 1 {
			t.Fatalf("items: %+v %v", its, err)
		}
		return its[0]
	}
	resultOf := func(en *store.Enrollment, cmd string) store.QueuedCommand {
		t.Helper()
		qs, err := s.QueuedCommands(ctx, chans[en.ID], 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if q.UUID == cmd {
				return q
			}
		}
		t.Fatalf("%s not in the queue", cmd)
		return store.QueuedCommand{}
	}
	verifies := 0
	newAck := func(uuid string) *store.ProfileAck {
		return &store.ProfileAck{Verify: func() *store.CommandRecord {
			verifies++
			if uuid == "" {
				uuid = id("V")
			}
			return &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"}
		}}
	}

	// The install acknowledged: the item moves, the ProfileList is queued
	// and handed out with the answer.
	install := queue(e, "InstallProfile")
	item(e, install)
	ack := newAck("")
	rt, q, err := s.RecordResultNext(ctx, e.ID, chans[e.ID], install, mdm.Acknowledged, []byte("ok"), t0, nil, ack)
	if err != nil || rt != "InstallProfile" || !ack.Done || !ack.Queued {
		t.Fatalf("acknowledged install: %q %+v %v", rt, ack, err)
	}
	if q == nil || q.RequestType != "ProfileList" || q.Status != store.QueueSent {
		t.Fatalf("the verifying ProfileList is not the next command: %+v", q)
	}
	if it := itemOf(e); !it.Acknowledged || it.Error != "" || it.CommandUUID != install {
		t.Fatalf("item after the acknowledgement: %+v", it)
	}
	if got := resultOf(e, install); got.Status != mdm.Acknowledged || string(got.Result) != "ok" {
		t.Fatalf("result: %+v", got)
	}
	// A repeat: handled, nothing more queued.
	ack = newAck("")
	if _, _, err := s.RecordResultNext(ctx, e.ID, chans[e.ID], install, mdm.Acknowledged, []byte("ok"), t0, nil, ack); err != nil || !ack.Done || ack.Queued {
		t.Fatalf("repeat: %+v %v", ack, err)
	}
	// The ProfileList's answer with List: the items verified in the
	// result's transaction, what was put returned; List is not asked for
	// anything but a ProfileList.
	var listed []string
	ack = &store.ProfileAck{List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		listed = nil
		for _, it := range items {
			listed = append(listed, it.ProfileID)
		}
		it := items[0]
		it.State = "installed"
		return []store.ProfileItem{it}, nil
	}}
	rt, _, err = s.RecordResultNext(ctx, e.ID, chans[e.ID], q.UUID, mdm.Acknowledged, []byte("list"), t0, nil, ack)
	if err != nil || rt != "ProfileList" || !ack.Done || len(ack.Put) != 1 || len(listed) != 1 || listed[0] != p.ID {
		t.Fatalf("ProfileList: %q %+v %v %v", rt, ack, listed, err)
	}
	if it := itemOf(e); it.State != "installed" {
		t.Fatalf("item after the ProfileList: %+v", it)
	}
	if got := resultOf(e, q.UUID); got.Status != mdm.Acknowledged || string(got.Result) != "list" {
		t.Fatalf("ProfileList result: %+v", got)
	}
	// Not an install: not asked, not done.
	before := verifies
	info := queue(e, "DeviceInformation")
	ack = newAck("")
	if rt, _, err := s.RecordResultNext(ctx, e.ID, chans[e.ID], info, mdm.Acknowledged, nil, t0, nil, ack); err != nil || rt != "DeviceInformation" || ack.Done || verifies != before {
		t.Fatalf("DeviceInformation: %q %+v %v (verify built %d times)", rt, ack, err, verifies-before)
	}
	// An install that is not Pomona's (no item has it): done, nothing
	// queued, the result stored.
	foreign := queue(e, "InstallProfile")
	ack = newAck("")
	if _, _, err := s.RecordResultNext(ctx, e.ID, chans[e.ID], foreign, mdm.Acknowledged, []byte("f"), t0, nil, ack); err != nil || !ack.Done || ack.Queued {
		t.Fatalf("foreign install: %+v %v", ack, err)
	}
	if got := resultOf(e, foreign); got.Status != mdm.Acknowledged {
		t.Fatalf("foreign result: %+v", got)
	}

	// The acknowledgement fails (its ProfileList's UUID is taken): its
	// writes are rolled back, the result stays, Done says so.
	install2 := queue(other, "InstallProfile")
	item(other, install2)
	ack = newAck(install) // a command UUID already stored
	rt, q, err = s.RecordResultNext(ctx, other.ID, chans[other.ID], install2, mdm.Acknowledged, []byte("ok2"), t0, nil, ack)
	if err != nil || rt != "InstallProfile" || ack.Done || ack.Queued || q != nil {
		t.Fatalf("failed acknowledgement: %q %+v %+v %v", rt, ack, q, err)
	}
	if got := resultOf(other, install2); got.Status != mdm.Acknowledged || string(got.Result) != "ok2" {
		t.Fatalf("the result was lost with the acknowledgement: %+v", got)
	}
	if it := itemOf(other); it.Acknowledged || it.Error == "" {
		t.Fatalf("the failed acknowledgement was not rolled back: %+v", it)
	}
	// A failing verification (an item put for another enrollment) is
	// rolled back alone too.
	list := queue(other, "ProfileList")
	ack = &store.ProfileAck{List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		it := items[0]
		it.State, it.DeviceID = "installed", e.ID
		return []store.ProfileItem{it}, nil
	}}
	if _, _, err := s.RecordResultNext(ctx, other.ID, chans[other.ID], list, mdm.Acknowledged, []byte("l2"), t0, nil, ack); err != nil || ack.Done || ack.Put != nil {
		t.Fatalf("failed verification: %+v %v", ack, err)
	}
	if got := resultOf(other, list); got.Status != mdm.Acknowledged || string(got.Result) != "l2" {
		t.Fatalf("the result was lost with the verification: %+v", got)
	}
	if it := itemOf(other); it.State != "installing" {
		t.Fatalf("the failed verification was not rolled back: %+v", it)
	}
	// A verification whose put the database refuses (an item of a
	// profile that does not exist: a foreign key), also where the put
	// goes out with the transaction's next statement (PostgreSQL's
	// pipeline), is rolled back alone too.
	list = queue(other, "ProfileList")
	ack = &store.ProfileAck{List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		it := items[0]
		it.State, it.ProfileID = "installed", "no-such-profile"
		return []store.ProfileItem{it}, nil
	}}
	if _, _, err := s.RecordResultNext(ctx, other.ID, chans[other.ID], list, mdm.Acknowledged, []byte("l3"), t0, nil, ack); err != nil || ack.Done || ack.Put != nil {
		t.Fatalf("verification refused by the database: %+v %v", ack, err)
	}
	if got := resultOf(other, list); got.Status != mdm.Acknowledged || string(got.Result) != "l3" {
		t.Fatalf("the result was lost with the refused verification: %+v", got)
	}
	if it := itemOf(other); it.State != "installing" || it.ProfileID != p.ID {
		t.Fatalf("the refused verification was not rolled back: %+v", it)
	}
	// The caller's own acknowledgement (the hook) still works afterwards.
	if _, queued, err := s.AcknowledgeProfileItem(ctx, other.ID, install2, chans[other.ID], newAck("").Verify(), t0); err != nil || !queued {
		t.Fatalf("acknowledgement after the failed one: %v %v", queued, err)
	}
}

// Many devices answering their InstallProfiles at once (a wave: 32
// answers in flight) touch disjoint rows — each its queue row and profile
// item, a new ProfileList command and queue row of its own — so none of
// the result transactions may conflict with another: every answer is
// applied in its own transaction (Done, Queued) and a store that reports
// its retried transactions (TxRetries) retried none. On PostgreSQL at
// SERIALIZABLE the page-granular predicate locks of these small tables
// made neighbours conflict (docs/benchmarks.md, "Session 8 — pgwave").
func testConcurrentProfileAnswers(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "W", "w.example")
	u := mustUser(t, s, tn.ID, "wave@w.example")
	p := mustProfile(t, s, tn.ID, "com.example.wave")
	t0 := now()
	const devices = 48
	install := &store.CommandRecord{UUID: id("I"), RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"}
	ens := make([]*store.Enrollment, devices)
	chans := make([]string, devices)
	for i := range ens {
		ens[i] = enrolledFor(t, s, tn.ID, u.ID)
		ch := &store.Channel{ID: id("ch"), DeviceID: ens[i].ID, Kind: "device", PushToken: []byte("t"), CreatedAt: t0, UpdatedAt: t0, LastSeenAt: t0}
		if err := s.PutChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		chans[i] = ch.ID
	}
	// One shared InstallProfile command, as an assignment queues it.
	if err := s.Enqueue(ctx, install, chans); err != nil {
		t.Fatal(err)
	}
	for i, en := range ens {
		if q, err := s.NextCommand(ctx, en.ID, chans[i], true, t0); err != nil || q.UUID != install.UUID {
			t.Fatalf("next: %+v %v", q, err)
		}
		if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: en.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing",
			Version: 1, Hash: "h", CommandUUID: install.UUID, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	retries := func() int64 {
		if r, ok := s.(interface{ TxRetries() int64 }); ok {
			return r.TxRetries()
		}
		return 0
	}
	before := retries()
	start := make(chan struct{})
	errs := make(chan error, devices)
	for i, en := range ens {
		go func() {
			ack := &store.ProfileAck{Verify: func() *store.CommandRecord {
				return &store.CommandRecord{UUID: id("V"), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"}
			}}
			<-start
			rt, q, err := s.RecordResultNext(ctx, en.ID, chans[i], install.UUID, mdm.Acknowledged, []byte("ok"), t0, nil, ack)
			switch {
			case err != nil:
				errs <- err
			case rt != "InstallProfile" || !ack.Done || !ack.Queued || q == nil || q.RequestType != "ProfileList":
				errs <- fmt.Errorf("device %d: %q %+v next %+v", i, rt, ack, q)
			default:
				errs <- nil
			}
		}()
	}
	close(start)
	for range ens {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := retries() - before; n != 0 {
		t.Errorf("%d of %d concurrent answers' transactions were retried, want none (they share no row)", n, devices)
	}
	for i, en := range ens {
		its, err := s.ProfileItems(ctx, en.ID)
		if err != nil || len(its) != 1 || !its[0].Acknowledged {
			t.Fatalf("device %d items: %+v %v", i, its, err)
		}
	}
}
