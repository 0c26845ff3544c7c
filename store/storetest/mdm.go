package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

func mdmTests() []namedTest {
	return []namedTest{
		{"BindAppleEnrollment", testBindApple},
		{"EnrollmentForCommand", testEnrollmentForCommand},
		{"ChannelsAndQueue", testQueue},
		{"BulkEnqueue", testBulkEnqueue},
		{"QueueFollowsDeletes", testQueueFollowsDeletes},
		{"PushResults", testPushResults},
		{"IdempotentEnqueue", testIdempotentEnqueue},
		{"IdempotentEnqueueRace", testIdempotentEnqueueRace},
		{"EnrollmentList", testEnrollmentList},
		{"Inventory", testInventory},
		{"LostDeliveryResent", testLostDelivery},
		{"ResultAndNextInOneWrite", testResultNext},
		{"SentMarkSeenByStatusReads", testSentMarkSeen},
		{"UndeliverableLeavesTheQueue", testUndeliverable},
		{"CommandSummariesBounded", testCommandSummaries},
		{"Audit", testAudit},
		{"EnqueueWithAudit", testEnqueueWithAudit},
		{"TargetChannels", testTargetChannels},
		{"EnqueueTargets", testEnqueueTargets},
		{"Webhooks", testWebhooks},
		{"Leases", testLeases},
		{"QueueOrderPerChannel", testQueueOrderPerChannel},
		{"ConcurrentWriters", testConcurrentWriters},
	}
}

func enrolled(t *testing.T, s store.Store) (*store.Enrollment, *store.Enrollment) {
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	return mustEnrollment(t, s, tn.ID, u.ID, nil, time.Time{}), mustEnrollment(t, s, tn.ID, u.ID, nil, time.Time{})
}

func testBindApple(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	info := store.DeviceInfo{OSVersion: "18.2", BuildVersion: "22C152", ProductName: "iPhone15,3"}
	if err := s.BindAppleEnrollment(ctx, e1.ID, "APPLE-1", info, now()); err != nil {
		t.Fatal(err)
	}
	if err := s.BindAppleEnrollment(ctx, e1.ID, "APPLE-1", info, now()); err != nil {
		t.Fatal("repeated Authenticate:", err)
	}
	wantErr(t, s.BindAppleEnrollment(ctx, e1.ID, "APPLE-2", info, now()), store.ErrConflict)
	wantErr(t, s.BindAppleEnrollment(ctx, e2.ID, "APPLE-1", info, now()), store.ErrConflict)
	wantErr(t, s.BindAppleEnrollment(ctx, "nope", "APPLE-3", info, now()), store.ErrNotFound)
	got, err := s.EnrollmentByAppleID(ctx, "APPLE-1")
	if err != nil || got.ID != e1.ID || got.Status != store.EnrollmentEnrolled || got.EnrolledAt.IsZero() || got.OSVersion != "18.2" {
		t.Fatalf("%+v %v", got, err)
	}
	_, err = s.EnrollmentByAppleID(ctx, "APPLE-9")
	wantErr(t, err, store.ErrNotFound)
	if err := s.EndEnrollment(ctx, e1.ID, "test", now()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Enrollment(ctx, e1.ID); got.Status != store.EnrollmentUnenrolled || got.UnenrolledAt.IsZero() || got.AppleEnrollmentID != "APPLE-1" {
		t.Fatalf("unenrolled keeps history: %+v", got)
	}
}

func testQueue(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	ch := &store.Channel{ID: "APPLE-1", DeviceID: e1.ID, Kind: "device", PushToken: []byte{1, 2}, PushMagic: "m1", CreatedAt: now(), UpdatedAt: now()}
	if err := s.PutChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	ch.PushMagic = "m2"
	if err := s.PutChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	// A channel id cannot be taken over by another enrollment.
	wantErr(t, s.PutChannel(ctx, &store.Channel{ID: "APPLE-1", DeviceID: e2.ID, Kind: "device", PushMagic: "evil", CreatedAt: now(), UpdatedAt: now()}), store.ErrConflict)
	if got, _ := s.Channel(ctx, e1.ID, "device", ""); got.PushMagic != "m2" || got.DeviceID != e1.ID || got.ID != "APPLE-1" {
		t.Fatalf("channel %+v", got)
	}
	if cs, _ := s.Channels(ctx, e1.ID); len(cs) != 1 {
		t.Fatalf("channels %d", len(cs))
	}
	s.PutChannel(ctx, &store.Channel{ID: "APPLE-1/U1", DeviceID: e1.ID, Kind: "user", EnrollmentUserID: "U1", UserShortName: "alice", CreatedAt: now(), UpdatedAt: now()})

	t0 := now()
	for i, rt := range []string{"DeviceInformation", "ProfileList", "SecurityInfo"} {
		c := &store.CommandRecord{UUID: fmt.Sprint("c", i), RequestType: rt, Payload: []byte("<plist/>"), CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}
		if i == 2 {
			c.ExpiresAt = t0.Add(time.Hour)
		}
		if err := s.Enqueue(ctx, c, []string{"APPLE-1"}); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, s.Enqueue(ctx, &store.CommandRecord{UUID: "c0", RequestType: "x", Payload: []byte("x"), CreatedAt: t0}, []string{"APPLE-1"}), store.ErrConflict)
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "cx", RequestType: "x", Payload: []byte("x"), CreatedAt: t0}, []string{"NOPE"}); err == nil {
		t.Fatal("enqueued for an unknown channel")
	}
	next := func(afterIdle bool) string {
		q, err := s.NextCommand(ctx, e1.ID, "APPLE-1", afterIdle, t0)
		if errors.Is(err, store.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return q.UUID
	}
	if got := next(true); got != "c0" {
		t.Fatalf("first %s", got)
	}
	_, err := s.RecordResult(ctx, e1.ID, "APPLE-1", "c9", mdm.Acknowledged, nil, t0, nil)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.RecordResult(ctx, e1.ID, "APPLE-1/U1", "c0", mdm.Acknowledged, nil, t0, nil)
	wantErr(t, err, store.ErrNotFound)
	if rt, err := s.RecordResult(ctx, e1.ID, "APPLE-1", "c0", mdm.NotNow, []byte("nn"), t0, nil); err != nil || rt != "DeviceInformation" {
		t.Fatal(err)
	}
	// After a result, NotNow commands wait; the next queued one comes.
	if got := next(false); got != "c1" {
		t.Fatalf("after NotNow: %s", got)
	}
	s.RecordResult(ctx, e1.ID, "APPLE-1", "c1", mdm.Acknowledged, []byte("ok1"), t0, nil)
	if _, err := s.RecordResult(ctx, e1.ID, "APPLE-1", "c1", mdm.Acknowledged, []byte("ok1"), t0, nil); err != nil {
		t.Fatalf("identical repeat: %v", err) // an identical repeat is no error
	}
	_, err = s.RecordResult(ctx, e1.ID, "APPLE-1", "c1", mdm.Error, []byte("late"), t0, nil) // contradicting repeat: first result stands
	wantErr(t, err, store.ErrConflict)
	if got := next(false); got != "c2" {
		t.Fatalf("third %s", got)
	}
	s.RecordResult(ctx, e1.ID, "APPLE-1", "c2", mdm.Acknowledged, nil, t0, nil)
	if got := next(false); got != "" {
		t.Fatalf("nothing queued, got %s", got)
	}
	// After Idle the NotNow command comes back.
	if got := next(true); got != "c0" {
		t.Fatalf("after idle: %s", got)
	}
	s.RecordResult(ctx, e1.ID, "APPLE-1", "c0", mdm.Acknowledged, []byte("ok0"), t0, nil)
	list, _ := s.QueuedCommands(ctx, "APPLE-1", 10)
	if len(list) != 3 || list[0].UUID != "c2" {
		t.Fatalf("list %+v", list)
	}
	for _, q := range list {
		if q.UUID == "c1" && (q.Status != mdm.Acknowledged || string(q.Result) != "ok1") {
			t.Fatalf("repeated result overwrote: %+v", q)
		}
	}
	// Expired commands are skipped and marked.
	s.Enqueue(ctx, &store.CommandRecord{UUID: "old", RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: t0, ExpiresAt: t0.Add(time.Second)}, []string{"APPLE-1"})
	if q, err := s.NextCommand(ctx, e1.ID, "APPLE-1", true, t0.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired command handed out: %+v", q)
	}
	list, _ = s.QueuedCommands(ctx, "APPLE-1", 1)
	if list[0].Status != store.QueueExpired {
		t.Fatalf("expired status %s", list[0].Status)
	}
	// Waiting channels: a queued command older than the threshold.
	s.Enqueue(ctx, &store.CommandRecord{UUID: "wait", RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: t0}, []string{"APPLE-1"})
	if w, err := s.WaitingChannels(ctx, t0.Add(time.Minute), t0.Add(time.Minute), 10); err != nil || len(w) != 1 || w[0].ID != "APPLE-1" {
		t.Fatalf("waiting %+v %v", w, err)
	}
	if w, _ := s.WaitingChannels(ctx, t0.Add(-time.Minute), t0.Add(time.Minute), 10); len(w) != 0 {
		t.Fatal("a fresh command counts as waiting")
	}
	if err := s.SetPushResult(ctx, "APPLE-1", true, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Channel(ctx, e1.ID, "device", ""); !got.PushDead {
		t.Fatal("push result not kept")
	}
	if w, _ := s.WaitingChannels(ctx, t0.Add(time.Minute), t0.Add(time.Minute), 10); len(w) != 0 {
		t.Fatal("a dead token is pushed again")
	}
	if err := s.TouchChannel(ctx, e1.ID, "APPLE-1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Enrollment(ctx, e1.ID); !got.LastSeenAt.Equal(t0.Add(time.Hour)) {
		t.Fatal("last seen not recorded on the enrollment")
	}
	if got, _ := s.Channel(ctx, e1.ID, "device", ""); !got.LastSeenAt.Equal(t0.Add(time.Hour)) {
		t.Fatal("last seen not recorded on the channel")
	}
}

// testPushResults: one fan-out's answers, more than one statement's
// worth, land on the right channels; an unknown id is ignored; a later
// fan-out overwrites (a dead token that came back live).
func testPushResults(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	const n = 1100
	var rs []store.PushResult
	for i := 0; i < n; i++ {
		id := fmt.Sprint("P-", i)
		if err := s.PutChannel(ctx, &store.Channel{ID: id, DeviceID: e1.ID, Kind: "user", EnrollmentUserID: id, PushToken: []byte{1}, PushMagic: "m",
			CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, store.PushResult{ChannelID: id, Dead: i%3 == 0})
	}
	// A channel not in the fan-out keeps what it had.
	if err := s.PutChannel(ctx, &store.Channel{ID: "OTHER", DeviceID: e2.ID, Kind: "device", PushToken: []byte{1}, PushMagic: "m", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	t0 := now().Add(time.Minute)
	if err := s.SetPushResults(ctx, append(rs, store.PushResult{ChannelID: "NOPE", Dead: true}), t0); err != nil {
		t.Fatal(err)
	}
	check := func(at time.Time, dead func(i int) bool) {
		t.Helper()
		chs, err := s.Channels(ctx, e1.ID)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, c := range chs {
			var i int
			if _, err := fmt.Sscanf(c.ID, "P-%d", &i); err != nil {
				continue
			}
			seen++
			if c.PushDead != dead(i) || !c.LastPushAt.Equal(at) {
				t.Fatalf("channel %s: dead %v last push %v, want %v %v", c.ID, c.PushDead, c.LastPushAt, dead(i), at)
			}
		}
		if seen != n {
			t.Fatalf("%d of %d channels", seen, n)
		}
	}
	check(t0, func(i int) bool { return i%3 == 0 })
	if other, _ := s.Channel(ctx, e2.ID, "device", ""); other.PushDead || !other.LastPushAt.IsZero() {
		t.Fatalf("a channel outside the fan-out changed: %+v", other)
	}
	for i := range rs {
		rs[i].Dead = i%3 == 1
	}
	t1 := t0.Add(time.Minute)
	if err := s.SetPushResults(ctx, rs, t1); err != nil {
		t.Fatal(err)
	}
	check(t1, func(i int) bool { return i%3 == 1 })
	if err := s.SetPushResults(ctx, nil, t1); err != nil {
		t.Fatal(err)
	}
}

func testBulkEnqueue(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	const n = 2000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint("E-", i)
		if err := s.PutChannel(ctx, &store.Channel{ID: ids[i], DeviceID: e1.ID, Kind: "user", EnrollmentUserID: ids[i], CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "bulk", RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now()}, ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ids[0], ids[n-1]} {
		if q, err := s.NextCommand(ctx, e1.ID, id, true, now()); err != nil || q.UUID != "bulk" {
			t.Fatalf("%s: %v", id, err)
		}
	}
	// 1,203 targets (full batches and a remainder), in order behind "bulk".
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "bulk2", RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now()}, ids[:1203]); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 499, 500, 1000, 1202} {
		if q, err := s.NextCommand(ctx, e1.ID, ids[i], true, now()); err != nil || q.UUID != "bulk" {
			t.Fatalf("%d: first %v %v", i, q, err)
		}
		if _, err := s.RecordResult(ctx, e1.ID, ids[i], "bulk", mdm.Acknowledged, nil, now(), nil); err != nil {
			t.Fatal(err)
		}
		if q, err := s.NextCommand(ctx, e1.ID, ids[i], false, now()); err != nil || q.UUID != "bulk2" {
			t.Fatalf("%d: second %v %v", i, q, err)
		}
	}
	if _, err := s.NextCommand(ctx, e1.ID, ids[1203], true, now()); err != nil {
		t.Fatal(err) // "bulk" only
	}
	// One unknown channel among many: nothing is queued.
	bad := append(append([]string{}, ids[:700]...), "NO-SUCH-CHANNEL")
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "bulk3", RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now()}, bad); err == nil {
		t.Fatal("enqueued for an unknown channel")
	}
	if qs, _ := s.QueuedCommands(ctx, ids[0], 10); len(qs) != 2 {
		t.Fatalf("a failed bulk left rows: %d", len(qs))
	}
}

func testEnrollmentList(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	u2 := mustUser(t, s, tn.ID, "bob@a.example")
	var ids []string
	for i := 0; i < 5; i++ {
		uid := u.ID
		if i == 4 {
			uid = u2.ID
		}
		e := mustEnrollment(t, s, tn.ID, uid, nil, time.Time{})
		ids = append(ids, e.ID)
		time.Sleep(time.Millisecond)
	}
	s.BindAppleEnrollment(ctx, ids[0], "A0", store.DeviceInfo{}, now())
	all, err := s.Enrollments(ctx, store.EnrollmentFilter{})
	if err != nil || len(all) != 5 || all[0].ID != ids[4] {
		t.Fatalf("all: %d %v", len(all), err)
	}
	p1, _ := s.Enrollments(ctx, store.EnrollmentFilter{UserID: u.ID, Limit: 2})
	p2, _ := s.Enrollments(ctx, store.EnrollmentFilter{UserID: u.ID, Limit: 2, Before: p1[1].ID})
	if len(p1) != 2 || len(p2) != 2 || p1[0].ID != ids[3] || p2[1].ID != ids[0] {
		t.Fatalf("pages %v %v", p1, p2)
	}
	en, _ := s.Enrollments(ctx, store.EnrollmentFilter{Status: store.EnrollmentEnrolled})
	if len(en) != 1 || en[0].AppleEnrollmentID != "A0" {
		t.Fatalf("enrolled: %+v", en)
	}
}

func testInventory(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	info := &store.DeviceInfo{OSVersion: "18.3", DeviceName: "Alice's iPhone"}
	if err := s.UpdateInventory(ctx, e1.ID, "device_information", map[string]any{"OSVersion": "18.3"}, info, now()); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateInventory(ctx, e1.ID, "profiles", []any{"p1"}, nil, now()); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Enrollment(ctx, e1.ID)
	if got.OSVersion != "18.3" || got.DeviceName != "Alice's iPhone" || got.Product != "iPhone15,3" ||
		!strings.Contains(string(got.Inventory), `"profiles"`) || !strings.Contains(string(got.Inventory), `"device_information"`) {
		t.Fatalf("inventory %+v %s", got, got.Inventory)
	}
	wantErr(t, s.UpdateInventory(ctx, "nope", "x", 1, nil, now()), store.ErrNotFound)

	// A result carries its inventory update into the same transaction;
	// a repeated result changes nothing, an error result adds nothing.
	if err := s.PutChannel(ctx, &store.Channel{ID: "INV-1", DeviceID: e1.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"i1", "i2"} {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: id, RequestType: "SecurityInfo", Payload: []byte("x"), CreatedAt: now()}, []string{"INV-1"}); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	inv := func(section string) store.InventoryFunc {
		return func(rt string) (string, any, *store.DeviceInfo, bool) {
			calls++
			if rt != "SecurityInfo" {
				t.Errorf("request type %q", rt)
			}
			return section, map[string]any{"PasscodePresent": true}, &store.DeviceInfo{OSVersion: "18.4"}, true
		}
	}
	if _, err := s.RecordResult(ctx, e1.ID, "INV-1", "i1", mdm.Acknowledged, []byte("r"), now(), inv("security_info")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordResult(ctx, e1.ID, "INV-1", "i1", mdm.Acknowledged, []byte("r"), now(), inv("again")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordResult(ctx, e1.ID, "INV-1", "i2", mdm.Error, []byte("e"), now(), inv("error")); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Enrollment(ctx, e1.ID)
	if calls != 1 || got.OSVersion != "18.4" || !strings.Contains(string(got.Inventory), `"security_info"`) ||
		strings.Contains(string(got.Inventory), `"again"`) || strings.Contains(string(got.Inventory), `"error"`) {
		t.Fatalf("calls %d, inventory %s", calls, got.Inventory)
	}
	// A second section, through RecordResultNext (the inventory read
	// with the result's status), then one of a type outside
	// mdm.InventoryRequestTypes (read on its own): each adds its section
	// and keeps the others.
	for _, c := range []struct{ uuid, rt, section string }{{"i3", "DeviceInformation", "device_information"}, {"i4", "OtherInventory", "other"}} {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: c.uuid, RequestType: c.rt, Payload: []byte("x"), CreatedAt: now()}, []string{"INV-1"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RecordResultNext(ctx, e1.ID, "INV-1", c.uuid, mdm.Acknowledged, []byte("r"), now(),
			func(string) (string, any, *store.DeviceInfo, bool) {
				return c.section, map[string]any{"k": c.uuid}, nil, true
			}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = s.Enrollment(ctx, e1.ID)
	for _, want := range []string{`"security_info"`, `"device_information"`, `"k":"i3"`, `"other"`, `"k":"i4"`} {
		if !strings.Contains(string(got.Inventory), want) {
			t.Fatalf("inventory %s: no %s", got.Inventory, want)
		}
	}
}

// RecordResultNext records a result and hands out (marks sent) the next
// command in one call, with RecordResult's and NextCommand's rules: NotNow
// commands wait for an Idle, expired ones are skipped and marked, an
// unknown command writes nothing, a repeated result still gets the next
// command. NextCommand's sent mark is visible when it returns.
func testResultNext(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	for _, c := range []*store.Channel{{ID: "RN-1", DeviceID: e1.ID}, {ID: "RN-2", DeviceID: e2.ID}} {
		c.Kind, c.CreatedAt, c.UpdatedAt = "device", now(), now()
		if err := s.PutChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	t0 := now()
	for i, id := range []string{"n1", "n2", "n3", "n4"} {
		c := &store.CommandRecord{UUID: id, RequestType: "ProfileList", Payload: []byte("p-" + id), CreatedAt: t0}
		if id == "n3" {
			c.ExpiresAt = t0.Add(time.Second)
		}
		if err := s.Enqueue(ctx, c, []string{"RN-1"}); err != nil {
			t.Fatal(i, err)
		}
	}
	status := func(uuid string) store.QueuedCommand {
		t.Helper()
		list, err := s.QueuedCommands(ctx, "RN-1", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range list {
			if q.UUID == uuid {
				return q
			}
		}
		t.Fatalf("%s not queued", uuid)
		return store.QueuedCommand{}
	}
	q, err := s.NextCommand(ctx, e1.ID, "RN-1", true, t0)
	if err != nil || q.UUID != "n1" || q.Status != store.QueueSent || string(q.Payload) != "p-n1" {
		t.Fatalf("first: %+v %v", q, err)
	}
	if got := status("n1"); got.Status != store.QueueSent || !got.SentAt.Equal(t0) {
		t.Fatalf("sent mark not visible: %+v", got)
	}
	// Another enrollment's channel and an unknown command: ErrNotFound,
	// and the next command is not marked.
	_, _, err = s.RecordResultNext(ctx, e2.ID, "RN-1", "n1", mdm.Acknowledged, []byte("x"), t0, nil, nil)
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.RecordResultNext(ctx, e1.ID, "RN-1", "nope", mdm.Acknowledged, []byte("x"), t0, nil, nil)
	wantErr(t, err, store.ErrNotFound)
	if got := status("n2"); got.Status != store.QueueQueued {
		t.Fatalf("n2 after a refused result: %+v", got)
	}
	// NotNow: the next command comes, n1 waits.
	t1 := t0.Add(time.Minute)
	rt, q, err := s.RecordResultNext(ctx, e1.ID, "RN-1", "n1", mdm.NotNow, []byte("nn"), t1, nil, nil)
	if err != nil || rt != "ProfileList" || q == nil || q.UUID != "n2" || q.Status != store.QueueSent || string(q.Payload) != "p-n2" {
		t.Fatalf("after NotNow: %q %+v %v", rt, q, err)
	}
	if got := status("n2"); got.Status != store.QueueSent || !got.SentAt.Equal(t1) {
		t.Fatalf("n2 not marked sent: %+v", got)
	}
	if got := status("n1"); got.Status != mdm.NotNow || string(got.Result) != "nn" {
		t.Fatalf("n1: %+v", got)
	}
	// n3 has expired by now: skipped and marked; n4 comes.
	_, q, err = s.RecordResultNext(ctx, e1.ID, "RN-1", "n2", mdm.Acknowledged, []byte("ok"), t1, func(string) (string, any, *store.DeviceInfo, bool) {
		return "profiles", []any{"a"}, nil, true
	}, nil)
	if err != nil || q == nil || q.UUID != "n4" {
		t.Fatalf("after n2: %+v %v", q, err)
	}
	if got := status("n3"); got.Status != store.QueueExpired {
		t.Fatalf("n3: %+v", got)
	}
	if got, _ := s.Enrollment(ctx, e1.ID); !strings.Contains(string(got.Inventory), `"profiles"`) {
		t.Fatalf("inventory not written with the result: %s", got.Inventory)
	}
	// A repeated result stands as it was and still gets the next command
	// (n4 again: sent, never answered); a contradicting one is refused
	// and writes nothing.
	_, q, err = s.RecordResultNext(ctx, e1.ID, "RN-1", "n2", mdm.Acknowledged, []byte("again"), t1, nil, nil)
	if err != nil || q == nil || q.UUID != "n4" {
		t.Fatalf("repeat: %+v %v", q, err)
	}
	if _, q, err = s.RecordResultNext(ctx, e1.ID, "RN-1", "n2", mdm.Error, []byte("late"), t1, nil, nil); !errors.Is(err, store.ErrConflict) || q != nil {
		t.Fatalf("contradicting repeat: %+v %v", q, err)
	}
	if got := status("n2"); got.Status != mdm.Acknowledged || string(got.Result) != "ok" {
		t.Fatalf("repeat overwrote: %+v", got)
	}
	// Nothing after n4 but the NotNow n1, which waits for an Idle.
	_, q, err = s.RecordResultNext(ctx, e1.ID, "RN-1", "n4", mdm.Acknowledged, nil, t1, nil, nil)
	if err != nil || q != nil {
		t.Fatalf("nothing to send: %+v %v", q, err)
	}
	if q, err := s.NextCommand(ctx, e1.ID, "RN-1", true, t1); err != nil || q.UUID != "n1" {
		t.Fatalf("after Idle: %+v %v", q, err)
	}
	// The sent mark never overwrites a result.
	if _, err := s.RecordResult(ctx, e1.ID, "RN-1", "n1", mdm.Acknowledged, nil, t1, nil); err != nil {
		t.Fatal(err)
	}
	if q, err := s.NextCommand(ctx, e1.ID, "RN-1", true, t1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("answered command handed out again: %+v %v", q, err)
	}
	if got := status("n1"); got.Status != mdm.Acknowledged {
		t.Fatalf("n1: %+v", got)
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, a := range []string{"POST /api/v1/tenants", "PATCH /api/v1/users/{id}", "POST /api/v1/tenants"} {
		if err := s.AppendAudit(ctx, &store.AuditEntry{At: now(), Actor: "key:k1", Action: a, Target: fmt.Sprint("t", i), Status: 201, Remote: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Audit(ctx, store.AuditFilter{})
	if err != nil || len(all) != 3 || all[0].Target != "t2" || all[0].Remote != "10.0.0.1" {
		t.Fatalf("%+v %v", all, err)
	}
	f, _ := s.Audit(ctx, store.AuditFilter{Action: "POST /api/v1/tenants", Limit: 1})
	if len(f) != 1 || f[0].Target != "t2" {
		t.Fatalf("%+v", f)
	}
	p2, _ := s.Audit(ctx, store.AuditFilter{Action: "POST /api/v1/tenants", Before: f[0].ID})
	if len(p2) != 1 || p2[0].Target != "t0" {
		t.Fatalf("%+v", p2)
	}
}

func testWebhooks(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	if err := s.CreateWebhook(ctx, &store.Webhook{ID: "w1", URL: "https://a.example/hook", Secret: []byte("sealed"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	s.CreateWebhook(ctx, &store.Webhook{ID: "w2", URL: "https://b.example/hook", Secret: []byte("s2"), Events: []string{"command.result"}, CreatedAt: t0})
	if w, err := s.Webhook(ctx, "w2"); err != nil || w.Events[0] != "command.result" || string(w.Secret) != "s2" {
		t.Fatalf("%+v %v", w, err)
	}
	s.QueueEvent(ctx, "device.authenticated", payload(`{"a":1}`), t0)
	s.QueueEvent(ctx, "command.result", payload(`{"b":2}`), t0)
	due, err := s.DueDeliveries(ctx, t0, time.Minute, 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("due %d %v", len(due), err)
	}
	// Leased: not handed out again at once.
	if again, _ := s.DueDeliveries(ctx, t0, time.Minute, 10); len(again) != 0 {
		t.Fatalf("leased deliveries handed out again: %d", len(again))
	}
	s.FinishDelivery(ctx, due[0].ID, store.DeliveryDelivered, "", t0, t0)
	s.FinishDelivery(ctx, due[1].ID, store.DeliveryPending, "HTTP 500", t0.Add(time.Second), t0)
	if d, _ := s.DueDeliveries(ctx, t0.Add(2*time.Second), time.Minute, 10); len(d) != 1 || d[0].Attempts != 1 || d[0].LastError != "HTTP 500" {
		t.Fatalf("retry: %+v", d)
	}
	list, _ := s.Deliveries(ctx, "w1", 10)
	if len(list) != 2 {
		t.Fatalf("w1 deliveries %d", len(list))
	}
	if err := s.DeleteWebhook(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteWebhook(ctx, "w1"), store.ErrNotFound)
	if list, _ := s.Deliveries(ctx, "w1", 10); len(list) != 0 {
		t.Fatal("deliveries of a deleted webhook remain")
	}
	// The payload is made only for an event a webhook takes (w2 takes
	// command.result alone), and its error queues nothing.
	calls := 0
	counted := func() ([]byte, error) { calls++; return []byte(`{"c":3}`), nil }
	if err := s.QueueEvent(ctx, "device.authenticated", counted, t0); err != nil || calls != 0 {
		t.Fatalf("an event nobody takes: payload made %d times, %v", calls, err)
	}
	before, _ := s.Deliveries(ctx, "w2", 10)
	boom := errors.New("boom")
	if err := s.QueueEvent(ctx, "command.result", func() ([]byte, error) { return nil, boom }, t0); !errors.Is(err, boom) {
		t.Fatalf("payload error: %v", err)
	}
	if err := s.QueueEvent(ctx, "command.result", counted, t0); err != nil || calls != 1 {
		t.Fatalf("a subscribed event: payload made %d times, %v", calls, err)
	}
	if after, _ := s.Deliveries(ctx, "w2", 10); len(after) != len(before)+1 {
		t.Fatalf("w2 deliveries %d → %d, want one more (none for the failed payload)", len(before), len(after))
	}
}

// payload is a QueueEvent body of fixed bytes.
func payload(body string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(body), nil }
}

func testLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	if ok, err := s.TryLease(ctx, "repush", "a", time.Minute, t0); err != nil || !ok {
		t.Fatalf("first lease: %v %v", ok, err)
	}
	if ok, _ := s.TryLease(ctx, "repush", "b", time.Minute, t0.Add(time.Second)); ok {
		t.Fatal("two holders of one lease")
	}
	if ok, _ := s.TryLease(ctx, "repush", "a", time.Minute, t0.Add(time.Second)); !ok {
		t.Fatal("the holder cannot renew")
	}
	if ok, _ := s.TryLease(ctx, "repush", "b", time.Minute, t0.Add(2*time.Minute)); !ok {
		t.Fatal("an expired lease is not taken over")
	}
	// Racing instances: exactly one wins.
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if ok, err := s.TryLease(ctx, "race", fmt.Sprint("h", i), time.Minute, t0); err == nil && ok {
				won.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d holders won the race", won.Load())
	}
}

// A command marked sent whose answer never came (the response carrying it
// was lost) goes again at the device's next report, before newer ones.
func testLostDelivery(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	if err := s.PutChannel(ctx, &store.Channel{ID: "LD", DeviceID: e1.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"l1", "l2"} {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: id, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now().Add(time.Duration(i))}, []string{"LD"}); err != nil {
			t.Fatal(err)
		}
	}
	next := func(idle bool) string {
		q, err := s.NextCommand(ctx, e1.ID, "LD", idle, now())
		if errors.Is(err, store.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return q.UUID
	}
	if got := next(true); got != "l1" {
		t.Fatalf("first %s", got)
	}
	// The device never got l1 and reports something else: l1 again.
	if got := next(false); got != "l1" {
		t.Fatalf("lost delivery not repeated: %s", got)
	}
	if _, err := s.RecordResult(ctx, e1.ID, "LD", "l1", mdm.NotNow, nil, now(), nil); err != nil {
		t.Fatal(err)
	}
	if got := next(false); got != "l2" {
		t.Fatalf("after NotNow: %s", got)
	}
	if _, err := s.RecordResult(ctx, e1.ID, "LD", "l2", mdm.Acknowledged, nil, now(), nil); err != nil {
		t.Fatal(err)
	}
	if got := next(false); got != "" {
		t.Fatalf("NotNow command resent before Idle: %s", got)
	}
	if got := next(true); got != "l1" {
		t.Fatalf("after Idle: %s", got)
	}
}

// testEnqueueWithAudit: a command's request audit entry (CommandRecord.Audit)
// is appended in the enqueue's transaction: there after a success (ID set),
// absent when the enqueue fails, and absent when EnqueueOnce finds its key
// already used (nothing queued then).
func testEnqueueWithAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	if err := s.PutChannel(ctx, &store.Channel{ID: "AUD-1", DeviceID: e1.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	entry := func(target string) *store.AuditEntry {
		return &store.AuditEntry{At: now(), Actor: "key:k1", Action: "POST /api/v1/devices/{id}/commands", Target: target, Status: 201, Remote: "10.0.0.9"}
	}
	cmd := func(uuid string, a *store.AuditEntry) *store.CommandRecord {
		return &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now(), Audit: a}
	}
	recorded := func() []string {
		t.Helper()
		es, err := s.Audit(ctx, store.AuditFilter{Action: "POST /api/v1/devices/{id}/commands"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s/%d/%s", e.Target, e.Status, e.Remote))
		}
		sort.Strings(out)
		return out
	}

	ok := entry("ok")
	if err := s.Enqueue(ctx, cmd("AUD-C1", ok), []string{"AUD-1"}); err != nil {
		t.Fatal(err)
	}
	if ok.ID == 0 {
		t.Fatal("the entry's ID was not set")
	}
	// A failed enqueue (an unknown channel) writes no entry.
	failed := entry("failed")
	if err := s.Enqueue(ctx, cmd("AUD-C2", failed), []string{"AUD-1", "NO-SUCH-CHANNEL"}); err == nil {
		t.Fatal("enqueued for an unknown channel")
	}
	// The same for one channel (PostgreSQL writes the command, its queue
	// row and the entry in one statement): not found, and nothing of it
	// stays — neither the entry nor the command row, whose uuid is then
	// free for the next enqueue (which fails below if the row stayed).
	if err := s.Enqueue(ctx, cmd("AUD-C5", entry("failed")), []string{"NO-SUCH-CHANNEL"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("one unknown channel: %v, want not found", err)
	}
	if err := s.Enqueue(ctx, cmd("AUD-C5", nil), []string{"AUD-1"}); err != nil {
		t.Fatalf("the failed enqueue left its command row: %v", err)
	}
	// A command uuid already taken is a conflict, and writes no entry.
	if err := s.Enqueue(ctx, cmd("AUD-C5", entry("failed")), []string{"AUD-1"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a taken uuid: %v, want conflict", err)
	}
	// Under an idempotency key: the first request writes its entry, a
	// repeat (nothing queued) does not.
	key := &store.IdempotencyKey{Principal: "key:k1", Key: "aud", Fingerprint: "fp", Response: []byte(`{}`), CreatedAt: now(), ExpiresAt: now().Add(time.Hour)}
	if ex, err := s.EnqueueOnce(ctx, key, cmd("AUD-C3", entry("once")), []string{"AUD-1"}); err != nil || ex != nil {
		t.Fatalf("%+v %v", ex, err)
	}
	if ex, err := s.EnqueueOnce(ctx, key, cmd("AUD-C4", entry("repeat")), []string{"AUD-1"}); err != nil || ex == nil {
		t.Fatalf("%+v %v", ex, err)
	}
	if got := fmt.Sprint(recorded()); got != "[ok/201/10.0.0.9 once/201/10.0.0.9]" {
		t.Fatalf("audit entries: %s", got)
	}
	if qs, _ := s.QueuedCommands(ctx, "AUD-1", 10); len(qs) != 3 {
		t.Fatalf("queued: %d", len(qs))
	}
}

// testTargetChannels: a bulk command's targets are the device channels of
// enrolled enrollments (not pending, not unenrolled, no user channels)
// selected by tenant, users and ids (Pomona's or Apple's), each once when
// the selections overlap, with the platform and the push fields.
// targetFixture writes the devices testTargetChannels and
// testEnqueueTargets select from: tenant A with TGT-C1 (iOS, u1), TGT-C2
// (macOS, u1, dead push, and a user channel), TGT-C3 (pending, u2),
// TGT-C4 (unenrolled, u2); tenant B with TGT-C5 (iOS, u3).
type targetFixture struct {
	ta, tb     *store.Tenant
	u1, u2, u3 *store.User
	e1, e2     *store.Enrollment
}

func newTargetFixture(t *testing.T, s store.Store) targetFixture {
	ctx := context.Background()
	ta, tb := mustTenant(t, s, "A", "a.example"), mustTenant(t, s, "B", "b.example")
	u1, u2, u3 := mustUser(t, s, ta.ID, "u1@a.example"), mustUser(t, s, ta.ID, "u2@a.example"), mustUser(t, s, tb.ID, "u3@b.example")
	device := func(tenant, user *string, platform, apple, channel string, ch store.Channel) *store.Enrollment {
		t.Helper()
		e := &store.Enrollment{ID: id("en_tgt"), TenantID: *tenant, UserID: *user, TokenHash: []byte("tok-" + channel), Platform: platform,
			Status: store.EnrollmentPending, CreatedAt: now(), UpdatedAt: now()}
		if err := s.CreateEnrollment(ctx, e, nil); err != nil {
			t.Fatal(err)
		}
		if apple != "" {
			if err := s.BindAppleEnrollment(ctx, e.ID, apple, store.DeviceInfo{}, now()); err != nil {
				t.Fatal(err)
			}
		}
		ch.ID, ch.DeviceID, ch.Kind, ch.CreatedAt, ch.UpdatedAt = channel, e.ID, "device", now(), now()
		if err := s.PutChannel(ctx, &ch); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e1 := device(&ta.ID, &u1.ID, "iOS", "TGT-A1", "TGT-C1", store.Channel{PushToken: []byte("t1"), PushMagic: "m1"})
	e2 := device(&ta.ID, &u1.ID, "macOS", "TGT-A2", "TGT-C2", store.Channel{PushToken: []byte("t2"), PushMagic: "m2", PushDead: true})
	if err := s.PutChannel(ctx, &store.Channel{ID: "TGT-C2-USER", DeviceID: e2.ID, Kind: "user", EnrollmentUserID: "U", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	device(&ta.ID, &u2.ID, "iOS", "", "TGT-C3", store.Channel{}) // pending: no Authenticate yet
	e4 := device(&ta.ID, &u2.ID, "iOS", "TGT-A4", "TGT-C4", store.Channel{})
	if err := s.EndEnrollment(ctx, e4.ID, "test", now()); err != nil {
		t.Fatal(err)
	}
	device(&tb.ID, &u3.ID, "iOS", "TGT-A5", "TGT-C5", store.Channel{})

	return targetFixture{ta: ta, tb: tb, u1: u1, u2: u2, u3: u3, e1: e1, e2: e2}
}

func testTargetChannels(t *testing.T, s store.Store) {
	ctx := context.Background()
	fx := newTargetFixture(t, s)
	ta, tb, u1, u2, u3, e1 := fx.ta, fx.tb, fx.u1, fx.u2, fx.u3, fx.e1
	for _, c := range []struct {
		name string
		f    store.TargetFilter
		want string
	}{
		{"tenant", store.TargetFilter{TenantID: ta.ID}, "[TGT-C1 TGT-C2]"},
		{"users", store.TargetFilter{UserIDs: []string{u1.ID, u2.ID}}, "[TGT-C1 TGT-C2]"},
		{"ids", store.TargetFilter{EnrollmentIDs: []string{e1.ID, "TGT-A5", "TGT-A4", "NO-SUCH"}}, "[TGT-C1 TGT-C5]"},
		{"union", store.TargetFilter{TenantID: ta.ID, UserIDs: []string{u1.ID, u3.ID}, EnrollmentIDs: []string{e1.ID, "TGT-A2", "TGT-A5"}}, "[TGT-C1 TGT-C2 TGT-C5]"},
		{"other tenant", store.TargetFilter{TenantID: tb.ID}, "[TGT-C5]"},
	} {
		ts, err := s.TargetChannels(ctx, c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got []string
		for _, x := range ts {
			got = append(got, x.ChannelID)
			switch x.ChannelID {
			case "TGT-C1":
				if x.Platform != "iOS" || string(x.PushToken) != "t1" || x.PushMagic != "m1" || x.PushDead {
					t.Fatalf("%s: %+v", c.name, x)
				}
			case "TGT-C2":
				if x.Platform != "macOS" || string(x.PushToken) != "t2" || x.PushMagic != "m2" || !x.PushDead {
					t.Fatalf("%s: %+v", c.name, x)
				}
			}
		}
		sort.Strings(got)
		if fmt.Sprint(got) != c.want {
			t.Fatalf("%s: %v, want %s", c.name, got, c.want)
		}
	}
}

// testEnqueueTargets: a bulk command queued straight from the target
// selection goes to exactly TargetChannels' channels on the platforms the
// plan chose (each once when the selections overlap), the plan sees the
// count per platform, the audit entry and the idempotency key share the
// transaction, and a plan's error or a used key writes nothing.
func testEnqueueTargets(t *testing.T, s store.Store) {
	ctx := context.Background()
	fx := newTargetFixture(t, s)
	all := []string{"TGT-C1", "TGT-C2", "TGT-C2-USER", "TGT-C3", "TGT-C4", "TGT-C5"}
	holders := func(uuid string) string {
		t.Helper()
		var got []string
		for _, ch := range all {
			qs, err := s.QueuedCommands(ctx, ch, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range qs {
				if q.UUID == uuid {
					if q.Status != store.QueueQueued || q.RequestType != "ProfileList" || string(q.Payload) != "payload-"+uuid {
						t.Fatalf("%s on %s: %+v", uuid, ch, q)
					}
					got = append(got, ch)
				}
			}
		}
		return fmt.Sprint(got)
	}
	cmd := func(uuid string, a *store.AuditEntry) *store.CommandRecord {
		// The plan completes the record, as the app's does.
		return &store.CommandRecord{UUID: uuid, CreatedAt: now(), Audit: a}
	}
	planFor := func(rec *store.CommandRecord, seen *map[string]int, platforms ...string) store.BulkPlan {
		return func(counts map[string]int) ([]string, []byte, error) {
			*seen = counts
			rec.RequestType, rec.Payload = "ProfileList", []byte("payload-"+rec.UUID)
			return platforms, []byte(fmt.Sprintf(`{"command_uuid":%q}`, rec.UUID)), nil
		}
	}

	// A tenant: its enrolled devices' device channels, both platforms.
	var seen map[string]int
	a := &store.AuditEntry{At: now(), Actor: "key:k1", Action: "POST /api/v1/commands", Target: "tenant", Status: 201}
	rec := cmd("ET-1", a)
	n, ex, err := s.EnqueueTargets(ctx, nil, rec, store.TargetFilter{TenantID: fx.ta.ID}, planFor(rec, &seen, "iOS", "macOS"))
	if err != nil || ex != nil || n != 2 {
		t.Fatalf("tenant: %d %v %v", n, ex, err)
	}
	if fmt.Sprint(seen) != "map[iOS:1 macOS:1]" || holders("ET-1") != "[TGT-C1 TGT-C2]" {
		t.Fatalf("tenant: counts %v, queued on %s", seen, holders("ET-1"))
	}
	if a.ID == 0 {
		t.Fatal("audit entry not written with the command")
	}
	// Overlapping selections count and queue each channel once; a
	// platform the plan leaves out gets nothing.
	rec = cmd("ET-2", nil)
	f := store.TargetFilter{TenantID: fx.ta.ID, UserIDs: []string{fx.u1.ID, fx.u3.ID}, EnrollmentIDs: []string{fx.e1.ID, "TGT-A2", "TGT-A5", "NO-SUCH"}}
	n, _, err = s.EnqueueTargets(ctx, nil, rec, f, planFor(rec, &seen, "iOS"))
	if err != nil || n != 2 || fmt.Sprint(seen) != "map[iOS:2 macOS:1]" || holders("ET-2") != "[TGT-C1 TGT-C5]" {
		t.Fatalf("union: %d %v counts %v, queued on %s", n, err, seen, holders("ET-2"))
	}
	// Behind the first command on a channel both went to.
	if q, err := s.NextCommand(ctx, fx.e1.ID, "TGT-C1", true, now()); err != nil || q.UUID != "ET-1" {
		t.Fatalf("order: %v %v", q, err)
	}
	// Nothing enrolled matches: the plan sees no platform.
	rec = cmd("ET-3", nil)
	seen = nil
	n, _, err = s.EnqueueTargets(ctx, nil, rec, store.TargetFilter{UserIDs: []string{fx.u2.ID}}, planFor(rec, &seen))
	if err != nil || n != 0 || seen == nil || len(seen) != 0 {
		t.Fatalf("none: %d %v %v", n, seen, err)
	}
	// The plan refuses: nothing is written, not even the audit entry.
	refusal := errors.New("refused")
	a = &store.AuditEntry{At: now(), Actor: "key:k1", Action: "POST /api/v1/commands", Target: "refused", Status: 201}
	if _, _, err := s.EnqueueTargets(ctx, nil, cmd("ET-4", a), store.TargetFilter{TenantID: fx.ta.ID},
		func(map[string]int) ([]string, []byte, error) { return nil, nil, refusal }); !errors.Is(err, refusal) {
		t.Fatalf("refusal: %v", err)
	}
	if holders("ET-4") != "[]" {
		t.Fatal("queued although the plan refused")
	}
	if es, err := s.Audit(ctx, store.AuditFilter{Action: "POST /api/v1/commands"}); err != nil || len(es) != 1 {
		t.Fatalf("audit after a refusal: %v %v", es, err)
	}
	// Under an idempotency key: recorded with the plan's answer; the key
	// again queues nothing and returns the first record.
	t0 := now()
	key := func(fp string) *store.IdempotencyKey {
		return &store.IdempotencyKey{Principal: "key:k1", Key: "bulk-1", Fingerprint: fp, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	}
	rec = cmd("ET-5", nil)
	n, ex, err = s.EnqueueTargets(ctx, key("fp1"), rec, store.TargetFilter{TenantID: fx.tb.ID}, planFor(rec, &seen, "iOS"))
	if err != nil || ex != nil || n != 1 || holders("ET-5") != "[TGT-C5]" {
		t.Fatalf("keyed: %d %v %v", n, ex, err)
	}
	if k, err := s.IdempotencyKey(ctx, "key:k1", "bulk-1", t0); err != nil || string(k.Response) != `{"command_uuid":"ET-5"}` || k.Fingerprint != "fp1" {
		t.Fatalf("key record: %+v %v", k, err)
	}
	rec = cmd("ET-6", nil)
	n, ex, err = s.EnqueueTargets(ctx, key("fp2"), rec, store.TargetFilter{TenantID: fx.tb.ID}, planFor(rec, &seen, "iOS"))
	if err != nil || ex == nil || n != 0 || string(ex.Response) != `{"command_uuid":"ET-5"}` || ex.Fingerprint != "fp1" {
		t.Fatalf("repeat: %d %+v %v", n, ex, err)
	}
	if holders("ET-6") != "[]" {
		t.Fatal("a repeated key queued again")
	}
	// Longer lists than one statement takes are refused, not cut.
	long := make([]string, store.TargetListMax+1)
	for i := range long {
		long[i] = fmt.Sprint("en_long", i)
	}
	if _, _, err := s.EnqueueTargets(ctx, nil, cmd("ET-7", nil), store.TargetFilter{EnrollmentIDs: long}, planFor(rec, &seen, "iOS")); err == nil {
		t.Fatal("a list over TargetListMax was accepted")
	}
}

// SetUndeliverable takes a claimable command (sent, queued or NotNow) out
// of its channel's queue for good: NextCommand hands out the one behind
// it, after a report and after an Idle; an answered command, another enrollment's channel and a second
// call are ErrNotFound and change nothing.
func testUndeliverable(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	c := &store.Channel{ID: "UD-1", DeviceID: e1.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}
	if err := s.PutChannel(ctx, c); err != nil {
		t.Fatal(err)
	}
	t0 := now()
	for _, id := range []string{"u1", "u2", "u3"} {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: id, RequestType: "ProfileList", Payload: []byte("p-" + id), CreatedAt: t0}, []string{"UD-1"}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := s.NextCommand(ctx, e1.ID, "UD-1", true, t0)
	if err != nil || q.UUID != "u1" {
		t.Fatalf("first: %+v %v", q, err)
	}
	wantErr(t, s.SetUndeliverable(ctx, e2.ID, "UD-1", "u1", t0), store.ErrNotFound)
	if err := s.SetUndeliverable(ctx, e1.ID, "UD-1", "u1", t0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.SetUndeliverable(ctx, e1.ID, "UD-1", "u1", t0), store.ErrNotFound)
	for _, afterIdle := range []bool{false, true} {
		q, err = s.NextCommand(ctx, e1.ID, "UD-1", afterIdle, t0)
		if err != nil || q.UUID != "u2" {
			t.Fatalf("after the undeliverable one (afterIdle %v): %+v %v", afterIdle, q, err)
		}
	}
	// A result for it now is not the command's: it stays undeliverable.
	if _, err := s.RecordResult(ctx, e1.ID, "UD-1", "u2", mdm.Acknowledged, []byte("ok"), t0, nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.SetUndeliverable(ctx, e1.ID, "UD-1", "u2", t0), store.ErrNotFound)
	// A queued (never sent) command too.
	if err := s.SetUndeliverable(ctx, e1.ID, "UD-1", "u3", t0); err != nil {
		t.Fatal(err)
	}
	if q, err := s.NextCommand(ctx, e1.ID, "UD-1", true, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("nothing should be left: %+v %v", q, err)
	}
	list, err := s.QueuedCommands(ctx, "UD-1", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, q := range list {
		got[q.UUID] = q.Status
	}
	if got["u1"] != store.QueueUndeliverable || got["u2"] != mdm.Acknowledged || got["u3"] != store.QueueUndeliverable {
		t.Fatalf("statuses: %v", got)
	}
}

// CommandSummaries carries a result only up to its bound (its size
// always), never a payload or vars; ChannelCommand reads one command of
// the enrollment's channels whole, and nobody else's.
func testCommandSummaries(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	c := &store.Channel{ID: "CS-1", DeviceID: e1.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}
	if err := s.PutChannel(ctx, c); err != nil {
		t.Fatal(err)
	}
	t0 := now()
	results := map[string][]byte{"small": []byte("0123456789"), "large": []byte(strings.Repeat("x", 11)), "none": nil}
	for _, id := range []string{"none", "small", "large"} {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: id, RequestType: "ProfileList", Payload: []byte("payload-" + id), CreatedAt: t0}, []string{"CS-1"}); err != nil {
			t.Fatal(err)
		}
		if results[id] != nil {
			if _, err := s.RecordResult(ctx, e1.ID, "CS-1", id, mdm.Acknowledged, results[id], t0, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	list, err := s.CommandSummaries(ctx, "CS-1", 10, 10)
	if err != nil || len(list) != 3 || list[0].UUID != "large" || list[2].UUID != "none" {
		t.Fatalf("summaries: %+v %v", list, err)
	}
	for _, q := range list {
		want := results[q.UUID]
		if q.UUID == "large" {
			want = nil
		}
		if !bytes.Equal(q.Result, want) || q.ResultSize != len(results[q.UUID]) || q.Payload != nil || q.Vars != "" || q.RequestType != "ProfileList" ||
			!q.CreatedAt.Equal(t0) || q.ChannelID != "CS-1" {
			t.Fatalf("summary of %s: %+v", q.UUID, q)
		}
	}
	if list, _ := s.CommandSummaries(ctx, "CS-1", 1, 10); len(list) != 1 {
		t.Fatalf("limit: %d", len(list))
	}
	q, kind, err := s.ChannelCommand(ctx, e1.ID, "large")
	if err != nil || kind != "device" || string(q.Result) != string(results["large"]) || q.ResultSize != 11 || string(q.Payload) != "payload-large" {
		t.Fatalf("one command: %+v %q %v", q, kind, err)
	}
	_, _, err = s.ChannelCommand(ctx, e2.ID, "large")
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.ChannelCommand(ctx, e1.ID, "nope")
	wantErr(t, err, store.ErrNotFound)
}

// testSentMarkSeen: once NextCommand has returned, every read of a
// command's status says sent (on SQLite the mark is a lazy hint that
// commits later: these reads settle first) and the re-push job no longer
// lists the channel as waiting.
func testSentMarkSeen(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	t0 := now()
	c := &store.Channel{ID: "SM-1", DeviceID: e1.ID, Kind: "device", PushToken: []byte{1, 2}, PushMagic: "magic", CreatedAt: t0, UpdatedAt: t0}
	if err := s.PutChannel(ctx, c); err != nil {
		t.Fatal(err)
	}
	waiting := func() bool {
		t.Helper()
		chs, err := s.WaitingChannels(ctx, t0.Add(time.Hour), t0.Add(time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chs {
			if ch.ID == "SM-1" {
				return true
			}
		}
		return false
	}
	for i := range 3 {
		uuid := fmt.Sprintf("sm-%d", i)
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("p"), CreatedAt: t0}, []string{"SM-1"}); err != nil {
			t.Fatal(err)
		}
		if !waiting() {
			t.Fatalf("%s: a queued command's channel is not waiting", uuid)
		}
		at := t0.Add(time.Duration(i+1) * time.Second)
		q, err := s.NextCommand(ctx, e1.ID, "SM-1", true, at)
		if err != nil || q.UUID != uuid {
			t.Fatalf("%s: next %+v %v", uuid, q, err)
		}
		reads := []struct {
			name string
			read func() (string, time.Time, error)
		}{
			{"QueuedCommands", func() (string, time.Time, error) {
				list, err := s.QueuedCommands(ctx, "SM-1", 1)
				if err != nil || len(list) != 1 {
					return "", time.Time{}, fmt.Errorf("%d rows, %v", len(list), err)
				}
				return list[0].Status, list[0].SentAt, nil
			}},
			{"CommandSummaries", func() (string, time.Time, error) {
				list, err := s.CommandSummaries(ctx, "SM-1", 1, 0)
				if err != nil || len(list) != 1 {
					return "", time.Time{}, fmt.Errorf("%d rows, %v", len(list), err)
				}
				return list[0].Status, list[0].SentAt, nil
			}},
			{"ChannelCommand", func() (string, time.Time, error) {
				q, _, err := s.ChannelCommand(ctx, e1.ID, uuid)
				if err != nil {
					return "", time.Time{}, err
				}
				return q.Status, q.SentAt, nil
			}},
		}
		for _, r := range reads {
			st, sent, err := r.read()
			if err != nil || st != store.QueueSent || !sent.Equal(at) {
				t.Fatalf("%s after NextCommand of %s: %q sent at %v (%v), want sent at %v", r.name, uuid, st, sent, err, at)
			}
		}
		if waiting() {
			t.Fatalf("%s: the channel of a sent command is still waiting", uuid)
		}
		if _, _, err := s.RecordResultNext(ctx, e1.ID, "SM-1", uuid, "Acknowledged", []byte("r"), at, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// EnrollmentForCommand reads what Enrollment and Channel read (without
// the enrollment's blobs), by either name, and never another enrollment's
// channel.
func testEnrollmentForCommand(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	// e2 has the channels of both kinds first, so that e1's are never the
	// first rows of the channels table.
	for _, c := range []*store.Channel{
		{ID: "OTHER", DeviceID: e2.ID, Kind: "device", PushToken: []byte{9}, PushMagic: "o", CreatedAt: now(), UpdatedAt: now()},
		{ID: "OTHER/U0", DeviceID: e2.ID, Kind: "user", EnrollmentUserID: "U0", CreatedAt: now(), UpdatedAt: now()},
	} {
		if err := s.PutChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	want := func(ref string) *store.Enrollment {
		t.Helper()
		e, err := s.Enrollment(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		e.MachineInfo, e.Inventory = nil, nil
		return e
	}
	check := func(ref string, byApple bool, kind string, wantE *store.Enrollment, wantCh *store.Channel) {
		t.Helper()
		e, ch, err := s.EnrollmentForCommand(ctx, ref, byApple, kind)
		if err != nil {
			t.Fatalf("EnrollmentForCommand(%s, %v, %s): %v", ref, byApple, kind, err)
		}
		if !reflect.DeepEqual(e, wantE) {
			t.Fatalf("EnrollmentForCommand(%s, %v, %s) enrollment\n%+v, want\n%+v", ref, byApple, kind, e, wantE)
		}
		if !reflect.DeepEqual(ch, wantCh) {
			t.Fatalf("EnrollmentForCommand(%s, %v, %s) channel\n%+v, want\n%+v", ref, byApple, kind, ch, wantCh)
		}
	}
	// Not bound to Apple yet, no channel.
	check(e1.ID, false, "device", want(e1.ID), nil)
	_, _, err := s.EnrollmentForCommand(ctx, "APPLE-FC", true, "device")
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.EnrollmentForCommand(ctx, "nope", false, "device")
	wantErr(t, err, store.ErrNotFound)

	if err := s.BindAppleEnrollment(ctx, e1.ID, "APPLE-FC", store.DeviceInfo{OSVersion: "18.3", DeviceName: "d"}, now()); err != nil {
		t.Fatal(err)
	}
	check("APPLE-FC", true, "device", want(e1.ID), nil)
	for _, c := range []*store.Channel{
		{ID: "APPLE-FC", DeviceID: e1.ID, Kind: "device", PushToken: []byte{1, 2}, PushMagic: "m", CreatedAt: now(), UpdatedAt: now()},
		{ID: "APPLE-FC/U2", DeviceID: e1.ID, Kind: "user", EnrollmentUserID: "U2", UserShortName: "bob", UserLongName: "Bob", CreatedAt: now(), UpdatedAt: now()},
		{ID: "APPLE-FC/U1", DeviceID: e1.ID, Kind: "user", EnrollmentUserID: "U1", UserShortName: "alice", CreatedAt: now(), UpdatedAt: now()},
	} {
		if err := s.PutChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetPushResult(ctx, "APPLE-FC", true, now()); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchChannel(ctx, e1.ID, "APPLE-FC", now()); err != nil {
		t.Fatal(err)
	}
	channel := func(kind, euid string) *store.Channel {
		t.Helper()
		c, err := s.Channel(ctx, e1.ID, kind, euid)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dev := channel("device", "")
	if !dev.PushDead || dev.LastSeenAt.IsZero() || dev.LastPushAt.IsZero() {
		t.Fatalf("channel %+v: the push result and last-seen time not recorded", dev)
	}
	check("APPLE-FC", true, "device", want(e1.ID), dev)
	check(e1.ID, false, "device", want(e1.ID), dev)
	// The user channel first by id, as Channels lists them.
	check("APPLE-FC", true, "user", want(e1.ID), channel("user", "U1"))
	check(e1.ID, false, "other", want(e1.ID), nil)
	// An ID is not an EnrollmentID, nor the other way round.
	_, _, err = s.EnrollmentForCommand(ctx, e1.ID, true, "device")
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.EnrollmentForCommand(ctx, "APPLE-FC", false, "device")
	wantErr(t, err, store.ErrNotFound)
	// Ended: still read, as Enrollment reads it.
	if err := s.EndEnrollment(ctx, e1.ID, "test", now()); err != nil {
		t.Fatal(err)
	}
	check("APPLE-FC", true, "device", want(e1.ID), dev)
}
