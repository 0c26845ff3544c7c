package postgres_test

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// A reconciler batch on tables PostgreSQL has no statistics of (devices
// bulk-loaded, autovacuum off or not run yet) reads what it needs by key,
// whatever the planner guesses (Dialect.ArrayBatches): ReconcileInputs
// probes each enrollment's device channel (a join estimated the device
// channels at one row and compared every enrollment of the chunk with
// every device channel: 1,000 × 20,000 here, 7.5 s a chunk at 20,000
// devices in pomona bench), and ApplyReconcile finishes its claims in
// one statement per group of claims (not chunks of OR-lists of 200
// (enrollment_id, gen) pairs, each tens of milliseconds to plan and run,
// each a scan of the table). Counted in pg_stat_user_tables on the
// store's one connection. Fails with ArrayBatches off
// (POMONA_TEST_SESSION9_BATCH=1).
func TestBatchReadsByKeyWithoutStatistics(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s0, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s0.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// One connection: the counters read are this backend's, flushed on
	// demand (pg_stat_force_next_flush).
	db.SetMaxOpenConns(1)
	d := postgres.Dialect
	if os.Getenv("POMONA_TEST_SESSION9_BATCH") != "" {
		d.ArrayBatches = false // to see the test fail without the change
	}
	s := sqlstore.New(d, db, db, "plan")
	const n, batch = 20000, 1000
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('t', 'T', 0, 0)`,
		`INSERT INTO tenant_domains (tenant_id, domain) VALUES ('t', 't.example')`,
		`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, created_at, updated_at)
			SELECT 'us_' || i, 't', 'user' || i || '@t.example', 't.example', 'user' || i || '@t.example', 0, 0 FROM generate_series(0, 49) AS i`,
		fmt.Sprintf(`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, os_version, status, created_at, updated_at)
			SELECT 'en_' || md5(i::text), 't', 'us_' || (i %% 50), decode(md5(i::text), 'hex'), 'iOS', '18.2', 'enrolled', 0, 0
			FROM generate_series(1, %d) AS i`, n),
		`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, created_at, updated_at)
			SELECT 'CH' || md5('ch' || id), id, 'device', decode(md5(id), 'hex'), 'magic', 0, 0 FROM enrollments`,
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
	type counts struct{ seq, seqRows, idxRows int64 }
	read := func(table string) counts {
		t.Helper()
		if _, err := db.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var c counts
		if err := db.QueryRowContext(ctx, `SELECT seq_scan, seq_tup_read, COALESCE(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = $1`,
			table).Scan(&c.seq, &c.seqRows, &c.idxRows); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ds, err := s.ClaimDirty(ctx, "h", now.Add(time.Second), time.Minute, batch)
	if err != nil || len(ds) != batch {
		t.Fatalf("claimed %d: %v", len(ds), err)
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.DeviceID
	}
	ch0 := read("channels")
	ins, err := s.ReconcileInputs(ctx, ids)
	if err != nil || len(ins) != batch {
		t.Fatalf("inputs of %d: %v", len(ins), err)
	}
	for _, in := range ins {
		if in.Channel == nil || in.Channel.ID != "CH"+md5hex("ch"+in.Enrollment.ID) {
			t.Fatalf("enrollment %s with channel %+v", in.Enrollment.ID, in.Channel)
		}
	}
	if ch := read("channels"); ch.seq != ch0.seq || ch.idxRows-ch0.idxRows > batch {
		t.Errorf("ReconcileInputs of %d enrollments read %d channel rows by index and %d by %d sequential scans (want at most %d, by key)",
			batch, ch.idxRows-ch0.idxRows, ch.seqRows-ch0.seqRows, ch.seq-ch0.seq, batch)
	}
	b := &store.ReconcileBatch{Holder: "h"}
	for _, d := range ds {
		b.Finished = append(b.Finished, store.FinishedClaim{Dirty: d, Next: now.Add(24 * time.Hour), Verify: true})
	}
	rq0 := read("reconcile_queue")
	if err := s.ApplyReconcile(ctx, b); err != nil {
		t.Fatal(err)
	}
	// One statement for the batch's one group of claims due again at the
	// same time (its plan may scan the table: 1,000 of 20,000 rows are
	// cheaper to find in one sequential pass than by 1,000 probes, by
	// PostgreSQL's costs); Session 9's chunks of 200 scanned it 5 times.
	if rq := read("reconcile_queue"); rq.seq-rq0.seq > 1 {
		t.Errorf("finishing %d claims scanned reconcile_queue %d times (%d rows)", batch, rq.seq-rq0.seq, rq.seqRows-rq0.seqRows)
	}
	var finished int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reconcile_queue WHERE claimed_by = '' AND verify = 1 AND due_at = $1`,
		now.Add(24*time.Hour).UnixMicro()).Scan(&finished); err != nil || finished != batch {
		t.Fatalf("%d claims finished (%v)", finished, err)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
