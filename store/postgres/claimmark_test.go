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

// A claim that marks the next chunk of a large assignment (sqlstore's
// expandMarks) claims the rows it inserts in the same statement: a fresh
// device's queue row is written once, claimed, not inserted and then
// updated by the claim. Rows marked unclaimed (the assignment's own first
// chunk) are claimed by later claims with an update, as before, and every
// device is claimed exactly once. Counted in pg_stat_user_tables on the
// store's one connection. On the code before (the chunk marked
// unclaimed, then the claim's UPDATE) the first claim updated 1,000 rows.
func TestExpansionClaimsAsItMarks(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s0, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s0.Close()
	db, log := pgtest.TracedDB(t, url)
	db.SetMaxOpenConns(1) // the counters read are this backend's
	s := sqlstore.New(postgres.Dialect, db, db, "claimmark")
	t.Cleanup(func() { s.Close() })
	s.SetMarkChunk(1000)
	const n, batch = 2500, 1000
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('t', 'T', 0, 0)`,
		`INSERT INTO tenant_domains (tenant_id, domain) VALUES ('t', 't.example')`,
		`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, created_at, updated_at)
			SELECT 'us_' || i, 't', 'user' || i || '@t.example', 't.example', 'user' || i || '@t.example', 0, 0 FROM generate_series(0, 9) AS i`,
		fmt.Sprintf(`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, os_version, status, created_at, updated_at)
			SELECT 'en_' || md5(i::text), 't', 'us_' || (i %% 10), decode(md5(i::text), 'hex'), 'iOS', '18.2', 'enrolled', 0, 0
			FROM generate_series(1, %d) AS i`, n),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	if err := s.CreateProfile(ctx, &store.ConfigProfile{ID: "p", TenantID: "t", Identifier: "com.example.p", Name: "p", CreatedAt: now, UpdatedAt: now},
		&store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllUsersGroup(ctx, "t", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Assign(ctx, &store.Assignment{ProfileID: "p", GroupID: all.ID, CreatedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	var firstChunkEnd string
	if err := db.QueryRowContext(ctx, `SELECT MAX(enrollment_id) FROM reconcile_queue`).Scan(&firstChunkEnd); err != nil {
		t.Fatal(err)
	}
	type counts struct{ ins, upd int64 }
	read := func() counts {
		t.Helper()
		if _, err := db.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var c counts
		if err := db.QueryRowContext(ctx, `SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'reconcile_queue'`).Scan(&c.ins, &c.upd); err != nil {
			t.Fatal(err)
		}
		return c
	}
	claimed := map[string]string{}
	claim := func(holder string, want int, wantIns, wantUpd int64) []store.DirtyEnrollment {
		t.Helper()
		c0 := read()
		ds, err := s.ClaimDirty(ctx, holder, now.Add(time.Second), time.Minute, batch)
		if err != nil || len(ds) != want {
			t.Fatalf("%s claimed %d (%v), want %d", holder, len(ds), err, want)
		}
		c := read()
		if ins, upd := c.ins-c0.ins, c.upd-c0.upd; ins != wantIns || upd != wantUpd {
			t.Errorf("%s: %d queue rows inserted and %d updated, want %d and %d", holder, ins, upd, wantIns, wantUpd)
		}
		for _, d := range ds {
			if h, ok := claimed[d.DeviceID]; ok {
				t.Fatalf("%s claimed by %s and %s", d.DeviceID, h, holder)
			}
			claimed[d.DeviceID] = holder
		}
		var held int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reconcile_queue WHERE claimed_by = $1`, holder).Scan(&held); err != nil || held != want {
			t.Fatalf("%s holds %d rows (%v), want %d", holder, held, err, want)
		}
		return ds
	}
	// The second chunk, inserted claimed: no update (the expansion's
	// cursor row is reconcile_expansions', not counted here).
	h1 := claim("h1", batch, batch, 0)
	for _, d := range h1 {
		if d.DeviceID <= firstChunkEnd || d.Gen != 1 || d.Verify {
			t.Fatalf("h1 claimed %+v, want a fresh mark of the second chunk (after %s)", d, firstChunkEnd)
		}
	}
	// The last 500 inserted claimed, then 500 of the first chunk claimed
	// by update.
	claim("h2", batch, n-2*batch, batch-(n-2*batch))
	// The rest of the first chunk; then nothing.
	claim("h3", n-2*batch, 0, n-2*batch)
	claim("h4", 0, 0, 0)
	if len(claimed) != n {
		t.Fatalf("%d devices claimed, want %d", len(claimed), n)
	}

	// The batch's end: one statement on reconcile_queue finishes the
	// claims and counts them (no locking read of the same rows first).
	// A batch holding one claim it lost is refused whole.
	finished := func(ds []store.DirtyEnrollment) []store.FinishedClaim {
		fs := make([]store.FinishedClaim, len(ds))
		for i, d := range ds {
			fs[i] = store.FinishedClaim{Dirty: d, Next: now.Add(24 * time.Hour), Verify: true}
		}
		return fs
	}
	var h2 store.DirtyEnrollment
	for id, h := range claimed {
		if h == "h2" {
			h2 = store.DirtyEnrollment{DeviceID: id, Gen: 1}
			break
		}
	}
	lost := append(finished(h1[:10]), store.FinishedClaim{Dirty: h2, Next: now.Add(time.Hour)})
	if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: "h1", Finished: lost}); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("a batch with another holder's claim: %v, want ErrClaimLost", err)
	}
	var held1, held2 int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE claimed_by = 'h1'), COUNT(*) FILTER (WHERE claimed_by = 'h2') FROM reconcile_queue`).Scan(&held1, &held2); err != nil ||
		held1 != batch || held2 != batch {
		t.Fatalf("after the refused batch h1 holds %d and h2 %d (%v), want %d each", held1, held2, err, batch)
	}
	log.Take()
	if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: "h1", Finished: finished(h1)}); err != nil {
		t.Fatal(err)
	}
	var onQueue []string
	for _, q := range log.Take() {
		if strings.Contains(q, "reconcile_queue") {
			onQueue = append(onQueue, q)
		}
	}
	if len(onQueue) != 1 {
		t.Errorf("ApplyReconcile ran %d statements on reconcile_queue, want 1:\n%s", len(onQueue), strings.Join(onQueue, "\n"))
	}
	var due int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reconcile_queue WHERE claimed_by = '' AND verify = 1 AND due_at = $1`,
		now.Add(24*time.Hour).UnixMicro()).Scan(&due); err != nil || due != batch {
		t.Fatalf("%d of h1's claims due for verification (%v), want %d", due, err, batch)
	}
}
