package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// tracedStore is a migrated store whose statements log records, with
// tenant t1, user u1, enrollment e1 and its device channel CH-1.
func tracedStore(t *testing.T) (*sqlstore.Store, *pgtest.StatementLog) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	migrated, err := postgres.Open(ctx, url) // the schema
	if err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	db, log := pgtest.TracedDB(t, url)
	s := sqlstore.New(postgres.Dialect, db, db, "traced")
	t.Cleanup(func() { s.Close() })

	now := time.Now().UTC().Truncate(time.Microsecond)
	tn := &store.Tenant{ID: "t1", Name: "T", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	u := &store.User{ID: "u1", TenantID: "t1", Email: "a@t.example", ManagedAppleID: "a@t.example", Name: "A", Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	e := &store.Enrollment{ID: "e1", TenantID: "t1", UserID: "u1", TokenHash: []byte("tok"), Platform: "iOS", Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateEnrollment(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChannel(ctx, &store.Channel{ID: "CH-1", DeviceID: "e1", Kind: "device", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	log.Take()
	return s, log
}

// TestEnqueueIsOneStatement: an enqueue to one device's channel — every
// API and job enqueue — is one round trip to PostgreSQL (the command, its
// queue row and the audit entry in one statement, autocommitted), not
// BEGIN, three INSERTs and COMMIT; and the row it wrote is the device's
// next command.
func TestEnqueueIsOneStatement(t *testing.T) {
	ctx := context.Background()
	s, log := tracedStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	audit := &store.AuditEntry{At: now, Actor: "key:k", Action: "POST /api/v1/devices/{id}/commands", Target: "e1", Status: 201}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "c1", RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: now, Audit: audit}, []string{"CH-1"}); err != nil {
		t.Fatal(err)
	}
	if got := log.Take(); len(got) != 1 {
		t.Fatalf("an enqueue with its audit entry sent %d statements, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	if audit.ID == 0 {
		t.Fatal("the audit entry's id was not set")
	}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "c2", RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}); err != nil {
		t.Fatal(err)
	}
	if got := log.Take(); len(got) != 1 {
		t.Fatalf("an enqueue without an audit entry sent %d statements, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	// Delivery order: c1, then c2 (a later seq).
	for _, want := range []string{"c1", "c2"} {
		q, err := s.NextCommand(ctx, "e1", "CH-1", true, now)
		if err != nil || q.UUID != want {
			t.Fatalf("next: %+v %v, want %s", q, err, want)
		}
		if _, err := s.RecordResult(ctx, "e1", "CH-1", want, "Acknowledged", []byte("<plist/>"), now, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPollAndResultStatements counts a round trip's device side on
// PostgreSQL: the fetching poll's next command is read and marked sent in
// one statement, and an acknowledged result with an inventory section is
// BEGIN, the status and inventory read and the result write in one
// statement, the inventory write and the next command's claim in one
// statement (two before session 12), COMMIT — also when nothing is
// next (the write is made all the same: the inventory is checked). Since
// session 14 in two network round trips (four before): BEGIN goes out
// with the first statement, COMMIT with the take (the dialect's
// Pipeline).
func TestPollAndResultStatements(t *testing.T) {
	ctx := context.Background()
	s, log := tracedStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	enqueue := func(uuid string) {
		t.Helper()
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: now},
			[]string{"CH-1"}); err != nil {
			t.Fatal(err)
		}
		log.Take()
	}
	count := func(what string, want, trips int) {
		t.Helper()
		if got, n := log.TakeTrips(); len(got) != want || n != trips {
			t.Errorf("%s sent %d statements in %d round trips, want %d in %d:\n%s", what, len(got), n, want, trips, strings.Join(got, "\n"))
		}
	}
	osv := "26.1"
	inv := func(string) (string, any, *store.DeviceInfo, bool) {
		return "device_information", map[string]any{"OSVersion": osv}, &store.DeviceInfo{OSVersion: osv}, true
	}
	enqueue("c1")
	enqueue("c2")
	q, err := s.NextCommand(ctx, "e1", "CH-1", true, now)
	if err != nil || q.UUID != "c1" || q.Status != store.QueueSent {
		t.Fatalf("next: %+v %v", q, err)
	}
	count("a poll that fetches a command", 1, 1)
	rt, q, err := s.RecordResultNext(ctx, "e1", "CH-1", "c1", "Acknowledged", []byte("<plist/>"), now, inv, nil)
	if err != nil || rt != "DeviceInformation" || q == nil || q.UUID != "c2" {
		t.Fatalf("result: %s %+v %v", rt, q, err)
	}
	count("an acknowledged result with inventory and a next command", 4, 2)
	osv = "26.2"
	rt, q, err = s.RecordResultNext(ctx, "e1", "CH-1", "c2", "Acknowledged", []byte("<plist/>"), now, inv, nil)
	if err != nil || rt != "DeviceInformation" || q != nil {
		t.Fatalf("result: %s %+v %v", rt, q, err)
	}
	count("an acknowledged result with inventory and nothing next", 4, 2)
	if e, err := s.Enrollment(ctx, "e1"); err != nil || e.OSVersion != "26.2" || !strings.Contains(string(e.Inventory), `"26.2"`) {
		t.Fatalf("the inventory written with the take: %+v %v", e, err)
	}
	// A repeated answer writes nothing and hands out nothing new.
	if _, q, err = s.RecordResultNext(ctx, "e1", "CH-1", "c2", "Acknowledged", []byte("<other/>"), now, inv, nil); err != nil || q != nil {
		t.Fatalf("repeat: %+v %v", q, err)
	}
	got, err := s.QueuedCommands(ctx, "CH-1", 10)
	if err != nil || len(got) != 2 || got[0].Status != "Acknowledged" || string(got[0].Result) != "<plist/>" {
		t.Fatalf("queue after the answers: %+v %v", got, err)
	}
	log.Take()
	if _, err := s.NextCommand(ctx, "e1", "CH-1", true, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("next on an empty queue: %v", err)
	}
	count("a poll that finds nothing", 1, 1)
}

// TestProfileAnswerStatements counts a profile wave's install answer on
// PostgreSQL: BEGIN, the status read and result write, the item's read,
// acknowledgement and superseded certificates in one statement, the
// verifying ProfileList's "none waits" check and enqueue in one
// statement, the next command's take (that ProfileList) and COMMIT — 6
// round trips (12 before session 11: the item work was six statements,
// and a RELEASE SAVEPOINT followed it; 7 before session 12: a SAVEPOINT
// preceded it). The ProfileList's answer, with its inventory section as
// the server records it, is BEGIN, the result, the items read, the
// item's put, the take carrying the section's UPDATE, and COMMIT: 6 (8
// before session 12: the SAVEPOINT and the UPDATE were statements of
// their own). Each in two network round trips (six before session 14,
// three before session 15): BEGIN, the result's statement and the one
// statement whose answer the work needs (the item's, or the items' read:
// sent ahead, guessed from the ProfileAck), then the writes nothing waits
// for (the verifying enqueue, the item put), the take and COMMIT
// together. The second answer of the same install is a repeat: nothing
// acknowledged or queued again; an install answered while a ProfileList
// waits queues none.
func TestProfileAnswerStatements(t *testing.T) {
	ctx := context.Background()
	s, log := tracedStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &store.ConfigProfile{ID: "p1", TenantID: "t1", Identifier: "com.example.p1", Name: "p1", Platforms: []string{"iOS"},
		PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateProfile(ctx, p, &store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	install := func(uuid string, fetch bool) {
		t.Helper()
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: "e1", ProfileID: "p1", Identifier: "com.example.p1", State: "installing",
			Version: 1, Hash: "h1", CommandUUID: uuid, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if q, err := s.NextCommand(ctx, "e1", "CH-1", true, now); fetch && (err != nil || q.UUID != uuid) {
			t.Fatalf("next: %+v %v", q, err)
		}
		log.Take()
	}
	n := 0
	newAck := func() *store.ProfileAck {
		return &store.ProfileAck{Verify: func() *store.CommandRecord {
			n++
			return &store.CommandRecord{UUID: fmt.Sprintf("list-%d", n), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now, CreatedBy: "profiles"}
		}}
	}
	count := func(what string, want, trips int) {
		t.Helper()
		if got, n := log.TakeTrips(); len(got) != want || n != trips {
			t.Errorf("%s sent %d statements in %d round trips, want %d in %d:\n%s", what, len(got), n, want, trips, strings.Join(got, "\n"))
		}
	}

	install("i1", true)
	ack := newAck()
	rt, q, err := s.RecordResultNext(ctx, "e1", "CH-1", "i1", "Acknowledged", []byte("<plist/>"), now, nil, ack)
	if err != nil || rt != "InstallProfile" || !ack.Done || !ack.Queued || q == nil || q.UUID != "list-1" {
		t.Fatalf("install answer: %q %+v %+v %v", rt, ack, q, err)
	}
	count("an acknowledged install that queues its ProfileList", 6, 2)
	its, err := s.ProfileItems(ctx, "e1")
	if err != nil || len(its) != 1 || !its[0].Acknowledged || !its[0].UpdatedAt.Equal(now) {
		t.Fatalf("items after the answer: %+v %v", its, err)
	}

	// The same answer again: a repeat, nothing queued (list-1, sent and
	// unanswered, is handed out again).
	ack = newAck()
	if _, q, err = s.RecordResultNext(ctx, "e1", "CH-1", "i1", "Acknowledged", []byte("<plist/>"), now, nil, ack); err != nil || !ack.Done || ack.Queued || q == nil || q.UUID != "list-1" {
		t.Fatalf("repeat: %+v %+v %v", ack, q, err)
	}
	log.Take()

	// A new install (queued behind list-1, which the poll hands out
	// again) answered while list-1 still waits: it
	// verifies this install too, so none is queued and list-1 is next.
	install("i2", false)
	ack = newAck()
	if _, q, err = s.RecordResultNext(ctx, "e1", "CH-1", "i2", "Acknowledged", []byte("<plist/>"), now, nil, ack); err != nil || !ack.Done || ack.Queued || q == nil || q.UUID != "list-1" {
		t.Fatalf("install answer with a ProfileList waiting: %+v %+v %v", ack, q, err)
	}
	count("an acknowledged install with a ProfileList waiting", 6, 2)
	if got, err := s.QueuedCommands(ctx, "CH-1", 10); err != nil || len(got) != 3 {
		t.Fatalf("queue: %d rows %v, want i1, list-1, i2", len(got), err)
	}
	log.Take()

	// list-1's answer verifies both installs.
	list := &store.ProfileAck{List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		for i := range items {
			items[i].State = "installed"
		}
		return items, nil
	}}
	// As the server records it: with its inventory section (written
	// with the take, no statement of its own).
	inv := func(rt string) (string, any, *store.DeviceInfo, bool) {
		return "profile_list", []string{"com.example.p1"}, nil, rt == "ProfileList"
	}
	if rt, q, err = s.RecordResultNext(ctx, "e1", "CH-1", "list-1", "Acknowledged", []byte("<plist/>"), now, inv, list); err != nil || rt != "ProfileList" || !list.Done || len(list.Put) != 1 || q != nil {
		t.Fatalf("list answer: %q %+v %+v %v", rt, list, q, err)
	}
	count("an acknowledged ProfileList with one item and its inventory section", 6, 2)
	if e, err := s.Enrollment(ctx, "e1"); err != nil || !strings.Contains(string(e.Inventory), `"profile_list"`) {
		t.Fatalf("the list's inventory section: %+v %v", e, err)
	}
	if its, err := s.ProfileItems(ctx, "e1"); err != nil || len(its) != 1 || its[0].State != "installed" {
		t.Fatalf("items after the list: %+v %v", its, err)
	}
}

// TestAuditedVerifyLeavesThePipeline: an install answer whose verifying
// ProfileList carries an audit entry takes acknowledgeItem's statement-
// by-statement path, whose reads are database/sql's: the piped
// transaction stops before that work (sqlstore's errNotPiped), is rolled
// back, and the answer runs again on a database/sql transaction — the
// item acknowledged, the ProfileList and its audit entry queued and
// handed out, the result stored once.
func TestAuditedVerifyLeavesThePipeline(t *testing.T) {
	ctx := context.Background()
	s, log := tracedStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &store.ConfigProfile{ID: "p1", TenantID: "t1", Identifier: "com.example.p1", Name: "p1", Platforms: []string{"iOS"},
		PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateProfile(ctx, p, &store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "i1", RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: "e1", ProfileID: "p1", Identifier: "com.example.p1", State: "installing",
		Version: 1, Hash: "h1", CommandUUID: "i1", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if q, err := s.NextCommand(ctx, "e1", "CH-1", true, now); err != nil || q.UUID != "i1" {
		t.Fatalf("next: %+v %v", q, err)
	}
	log.Take()
	audit := &store.AuditEntry{At: now, Actor: "profiles", Action: "verify", Target: "e1", Status: 201}
	ack := &store.ProfileAck{Verify: func() *store.CommandRecord {
		return &store.CommandRecord{UUID: "list-1", RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now, CreatedBy: "profiles", Audit: audit}
	}}
	rt, q, err := s.RecordResultNext(ctx, "e1", "CH-1", "i1", "Acknowledged", []byte("<plist/>"), now, nil, ack)
	if err != nil || rt != "InstallProfile" || !ack.Done || !ack.Queued || q == nil || q.UUID != "list-1" {
		t.Fatalf("install answer: %q %+v %+v %v", rt, ack, q, err)
	}
	if audit.ID == 0 {
		t.Fatal("the verifying command's audit entry was not written")
	}
	got := log.Take()
	if len(got) < 2 || !strings.HasPrefix(got[0], "batch: begin isolation level repeatable read") || got[len(got)-1] != "commit" {
		t.Fatalf("want the piped attempt, then a database/sql transaction:\n%s", strings.Join(got, "\n"))
	}
	if its, err := s.ProfileItems(ctx, "e1"); err != nil || len(its) != 1 || !its[0].Acknowledged {
		t.Fatalf("items: %+v %v", its, err)
	}
	if qs, err := s.QueuedCommands(ctx, "CH-1", 10); err != nil || len(qs) != 2 || qs[1].UUID != "i1" || qs[1].Status != "Acknowledged" {
		t.Fatalf("queue: %+v %v", qs, err)
	}
}
