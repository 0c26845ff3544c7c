package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// hintPages seeds n enrolled devices whose channels are inserted in a
// random order (as enrollment makes them) with ids that sort like their
// enrollments' (mdmservice.NewChannelID), then records the push results
// of one reconciler batch — the contiguous batch channels from the
// middle — and returns how many pages that hint write appended to the
// WAL. withClustered: the schema with migration 0027 (channels WITHOUT
// ROWID); otherwise the schema before it.
func hintPages(t *testing.T, n, batch int, withClustered bool) int64 {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hints.db")
	// The same store setup for both schemas (one connection, no group
	// commit): only the migrations differ.
	upTo := "0027"
	if withClustered {
		upTo = "9999"
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	s := sqlstore.New(Dialect, db, db, path)
	if err := s.Migrate(ctx, migrationsBefore(t, upTo), "migrations"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	t.Cleanup(func() { raw.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateTenant(ctx, &store.Tenant{ID: "t", Name: "t", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range r.Perm(n) {
		en := fmt.Sprintf("en_%06d", k)
		if _, err := tx.Exec(`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, status, created_at, updated_at)
			VALUES (?, 't', 'u', ?, 'iOS', 'enrolled', 1, 1)`, en, "h"+en); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, user_short_name, created_at, updated_at)
			VALUES (?, ?, 'device', ?, ?, 'mobile', 1, 1)`, fmt.Sprintf("ch_%06d_abcdefghijklmnop", k), en, make([]byte, 32),
			"01234567-89AB-CDEF-0123-456789ABCDEF"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	results := make([]store.PushResult, batch)
	for i := range results {
		results[i].ChannelID = fmt.Sprintf("ch_%06d_abcdefghijklmnop", n/2+i)
	}
	if err := s.SetPushResults(ctx, results, now); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	var page int64
	if err := raw.QueryRow(`PRAGMA page_size`).Scan(&page); err != nil {
		t.Fatal(err)
	}
	// A WAL is a 32-byte header and frames of a 24-byte header + a page.
	return (fi.Size() - 32) / (page + 24)
}

// The push results of one reconciler batch (a contiguous range of
// channel ids) dirty a few neighbouring pages of the clustered channels
// table, where the rowid table dirtied about one page per channel: the
// WAL pages of one SetPushResults, before and after migration 0027.
func TestPushResultHintsClustered(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 10,000 devices twice")
	}
	const n, batch = 10000, 2000
	before := hintPages(t, n, batch, false)
	after := hintPages(t, n, batch, true)
	t.Logf("WAL pages of one batch's push results (%d of %d channels): rowid table %d, WITHOUT ROWID %d", batch, n, before, after)
	if before < batch/4 {
		t.Fatalf("the rowid baseline wrote only %d pages for %d scattered channels: the measurement is off", before, batch)
	}
	if after*5 > before {
		t.Fatalf("clustered channels: %d WAL pages, want under a fifth of the rowid table's %d", after, before)
	}
}
