//go:build unix

package sqlite

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// TestMigration0027Timed times migration 0027 (wall and process CPU) (channels rebuilt WITHOUT
// ROWID, marked foreign_keys off) and its foreign-key checks over a
// fleet of POMONA_MIGRATE0027_DEVICES devices (skipped unset): per
// device a user, an enrollment, a device channel, an identity
// certificate, a profile item and a queued command. The fleet at schema
// 26 is built once into POMONA_MIGRATE0027_TEMPLATE (when set, kept for
// the next run) and copied for the migration. Logs the migration's wall
// time, then the whole-database PRAGMA foreign_key_check against the
// per-table checks of channels and queue (what 0027 touches and what
// references it), interleaved. A measurement (docs/benchmarks.md), not
// a check: it fails only on errors.
func TestMigration0027Timed(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("POMONA_MIGRATE0027_DEVICES"))
	if n <= 0 {
		t.Skip("POMONA_MIGRATE0027_DEVICES unset")
	}
	ctx := context.Background()
	template := os.Getenv("POMONA_MIGRATE0027_TEMPLATE")
	if template == "" {
		template = filepath.Join(t.TempDir(), "template.db")
	}
	open := func(path string) (*sql.DB, *sqlstore.Store) {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate&"+writerCache)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		return db, sqlstore.New(Dialect, db, db, path)
	}
	if _, err := os.Stat(template); err != nil {
		db, s := open(template)
		if err := s.Migrate(ctx, migrationsBefore(t, "0027"), "migrations"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, q := range []string{
			`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('tn', 'T', 1, 1)`,
			`INSERT INTO tenant_domains (domain, tenant_id) VALUES ('t.example', 'tn')`,
			`INSERT INTO config_profiles (id, tenant_id, identifier, name, version, hash, created_at, updated_at) VALUES ('pr', 'tn', 'com.example', 'p', 1, 'h', 1, 1)`,
			`INSERT INTO commands (uuid, request_type, payload, created_at) VALUES ('CMD', 'ProfileList', x'00', 1)`,
			`CREATE TEMP TABLE ids AS WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ` + strconv.Itoa(n) + `)
				SELECT n, printf('%06x%07d', abs(random()) % 16777216, n) AS k FROM i`,
			`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, created_at, updated_at)
				SELECT 'us_' || k, 'tn', 'u' || n || '@t.example', 't.example', 'x', 1, 1 FROM ids`,
			`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, status, created_at, updated_at, apple_enrollment_id)
				SELECT 'en_' || k, 'tn', 'us_' || k, randomblob(32), 'iOS', 'enrolled', 1, 1, 'APPLE-' || n FROM ids`,
			`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, created_at, updated_at)
				SELECT 'en_' || k || '.d', 'en_' || k, 'device', randomblob(32), 'magic', 1, 1 FROM ids`,
			`INSERT INTO identity_certs (serial, enrollment_id, sha256, not_before, not_after, issued_at)
				SELECT 'sn' || n, 'en_' || k, randomblob(32), 1, 2, 1 FROM ids`,
			`INSERT INTO profile_items (enrollment_id, profile_id, identifier, state, updated_at)
				SELECT 'en_' || k, 'pr', 'com.example', 'installed', 1 FROM ids`,
			`INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at)
				SELECT 'en_' || k || '.d', 'CMD', n + 1, 'queued', 1 FROM ids`,
			`DROP TABLE ids`,
			`PRAGMA wal_checkpoint(TRUNCATE)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%v\n%s", err, q)
			}
		}
		t.Logf("fleet of %d devices at schema 26 built in %v", n, time.Since(start))
		db.Close()
	}
	path := filepath.Join(t.TempDir(), "old.db")
	copyFile(t, template, path)
	db, s := open(path)
	defer db.Close()
	start, cpu := time.Now(), cpuTime(t)
	if err := s.Migrate(ctx, migrationsBefore(t, "0028"), "migrations"); err != nil {
		t.Fatal(err)
	}
	t.Logf("migration 0027 at %d devices: %v (process CPU %v)", n, time.Since(start), cpuTime(t)-cpu)
	timed := func(qs ...string) time.Duration {
		start := time.Now()
		for _, q := range qs {
			rows, err := db.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				t.Fatalf("a violation: %s", q)
			}
			rows.Close()
		}
		return time.Since(start)
	}
	for i := 0; i < 2; i++ {
		whole := timed(`PRAGMA foreign_key_check`)
		tables := timed(`PRAGMA foreign_key_check(channels)`, `PRAGMA foreign_key_check(queue)`)
		t.Logf("foreign key check: whole database %v, channels + queue %v", whole, tables)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
