package postgres_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/profiles"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlite"
)

// orphanFleet is a PostgreSQL store with two enrolled devices (device
// channels with push tokens) whose all-users group has a profile assigned
// (both queued), plus a reconcile_queue row of an enrollment that does not
// exist: what a marking concurrent with the enrollment's deletion can
// leave since migration 0035 dropped the queue's foreign key (before it,
// the INSERT below failed with a foreign-key violation).
func orphanFleet(t *testing.T) (url string, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	url = pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err = sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('t', 'T', 0, 0)`,
		`INSERT INTO tenant_domains (tenant_id, domain) VALUES ('t', 't.example')`,
		`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, created_at, updated_at)
			VALUES ('us_1', 't', 'u1@t.example', 't.example', 'u1@t.example', 0, 0)`,
		`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, os_version, status, created_at, updated_at, apple_enrollment_id)
			SELECT 'en_' || i, 't', 'us_1', decode(md5(i::text), 'hex'), 'iOS', '18.2', 'enrolled', 0, 0, 'APPLE-' || i FROM generate_series(1, 2) AS i`,
		`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, created_at, updated_at)
			SELECT 'CH' || md5(id), id, 'device', decode(md5(id), 'hex'), 'magic', 0, 0 FROM enrollments`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	now := time.Now().UTC()
	svc := &app.Profiles{Store: s, Rules: payloads.Default(), Now: time.Now}
	p, err := svc.Upload(ctx, app.ProfileUpload{TenantID: "t", Content: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadContent</key><array><dict>
<key>PayloadType</key><string>com.apple.wifi.managed</string><key>PayloadIdentifier</key><string>com.example.orphan.wifi</string>
<key>PayloadUUID</key><string>7C1F0B4E-7A57-4D55-9C55-2C8E4C2E9A01</string><key>PayloadVersion</key><integer>1</integer>
<key>SSID_STR</key><string>Orphan</string><key>EncryptionType</key><string>WPA2</string>
</dict></array>
<key>PayloadDisplayName</key><string>Orphan</string><key>PayloadIdentifier</key><string>com.example.orphan</string>
<key>PayloadType</key><string>Configuration</string><key>PayloadUUID</key><string>7C1F0B4E-7A57-4D55-9C55-2C8E4C2E9A00</string>
<key>PayloadVersion</key><integer>1</integer>
</dict></plist>`)})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.AllUsersGroup(ctx, "t", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Assign(ctx, p.ID, all.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO reconcile_queue (enrollment_id, due_at, verify, gen) VALUES ('en_gone', 0, 0, 1)`); err != nil {
		t.Fatal("an orphan queue row:", err)
	}
	return url, db
}

// TestOrphanQueueRowIsDrained: a reconcile_queue row whose enrollment is
// gone never makes the reconciler fail: its pass claims it with the real
// devices, finds no input for it, plans the others and deletes it.
func TestOrphanQueueRowIsDrained(t *testing.T) {
	ctx := context.Background()
	url, db := orphanFleet(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j := &profiles.Job{Store: s, Holder: "orphan", Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Commands: &app.Commands{Store: s, Catalog: catalog.Default(), Now: time.Now}}
	rep, err := j.Run(ctx)
	if err != nil || rep.Claimed != 3 || rep.Installs != 2 {
		t.Fatalf("pass: %+v %v (want 3 claimed, 2 installs)", rep, err)
	}
	var left, installing int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reconcile_queue WHERE enrollment_id = 'en_gone'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("the orphan's queue row left (%d, %v): its claim's finish deletes it", left, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_items WHERE state = 'installing'`).Scan(&installing); err != nil || installing != 2 {
		t.Fatalf("%d items installing (%v), want 2", installing, err)
	}
}

// TestCopyLeavesOrphanQueueRows: `pomona store migrate` from PostgreSQL
// to SQLite (whose reconcile_queue keeps its foreign key) copies the
// queue rows of existing enrollments and leaves an orphan behind, and its
// verification (row counts and checksums of both sides) agrees.
func TestCopyLeavesOrphanQueueRows(t *testing.T) {
	ctx := context.Background()
	url, _ := orphanFleet(t)
	src, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pomona.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	reps, err := src.CopyTo(ctx, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.Table == "reconcile_queue" && r.Rows != 2 {
			t.Fatalf("reconcile_queue: %d rows copied, want the 2 of existing enrollments", r.Rows)
		}
	}
	if n, err := dst.DirtyCount(ctx, time.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("target queue: %d (%v), want 2", n, err)
	}
}
