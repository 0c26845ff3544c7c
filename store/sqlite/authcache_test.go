package sqlite

import (
	"context"
	"database/sql"
	"regexp"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/store/storetest"
)

// remembered sets up one enrolled device (storetest.EnrolledSender "ac")
// and returns its Idle query.
func remembered(t *testing.T, s *sqlstore.Store) store.DeviceRequestQuery {
	t.Helper()
	return storetest.EnrolledSender(t, s, "ac")
}

// A remembered command-channel sender (sqlstore's authCache) costs one
// statement on one row per request: auth_generation alone for a result,
// with the channel's queue look for an Idle poll — instead of the
// five-table read (deviceRequestIdleSQL) every request ran before.
func TestRememberedSenderStatements(t *testing.T) {
	ctx := context.Background()
	s, log := countedStore(t)
	q := remembered(t, s)
	log.take()
	read := func(q store.DeviceRequestQuery) []string {
		t.Helper()
		if _, err := s.DeviceRequest(ctx, q); err != nil {
			t.Fatal(err)
		}
		runs, _ := log.take()
		return runs
	}
	if runs := read(q); len(runs) != 1 || !strings.Contains(runs[0], "JOIN enrollments") {
		t.Fatalf("first Idle read: %q, want the one joined read", runs)
	}
	for range 2 {
		if runs := read(q); len(runs) != 1 || !strings.Contains(runs[0], "FROM auth_generation g") || strings.Contains(runs[0], "JOIN") {
			t.Fatalf("a remembered sender's Idle poll: %q, want auth_generation with the queue look", runs)
		}
	}
	res := q
	res.NoWaiting = true
	if runs := read(res); len(runs) != 1 || runs[0] != "SELECT gen AS a FROM auth_generation WHERE id = 1" {
		t.Fatalf("a remembered sender's result: %q, want auth_generation alone", runs)
	}
}

// Another connection's writes (another process on the file, the sqlite3
// shell, a store copy — nothing that tells this store) reach the very
// next request of a remembered sender: migration 0032's triggers count
// them in auth_generation, which the request reads. Writes of columns
// the read does not return (last_seen_at) do not count.
func TestRememberedSenderSeesOtherWriters(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/pomona.db"
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := remembered(t, s)
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	gen := func() (g int64) {
		t.Helper()
		if err := other.QueryRowContext(ctx, `SELECT gen FROM auth_generation`).Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	read := func(q store.DeviceRequestQuery) *store.DeviceRequest {
		t.Helper()
		r, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	exec := func(stmt string) {
		t.Helper()
		if _, err := other.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	res := q
	res.NoWaiting = true
	read(q)
	read(res)

	g := gen()
	exec(`UPDATE channels SET last_seen_at = 5, push_dead = 1`)
	exec(`UPDATE enrollments SET inventory = '{}', last_seen_at = 5`)
	if gen() != g {
		t.Fatal("a write of columns no sender read returns moved auth_generation")
	}

	exec(`UPDATE identity_certs SET revoked_at = 7 WHERE serial = '0e1f'`)
	if r := read(res); r.IdentityCert.RevokedAt.IsZero() {
		t.Fatal("revoked by another connection: the next request read the certificate as not revoked")
	}
	exec(`UPDATE users SET enabled = 0`)
	if r := read(q); r.User.Enabled {
		t.Fatal("user disabled by another connection: read as enabled")
	}
	exec(`UPDATE access_tokens SET revoked_at = 9`)
	if r := read(res); r.AccessToken.RevokedAt.IsZero() {
		t.Fatal("token revoked by another connection: read as not revoked")
	}
	exec(`UPDATE enrollments SET status = 'unenrolled'`)
	if r := read(q); r.Enrollment.Status != store.EnrollmentUnenrolled {
		t.Fatal("enrollment ended by another connection: read as " + r.Enrollment.Status)
	}
	exec(`DELETE FROM channels`)
	if r := read(q); r.Channel != nil {
		t.Fatal("channel deleted by another connection: still read")
	}
	exec(`DELETE FROM identity_certs`)
	if _, err := s.DeviceRequest(ctx, res); err == nil {
		t.Fatal("certificate deleted by another connection: still found")
	}
}

// Every column of the five tables a remembered sender's read (sqlstore's
// deviceRequestIdleSQL, as run: its text is taken from the statement
// log, so a column added to the read later is checked too) returns or
// joins on moves auth_generation when another connection writes it,
// and so does a row deleted from any of them or inserted into the two
// left-joined ones. c.last_seen_at is the one exception: the store
// remembers its own touches of it (authCache.seen), a minute's
// staleness of it decides nothing. A trigger missing a column of the
// read (migration 0032's UPDATE OF lists), or dropped by a later
// migration that rebuilds one of these tables, would leave a changed
// sender answered from the cache; this fails then (checked by taking
// a column out of one list).
func TestEverySenderReadColumnIsCounted(t *testing.T) {
	ctx := context.Background()
	s, log, path := countedStoreAt(t)
	q := remembered(t, s)
	log.take()
	if _, err := s.DeviceRequest(ctx, q); err != nil {
		t.Fatal(err)
	}
	runs, _ := log.take()
	if len(runs) != 1 || !strings.Contains(runs[0], "JOIN enrollments") {
		t.Fatalf("first Idle read: %q, want the one joined read", runs)
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
	t.Logf("%d columns: %v", len(cols), cols)
	if len(cols) < 20 {
		t.Fatalf("%d columns found in the read, want every one it names: %v\n%s", len(cols), cols, runs[0])
	}
	// Foreign keys off: the rows are deleted child first, but a table
	// may still be referenced by others the test did not fill.
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	moves := func(what, stmt string) {
		t.Helper()
		var before, after int64
		if err := other.QueryRowContext(ctx, `SELECT gen FROM auth_generation`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		res, err := other.ExecContext(ctx, stmt)
		if err != nil {
			t.Fatal(stmt, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%s: no row written (%s)", what, stmt)
		}
		if err := other.QueryRowContext(ctx, `SELECT gen FROM auth_generation`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if after == before {
			t.Errorf("%s written by another connection: auth_generation did not move, a remembered sender would be answered as before", what)
		}
	}
	for _, c := range cols {
		moves(c.table+"."+c.name, `UPDATE `+c.table+` SET `+c.name+` = `+c.name)
	}
	// The left-joined rows: one that appears changes a read that found
	// none; every row that goes changes one that found it.
	moves("an access token inserted", `INSERT INTO access_tokens (hash, user_id, tenant_id, created_at, expires_at, enrollment_id, revoked_at)
		SELECT X'01', user_id, tenant_id, created_at, expires_at, enrollment_id, revoked_at FROM access_tokens LIMIT 1`)
	moves("a channel inserted", `INSERT INTO channels (id, enrollment_ref, kind, enrollment_user_id, push_magic, created_at, updated_at, last_seen_at)
		SELECT 'ch-2', enrollment_ref, 'user', 'x', push_magic, created_at, updated_at, last_seen_at FROM channels LIMIT 1`)
	for _, table := range []string{"channels", "access_tokens", "identity_certs", "enrollments", "users"} {
		moves(table+" deleted", `DELETE FROM `+table)
	}
}
