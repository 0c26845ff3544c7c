package postgres

import (
	"context"
	"database/sql"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/store/storetest"
)

// enrolledDevice sets up one enrolled device (storetest.EnrolledSender
// "ac") and returns its Idle query.
func enrolledDevice(t *testing.T, s *sqlstore.Store) store.DeviceRequestQuery {
	t.Helper()
	return storetest.EnrolledSender(t, s, "ac")
}

// Two instances on one database, both listening: instance 2 remembers a
// sender; a revocation through instance 1 (EndEnrollment: CheckOut, an
// operator's revocation) and a hand-written one (any writer: the
// triggers of migration 0032) are refused by instance 2's next request
// once the notice arrived, sent at the revoking commit.
func TestRememberedSenderTwoInstances(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s1, _ := openListening(t, url)
	s2, l2 := openListening(t, url)
	q := enrolledDevice(t, s1)
	res := q
	res.NoWaiting = true
	read := func(s *sqlstore.Store, q store.DeviceRequestQuery) *store.DeviceRequest {
		t.Helper()
		r, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitNotice := func(what string, seen int64) {
		t.Helper()
		waitFor(t, "instance 2's notice of "+what, func() bool { return l2.authNotices.Load() > seen })
	}
	for range 2 {
		if r := read(s2, res); !r.IdentityCert.RevokedAt.IsZero() {
			t.Fatal("revoked before the revocation")
		}
	}
	seen := l2.authNotices.Load()
	if err := s1.EndEnrollment(ctx, "e-ac", "revoked by an operator", time.Now()); err != nil {
		t.Fatal(err)
	}
	waitNotice("the revocation", seen)
	if r := read(s2, res); r.IdentityCert.RevokedAt.IsZero() || r.Enrollment.Status != store.EnrollmentUnenrolled {
		t.Fatalf("revoked through instance 1: instance 2's next request read %+v", r)
	}

	// Written by hand: the certificate un-revoked and the user disabled
	// (one statement each), seen by instance 2 once their notices came.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	read(s2, q)
	read(s2, q)
	seen = l2.authNotices.Load()
	if _, err := db.ExecContext(ctx, `UPDATE users SET enabled = 0 WHERE id = 'u-ac'`); err != nil {
		t.Fatal(err)
	}
	waitNotice("the hand-written write", seen)
	if r := read(s2, q); r.User.Enabled {
		t.Fatal("a user disabled by hand: instance 2 read them enabled")
	}
	// A write of columns no sender read returns sends no notice.
	seen = l2.authNotices.Load()
	if _, err := db.ExecContext(ctx, `UPDATE channels SET last_seen_at = 5, push_dead = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE users SET enabled = 1 WHERE id = 'u-ac'`); err != nil {
		t.Fatal(err)
	}
	waitNotice("the second hand-written write", seen)
	if n := l2.authNotices.Load() - seen; n != 1 {
		t.Fatalf("%d notices for a channel's last-seen write and a user's, want 1", n)
	}
}

// On PostgreSQL a remembered sender's result costs no statement and its
// Idle poll one (the queue look), where each ran the five-table read; a
// revocation through the same store takes the very next request (the
// store forgets at its commit, before the notice); without the listener
// every request reads again.
func TestRememberedSenderStatements(t *testing.T) {
	ctx := context.Background()
	s, log, l := tracedListeningStore(t)
	q := enrolledDevice(t, s)
	res := q
	res.NoWaiting = true
	read := func(what string, q store.DeviceRequestQuery, want int) *store.DeviceRequest {
		t.Helper()
		log.Take()
		r, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got := log.Take(); len(got) != want {
			t.Errorf("%s sent %d statements, want %d:\n%s", what, len(got), want, strings.Join(got, "\n"))
		}
		return r
	}
	// The setup's notices may still arrive: each forgets.
	time.Sleep(100 * time.Millisecond)
	read("the first Idle poll", q, 1)
	read("a remembered sender's Idle poll of a queue seen empty", q, 0)
	read("a remembered sender's result", res, 0)
	read("a remembered sender's result", res, 0)
	if err := s.EndEnrollment(ctx, "e-ac", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := read("the result after the revocation", res, 1); r.IdentityCert.RevokedAt.IsZero() {
		t.Fatal("revoked through this store: its next request read the certificate as not revoked")
	}
	l.stop()
	read("a result without the listener", res, 1)
	read("a result without the listener", res, 1)
}

// Every column of the five tables a remembered sender's read (sqlstore's
// deviceRequestIdleSQL, as sent: its text is taken from the statement
// log, so a column added to the read later is checked too) returns or
// joins on notifies pomona_auth when any writer writes it, and so does a
// delete or truncate of any of them and an insert into the two
// left-joined ones. c.last_seen_at is the one exception (the store
// remembers its own touches of it). The triggers are statement-level:
// a statement that writes no row notifies too, so the test needs none.
// A column missing from migration 0032's UPDATE OF lists would leave
// every instance answering a changed sender from its cache; this fails
// then (checked by taking a column out of one list).
func TestEverySenderReadColumnNotifies(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	migrated, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	db, log := pgtest.TracedDB(t, url)
	s := sqlstore.New(Dialect, db, db, "traced")
	t.Cleanup(func() { s.Close() })
	q := enrolledDevice(t, s)
	log.Take()
	if _, err := s.DeviceRequest(ctx, q); err != nil {
		t.Fatal(err)
	}
	runs := log.Take()
	if len(runs) != 1 || !strings.Contains(runs[0], "JOIN enrollments") {
		t.Fatalf("the Idle read: %q, want the one joined read", runs)
	}
	tables := map[string]string{"ic": "identity_certs", "e": "enrollments", "u": "users", "t": "access_tokens", "c": "channels"}
	type col struct{ table, name string }
	var cols []col
	seen := map[col]bool{}
	for _, m := range regexp.MustCompile(`\b(ic|e|u|t|c)\.([a-z_]+)\b`).FindAllStringSubmatch(runs[0], -1) {
		c := col{tables[m[1]], m[2]}
		if !seen[c] && c != (col{"channels", "last_seen_at"}) {
			seen[c] = true
			cols = append(cols, c)
		}
	}
	if len(cols) < 20 {
		t.Fatalf("%d columns found in the read, want every one it names: %v\n%s", len(cols), cols, runs[0])
	}
	ln, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close(ctx)
	if _, err := ln.Exec(ctx, "LISTEN "+authChannel); err != nil {
		t.Fatal(err)
	}
	notifies := func(what, stmt string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := ln.WaitForNotification(wctx); err != nil {
			t.Errorf("%s written: no notice on %s (%v), every instance would answer a remembered sender as before", what, authChannel, err)
		}
	}
	for _, c := range cols {
		notifies(c.table+"."+c.name, `UPDATE `+c.table+` SET `+c.name+` = `+c.name+` WHERE false`)
	}
	notifies("an access token inserted", `INSERT INTO access_tokens SELECT * FROM access_tokens WHERE false`)
	notifies("a channel inserted", `INSERT INTO channels SELECT * FROM channels WHERE false`)
	for _, table := range []string{"channels", "access_tokens", "identity_certs", "enrollments", "users"} {
		notifies(table+" deleted", `DELETE FROM `+table+` WHERE false`)
	}
}
