package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// migrationsBefore is the embedded migrations numbered below prefix.
func migrationsBefore(t *testing.T, prefix string) fs.FS {
	before := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() < prefix {
			b, _ := fs.ReadFile(migrations, "migrations/"+e.Name())
			before["migrations/"+e.Name()] = &fstest.MapFile{Data: b}
		}
	}
	return before
}

// dump is every row of table in key order, as strings.
func dump(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = fmt.Sprintf("%T:%v", v, v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Migration 0027 rebuilds channels WITHOUT ROWID inside the migration's
// transaction with foreign keys on: every channel and every queue row
// (queue.channel_id REFERENCES channels ON DELETE CASCADE) must survive,
// and the references must still cascade afterwards.
func TestMigration0027ClustersChannelsAndKeepsQueue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	old := sqlstore.New(Dialect, db, db, path)
	if err := old.Migrate(ctx, migrationsBefore(t, "0027"), "migrations"); err != nil {
		t.Fatal(err)
	}
	if v, _ := old.SchemaVersion(ctx); v != 26 {
		t.Fatalf("schema %d before the migration", v)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(old.CreateTenant(ctx, &store.Tenant{ID: "t", Name: "t", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}))
	must(old.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now}))
	// Channels inserted out of id order (a rowid table keeps this order).
	var chans []string
	for i, n := range []int{7, 2, 9, 4} {
		en := fmt.Sprintf("en_%02d", n)
		must(old.CreateEnrollment(ctx, &store.Enrollment{ID: en, TenantID: "t", UserID: "u", TokenHash: []byte("h" + en), Platform: "iOS",
			Status: store.EnrollmentEnrolled, CreatedAt: now, UpdatedAt: now}, nil))
		dev := "ch_" + en[3:] + "_dev"
		_, err := db.Exec(`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, last_push_at, created_at, updated_at)
			VALUES (?, ?, 'device', ?, ?, ?, 1, 2)`, dev, en, []byte{byte(i), 0xff}, "magic-"+en, int64(i))
		must(err)
		_, err = db.Exec(`INSERT INTO channels (id, enrollment_ref, kind, enrollment_user_id, user_short_name, created_at, updated_at)
			VALUES (?, ?, 'user', 'UID', 'alice', 1, 2)`, "ch_"+en[3:]+"_usr", en)
		must(err)
		chans = append(chans, dev, "ch_"+en[3:]+"_usr")
	}
	must(old.Enqueue(ctx, &store.CommandRecord{UUID: "CMD-1", RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now}, chans))
	must(old.Enqueue(ctx, &store.CommandRecord{UUID: "CMD-2", RequestType: "ProfileList", Payload: []byte("y"), CreatedAt: now}, chans[:3]))
	const chansQ, queueQ = `SELECT * FROM channels ORDER BY id`, `SELECT * FROM queue ORDER BY channel_id, command_uuid`
	wantChans, wantQueue := dump(t, db, chansQ), dump(t, db, queueQ)
	if len(wantChans) != 8 || len(wantQueue) != 11 {
		t.Fatalf("before: %d channels, %d queue rows", len(wantChans), len(wantQueue))
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.SchemaVersion(ctx); v < 27 {
		t.Fatalf("schema %d after Open", v)
	}
	db, err = sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	var ddl string
	must(db.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'channels'`).Scan(&ddl))
	if !strings.Contains(ddl, "WITHOUT ROWID") {
		t.Fatalf("channels is not clustered by id:\n%s", ddl)
	}
	var qddl string
	must(db.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'queue'`).Scan(&qddl))
	if !strings.Contains(qddl, "REFERENCES channels(id)") {
		t.Fatalf("queue no longer references channels:\n%s", qddl)
	}
	var leftovers int
	must(db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%0027%'`).Scan(&leftovers))
	if leftovers != 0 {
		t.Fatalf("%d schema objects of the old table left", leftovers)
	}
	if got := dump(t, db, chansQ); !reflect.DeepEqual(got, wantChans) {
		t.Fatalf("channels after the migration:\n%v\nwant\n%v", got, wantChans)
	}
	if got := dump(t, db, queueQ); !reflect.DeepEqual(got, wantQueue) {
		t.Fatalf("queue after the migration:\n%v\nwant\n%v", got, wantQueue)
	}
	if bad := dump(t, db, `PRAGMA foreign_key_check`); len(bad) > 0 {
		t.Fatalf("foreign key violations: %v", bad)
	}
	// The owner key (enrollment, kind, user) is still a unique index:
	// device channel lookups and the cascade from enrollments use it.
	if got := dump(t, db, `SELECT name FROM pragma_index_list('channels') WHERE "unique" AND origin = 'u'`); len(got) != 1 {
		t.Fatalf("channels' unique owner index: %v", got)
	}
	// The store reads and writes the rebuilt table.
	if ch, err := s.Channel(ctx, "en_07", "device", ""); err != nil || ch.ID != "ch_07_dev" || ch.PushMagic != "magic-en_07" {
		t.Fatalf("Channel after the migration: %+v %v", ch, err)
	}
	must(s.SetPushResults(ctx, []store.PushResult{{ChannelID: "ch_02_dev"}}, now))
	// References still cascade: a channel's deletion takes its queue rows,
	// an enrollment's its channels (and so their rows).
	_, err = db.Exec(`DELETE FROM channels WHERE id = 'ch_02_dev'`)
	must(err)
	var n int
	must(db.QueryRow(`SELECT COUNT(*) FROM queue WHERE channel_id = 'ch_02_dev'`).Scan(&n))
	if n != 0 {
		t.Fatalf("%d queue rows of a deleted channel", n)
	}
	_, err = db.Exec(`DELETE FROM enrollments WHERE id = 'en_09'`)
	must(err)
	must(db.QueryRow(`SELECT (SELECT COUNT(*) FROM channels WHERE enrollment_ref = 'en_09') + (SELECT COUNT(*) FROM queue WHERE channel_id LIKE 'ch_09_%')`).Scan(&n))
	if n != 0 {
		t.Fatalf("%d channels or queue rows of a deleted enrollment", n)
	}
	// A queue row for a channel that does not exist is refused.
	if _, err := db.Exec(`INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at) VALUES ('ch_nope', 'CMD-1', 99, 'queued', 1)`); err == nil {
		t.Fatal("queue row for a missing channel accepted")
	}
}
