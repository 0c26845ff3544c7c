package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// profileWave is a counted store (countedStoreAt) with tenant t1, user
// u1, its iOS enrollment e1 with the device channel CH-1, and profile p1.
// install queues a new InstallProfile of p1 (i1, i2, …) with its
// installing item, takes it, and returns the answer's acknowledgement
// (which queues the verifying ProfileList list-<uuid>); list returns a
// ProfileList answer's that finds every item installed.
func profileWave(t *testing.T) (s *sqlstore.Store, log *statementLog, path string, install func() (*store.ProfileAck, string), list func() *store.ProfileAck) {
	t.Helper()
	ctx := context.Background()
	s, log, path = countedStoreAt(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateTenant(ctx, &store.Tenant{ID: "t1", Name: "T", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}))
	must(s.CreateUser(ctx, &store.User{ID: "u1", TenantID: "t1", Email: "a@t.example", ManagedAppleID: "a@t.example", Name: "A", Enabled: true,
		CreatedAt: now, UpdatedAt: now}))
	must(s.CreateEnrollment(ctx, &store.Enrollment{ID: "e1", TenantID: "t1", UserID: "u1", TokenHash: []byte("tok"), Platform: "iOS",
		Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}, nil))
	must(s.PutChannel(ctx, &store.Channel{ID: "CH-1", DeviceID: "e1", Kind: "device", CreatedAt: now, UpdatedAt: now}))
	p := &store.ConfigProfile{ID: "p1", TenantID: "t1", Identifier: "com.example.p1", Name: "p1", Platforms: []string{"iOS"},
		PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now, UpdatedAt: now}
	must(s.CreateProfile(ctx, p, &store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h1", CreatedAt: now}))
	n := 0
	install = func() (*store.ProfileAck, string) {
		t.Helper()
		n++
		uuid := fmt.Sprintf("i%d", n)
		must(s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}))
		must(s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: "e1", ProfileID: "p1", Identifier: "com.example.p1", State: "installing",
			Version: 1, Hash: "h1", CommandUUID: uuid, UpdatedAt: now}))
		if q, err := s.NextCommand(ctx, "e1", "CH-1", true, now); err != nil || q.UUID != uuid {
			t.Fatalf("next: %+v %v", q, err)
		}
		return &store.ProfileAck{Verify: func() *store.CommandRecord {
			return &store.CommandRecord{UUID: "list-" + uuid, RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now, CreatedBy: "profiles"}
		}}, uuid
	}
	list = func() *store.ProfileAck {
		return &store.ProfileAck{List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
			for i := range items {
				items[i].State = "installed"
			}
			return items, nil
		}}
	}
	return s, log, path, install, list
}

// TestProfileAnswerStatements counts what a profile wave's two answers
// run on SQLite (BEGIN and COMMIT counted), and what they prepare: a
// statement prepared again on every answer is parsed and planned again.
// An acknowledged install that queues its ProfileList runs 10 (with the
// poll's lazy sent mark riding in its batch): the poll's mark, the
// result's read and write, the item's acknowledgement (one UPDATE …
// RETURNING that also says whether a certificate is to be revoked:
// ackFirstSQL), the ProfileList's command unless one waits, its queue
// row, the next command's read and mark. Session 12 ran 14: a savepoint
// and its release around the profile work, the item's read and UPDATE as
// two statements, and revokeSuperseded's UPDATE with no certificate to
// revoke. The ProfileList's answer runs 7 (9 with the savepoint). Neither
// prepares anything once the pool has cached its statements: before
// Session 12 both prepared their SAVEPOINT and RELEASE on every answer
// (run directly on the transaction).
func TestProfileAnswerStatements(t *testing.T) {
	ctx := context.Background()
	s, log, path, install, list := profileWave(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Two waves: the first prepares what the pool caches; the second is
	// counted.
	var runs, prepares [2][]string
	for round := range 2 {
		ack, uuid := install()
		log.take()
		rt, q, err := s.RecordResultNext(ctx, "e1", "CH-1", uuid, "Acknowledged", []byte("<plist/>"), now, nil, ack)
		if err != nil || rt != "InstallProfile" || !ack.Done || !ack.Queued || q == nil || q.UUID != "list-"+uuid {
			t.Fatalf("install answer: %q %+v %+v %v", rt, ack, q, err)
		}
		r, pr := log.take()
		runs[0], prepares[0] = r, pr
		l := list()
		if rt, q, err = s.RecordResultNext(ctx, "e1", "CH-1", "list-"+uuid, "Acknowledged", []byte("<plist/>"), now, nil, l); err != nil ||
			rt != "ProfileList" || !l.Done || len(l.Put) != 1 || q != nil {
			t.Fatalf("list answer: %q %+v %+v %v", rt, l, q, err)
		}
		r, pr = log.take()
		runs[1], prepares[1] = r, pr
		if round == 0 {
			continue
		}
		for i, what := range []string{"an acknowledged install that queues its ProfileList", "the ProfileList's answer"} {
			if want := []int{10, 7}[i]; len(runs[i]) != want || len(prepares[i]) != 0 {
				t.Errorf("%s: %d statements, %d prepared, want %d and none prepared:\n  %s\n  prepared: %s", what, len(runs[i]), len(prepares[i]),
					want, strings.Join(runs[i], "\n  "), strings.Join(prepares[i], " | "))
			}
		}
	}

	// An install answered while a ProfileList waits queues none, and
	// leaves no command row of its own verifying ProfileList behind.
	ack, uuid := install()
	must(s.Enqueue(ctx, &store.CommandRecord{UUID: "waiting", RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}))
	if _, q, err := s.RecordResultNext(ctx, "e1", "CH-1", uuid, "Acknowledged", []byte("<plist/>"), now, nil, ack); err != nil || !ack.Done || ack.Queued ||
		q == nil || q.UUID != "waiting" {
		t.Fatalf("install answer with a ProfileList waiting: %+v %+v %v", ack, q, err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	must(err)
	defer raw.Close()
	var rows int
	must(raw.QueryRow(`SELECT COUNT(*) FROM commands WHERE uuid = ?`, "list-"+uuid).Scan(&rows))
	if rows != 0 {
		t.Fatalf("the verifying ProfileList not queued has %d command rows, want none", rows)
	}
}
