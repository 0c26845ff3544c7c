package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store/postgres"
)

// queueRefsDB is a migrated database with one enrollment, channels CH-0 …
// CH-299 and commands c1 and c2, opened both through the store (migrations) and
// as a plain connection pool for the raw statements below.
func queueRefsDB(t *testing.T) *sql.DB {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('t', 't', 0, 0)`,
		`INSERT INTO tenant_domains (tenant_id, domain) VALUES ('t', 't.example')`,
		`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, created_at, updated_at) VALUES ('u', 't', 'u@t.example', 't.example', 'u@t.example', 0, 0)`,
		`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, status, created_at, updated_at) VALUES ('en_1', 't', 'u', '\x00', 'iOS', 'enrolled', 0, 0)`,
		`INSERT INTO channels (id, enrollment_ref, kind, enrollment_user_id, created_at, updated_at)
			SELECT 'CH-' || i, 'en_1', 'user', 'U' || i, 0, 0 FROM generate_series(0, 299) AS i`,
		`INSERT INTO commands (uuid, request_type, payload, created_at) VALUES ('c1', 'ProfileList', '\x00', 0), ('c2', 'ProfileList', '\x00', 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	return db
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code + " " + pe.ConstraintName
	}
	return fmt.Sprint(err)
}

// rows is a VALUES list of queue rows for channels CH-from … CH-(to-1) and
// command cmd, plus extra (channel, command) pairs.
func rows(cmd string, from, to int, extra ...[2]string) string {
	var v []string
	for i := from; i < to; i++ {
		v = append(v, fmt.Sprintf("('CH-%d', '%s', 1, 'queued', 0)", i, cmd))
	}
	for _, e := range extra {
		v = append(v, fmt.Sprintf("('%s', '%s', 1, 'queued', 0)", e[0], e[1]))
	}
	return `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at) VALUES ` + strings.Join(v, ", ")
}

// Migration 0023 checks a queue row's channel and command once per
// statement (a trigger) instead of with foreign keys: every case the
// foreign keys refused is still refused, with their SQLSTATE (23503,
// which the store reports as ErrInUse / an unknown channel) and their
// names, on both of the trigger's paths (up to 64 rows: probes; more: one
// join), and a refused statement writes nothing.
func TestQueueReferencesChecked(t *testing.T) {
	ctx := context.Background()
	db := queueRefsDB(t)
	for _, c := range []struct {
		name, stmt, want string
	}{
		{"one row", rows("c1", 0, 1), ""},
		{"small statement", rows("c1", 1, 60), ""},
		{"large statement", rows("c1", 60, 200), ""},
		{"two commands, large", rows("c2", 0, 100, [2]string{"CH-100", "c2"}), ""},
		{"unknown channel, one row", rows("c1", 0, 0, [2]string{"NO-SUCH", "c1"}), "23503 queue_channel_id_fkey"},
		{"unknown command, one row", rows("c1", 0, 0, [2]string{"CH-150", "nope"}), "23503 queue_command_uuid_fkey"},
		{"unknown channel, small", rows("c2", 101, 120, [2]string{"NO-SUCH", "c2"}), "23503 queue_channel_id_fkey"},
		{"unknown command, small", rows("c2", 101, 120, [2]string{"CH-150", "nope"}), "23503 queue_command_uuid_fkey"},
		{"unknown channel, large", rows("c2", 101, 200, [2]string{"NO-SUCH", "c2"}), "23503 queue_channel_id_fkey"},
		{"unknown command, large", rows("c2", 101, 200, [2]string{"CH-150", "nope"}), "23503 queue_command_uuid_fkey"},
		{"re-point a row's channel", `UPDATE queue SET channel_id = 'CH-199' WHERE channel_id = 'CH-0' AND command_uuid = 'c1'`, "23503 "},
		{"re-point a row's command", `UPDATE queue SET command_uuid = 'c2' WHERE channel_id = 'CH-150' AND command_uuid = 'c1'`, "23503 "},
		{"rename a channel", `UPDATE channels SET id = 'CH-X' WHERE id = 'CH-0'`, "23503 "},
		{"rename a command", `UPDATE commands SET uuid = 'cX' WHERE uuid = 'c1'`, "23503 "},
		{"other columns change", `UPDATE queue SET status = 'sent', channel_id = channel_id WHERE channel_id = 'CH-0'`, ""},
	} {
		var before int
		db.QueryRowContext(ctx, `SELECT count(*) FROM queue`).Scan(&before)
		_, err := db.ExecContext(ctx, c.stmt)
		got := ""
		if err != nil {
			got = sqlState(err)
		}
		if got != c.want {
			t.Fatalf("%s: %q, want %q", c.name, got, c.want)
		}
		if err != nil {
			var after int
			db.QueryRowContext(ctx, `SELECT count(*) FROM queue`).Scan(&after)
			if after != before {
				t.Fatalf("%s: refused, but the queue went from %d to %d rows", c.name, before, after)
			}
		}
	}
	var n int
	db.QueryRowContext(ctx, `SELECT count(*) FROM queue`).Scan(&n)
	if n != 200+101 {
		t.Fatalf("%d queue rows, want 301", n)
	}
	// ON DELETE CASCADE from both parents.
	for _, c := range []struct {
		stmt, left string
		want       int
	}{
		{`DELETE FROM commands WHERE uuid = 'c2'`, `command_uuid = 'c2'`, 0},
		{`DELETE FROM channels WHERE id = 'CH-7'`, `channel_id = 'CH-7'`, 0},
		{`DELETE FROM enrollments WHERE id = 'en_1'`, `true`, 0},
	} {
		if _, err := db.ExecContext(ctx, c.stmt); err != nil {
			t.Fatal(c.stmt, err)
		}
		if db.QueryRowContext(ctx, `SELECT count(*) FROM queue WHERE `+c.left).Scan(&n); n != c.want {
			t.Fatalf("after %s: %d rows where %s", c.stmt, n, c.left)
		}
	}
}

// A queue insert and a concurrent delete of a channel it names: as with
// the foreign key, either the delete waits for the insert and then takes
// its rows with it, or one of the two fails — never a queue row without
// its channel. Each order, both isolation levels of the deleting side,
// on both paths of the check (one row, a large statement).
func TestQueueReferencesUnderConcurrentDelete(t *testing.T) {
	ctx := context.Background()
	// One database for all cases (a fresh one per case took longer than
	// the cases): case k deletes channel CH-20k, queued alone or with the
	// 69 channels after it (the trigger's large path), each case with its
	// own command.
	db := queueRefsDB(t)
	k := 0
	for _, iso := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelSerializable} {
		for _, large := range []bool{false, true} {
			for _, insertFirst := range []bool{true, false} {
				name := fmt.Sprintf("%v/large=%v/insertFirst=%v", iso, large, insertFirst)
				victim, cmd := fmt.Sprint("CH-", 20*k), fmt.Sprint("k", k)
				stmt := rows(cmd, 0, 0, [2]string{victim, cmd})
				if large {
					stmt = rows(cmd, 20*k, 20*k+70)
				}
				k++
				t.Run(name, func(t *testing.T) {
					if _, err := db.ExecContext(ctx, `INSERT INTO commands (uuid, request_type, payload, created_at) VALUES ($1, 'ProfileList', '\x00', 0)`, cmd); err != nil {
						t.Fatal(err)
					}
					ins, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
					if err != nil {
						t.Fatal(err)
					}
					del, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: iso})
					if err != nil {
						t.Fatal(err)
					}
					// Both transactions have their snapshot before either writes.
					ins.ExecContext(ctx, `SELECT 1 FROM channels LIMIT 1`)
					del.ExecContext(ctx, `SELECT 1 FROM queue LIMIT 1`)
					first, second := func() error { _, err := ins.ExecContext(ctx, stmt); return err },
						func() error { _, err := del.ExecContext(ctx, `DELETE FROM channels WHERE id = $1`, victim); return err }
					firstTx, secondTx := ins, del
					if !insertFirst {
						first, second, firstTx, secondTx = second, first, del, ins
					}
					err1 := first()
					done := make(chan error, 1)
					go func() { done <- second() }()
					select {
					case err := <-done:
						// The second went through at once: it must not have
						// (it waits for the first's lock), unless it failed.
						if err == nil {
							t.Fatalf("the second statement did not wait for the first transaction")
						}
						t.Logf("second statement failed at once: %v", err)
						secondTx.Rollback()
						done <- err
					case <-time.After(300 * time.Millisecond):
					}
					var commit1 error
					if err1 == nil {
						commit1 = firstTx.Commit()
					} else {
						firstTx.Rollback()
					}
					err2 := <-done
					var commit2 error
					if err2 == nil {
						commit2 = secondTx.Commit()
					} else {
						secondTx.Rollback()
					}
					t.Logf("first %v / commit %v; second %v / commit %v", err1, commit1, err2, commit2)
					for _, err := range []error{err1, commit1, err2, commit2} {
						if err != nil && !strings.HasPrefix(sqlState(err), "23503") && !strings.HasPrefix(sqlState(err), "40001") {
							t.Fatalf("unexpected error %v", err)
						}
					}
					var orphans int
					if err := db.QueryRowContext(ctx, `SELECT count(*) FROM queue q WHERE NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = q.channel_id)`).Scan(&orphans); err != nil {
						t.Fatal(err)
					}
					if orphans != 0 {
						t.Fatalf("%d queue rows without their channel", orphans)
					}
				})
			}
		}
	}
}

// A delete of a channel or a command at REPEATABLE READ is refused
// (0A000): the cascade trigger's DELETE would run on the transaction's
// snapshot and miss queue rows a concurrent insert committed after it,
// leaving them without their channel or command (found by the session-7
// attack pass: 1 and 2 orphans). The same delete at READ COMMITTED
// cascades; a concurrent insert committed first is refused nothing.
func TestQueueCascadeRefusedAtRepeatableRead(t *testing.T) {
	ctx := context.Background()
	db := queueRefsDB(t)
	for i, c := range []struct{ del, victimCh, victimCmd string }{
		{`DELETE FROM channels WHERE id = 'CH-5'`, "CH-5", "c1"},
		{`DELETE FROM commands WHERE uuid = 'c2'`, "CH-6", "c2"},
	} {
		ins, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		if err != nil {
			t.Fatal(err)
		}
		del, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		del.ExecContext(ctx, `SELECT 1 FROM queue LIMIT 1`) // its snapshot, before the insert commits
		if _, err := ins.ExecContext(ctx, rows(c.victimCmd, 0, 0, [2]string{c.victimCh, c.victimCmd})); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := del.ExecContext(ctx, c.del); done <- err }()
		time.Sleep(200 * time.Millisecond)
		if err := ins.Commit(); err != nil {
			t.Fatal(err)
		}
		err = <-done
		if err == nil {
			err = del.Commit()
		} else {
			del.Rollback()
		}
		if got := sqlState(err); err == nil || !strings.HasPrefix(got, "0A000") {
			t.Errorf("%d: a REPEATABLE READ delete: %v (%s), want 0A000", i, err, got)
		}
		var orphans int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM queue q WHERE NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = q.channel_id)
			OR NOT EXISTS (SELECT 1 FROM commands c WHERE c.uuid = q.command_uuid)`).Scan(&orphans); err != nil || orphans != 0 {
			t.Fatalf("%d: %d queue rows without their channel or command (%v)", i, orphans, err)
		}
		// At READ COMMITTED the same delete cascades.
		rc, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.ExecContext(ctx, c.del); err != nil {
			t.Fatalf("%d: READ COMMITTED delete: %v", i, err)
		}
		if err := rc.Commit(); err != nil {
			t.Fatal(err)
		}
		var left int
		db.QueryRowContext(ctx, `SELECT count(*) FROM queue WHERE channel_id = $1 AND command_uuid = $2`, c.victimCh, c.victimCmd).Scan(&left)
		if left != 0 {
			t.Errorf("%d: the cascade left %d queue rows", i, left)
		}
	}
}
