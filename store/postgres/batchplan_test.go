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
// each a scan of the table), and none of its statements — the inputs'
// enrollments and items, the push answers, the finished claims — scans a
// table of the fleet's size, and the claims and push answers are HOT
// updates (migration 0028). Counted in pg_stat_user_tables on the
// store's one connection. Fails with ArrayBatches off
// (POMONA_TEST_SESSION9_BATCH=1) and on Session 10's statements.
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
	// The assignment marks every device in its own transaction: the
	// claim below then updates marked rows (a chunk an expansion marks
	// is claimed as it is inserted, no update: TestExpansionClaimsAsItMarks).
	s.SetMarkChunk(0)
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
	type counts struct{ seq, seqRows, idxRows, upd, hot int64 }
	read := func(table string) counts {
		t.Helper()
		if _, err := db.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var c counts
		if err := db.QueryRowContext(ctx, `SELECT seq_scan, seq_tup_read, COALESCE(idx_tup_fetch, 0), n_tup_upd, n_tup_hot_upd
			FROM pg_stat_user_tables WHERE relname = $1`, table).Scan(&c.seq, &c.seqRows, &c.idxRows, &c.upd, &c.hot); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Updates that change no indexed column stay on their page (HOT,
	// migration 0028's free space): the claim's, and below the push
	// answers'. On full pages each wrote a new entry into every index.
	hot := func(what, table string, c0 counts) {
		t.Helper()
		c := read(table)
		if upd, hot := c.upd-c0.upd, c.hot-c0.hot; upd != batch || hot < batch*9/10 {
			t.Errorf("%s: %d updates of %s, %d of them HOT (want %d, at least 90 %% HOT)", what, upd, table, hot, batch)
		}
	}
	rqc := read("reconcile_queue")
	ds, err := s.ClaimDirty(ctx, "h", now.Add(time.Second), time.Minute, batch)
	if err != nil || len(ds) != batch {
		t.Fatalf("claimed %d: %v", len(ds), err)
	}
	hot("ClaimDirty", "reconcile_queue", rqc)
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.DeviceID
	}
	// Items on other devices (of earlier batches): profile_items holds a
	// few pages, the size a scan of it is planned for.
	if _, err := db.ExecContext(ctx, `INSERT INTO profile_items (enrollment_id, profile_id, identifier, state, version, hash, command_uuid, acknowledged, attempts, error, next_retry, updated_at)
		SELECT id, 'p', 'com.example.p', 'installed', 1, 'h', '', 1, 0, '', 0, 0 FROM enrollments ORDER BY id DESC LIMIT 1500`); err != nil {
		t.Fatal(err)
	}
	before := map[string]counts{}
	for _, tb := range []string{"channels", "enrollments", "profile_items"} {
		before[tb] = read(tb)
	}
	ins, err := s.ReconcileInputs(ctx, ids)
	if err != nil || len(ins) != batch {
		t.Fatalf("inputs of %d: %v", len(ins), err)
	}
	for _, in := range ins {
		if in.Channel == nil || in.Channel.ID != "CH"+md5hex("ch"+in.Enrollment.ID) {
			t.Fatalf("enrollment %s with channel %+v", in.Enrollment.ID, in.Channel)
		}
	}
	// Each table of the fleet's size read by key: a sequential scan per
	// batch is a pass over the fleet per 1,000 devices (Session 11: the
	// enrollments were scanned, and the items compared with all 1,000 ids
	// a row).
	for _, tb := range []string{"channels", "enrollments", "profile_items"} {
		if c, c0 := read(tb), before[tb]; c.seq != c0.seq || c.idxRows-c0.idxRows > batch {
			t.Errorf("ReconcileInputs of %d enrollments read %d %s rows by index and %d by %d sequential scans (want at most %d, by key)",
				batch, c.idxRows-c0.idxRows, tb, c.seqRows-c0.seqRows, c.seq-c0.seq, batch)
		}
	}
	// The batch's push answers (push.Pusher's SetPushResults) by key too.
	var answers []store.PushResult
	for _, in := range ins {
		answers = append(answers, store.PushResult{ChannelID: in.Channel.ID})
	}
	ch0 := read("channels")
	if err := s.SetPushResults(ctx, answers, now); err != nil {
		t.Fatal(err)
	}
	if ch := read("channels"); ch.seq != ch0.seq {
		t.Errorf("SetPushResults of %d channels: %d sequential scans of channels (%d rows)", batch, ch.seq-ch0.seq, ch.seqRows-ch0.seqRows)
	}
	hot("SetPushResults", "channels", ch0)
	var answered int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM channels WHERE last_push_at = $1`, now.UnixMicro()).Scan(&answered); err != nil || answered != batch {
		t.Fatalf("%d push answers recorded (%v)", answered, err)
	}
	b := &store.ReconcileBatch{Holder: "h"}
	for _, d := range ds {
		b.Finished = append(b.Finished, store.FinishedClaim{Dirty: d, Next: now.Add(24 * time.Hour), Verify: true})
	}
	rq0 := read("reconcile_queue")
	if err := s.ApplyReconcile(ctx, b); err != nil {
		t.Fatal(err)
	}
	// By key: Session 9's chunks of 200 scanned the table 5 times a
	// batch, Session 10's one statement once (1,000 of 20,000 rows are
	// cheaper in one pass than by 1,000 probes by PostgreSQL's costs,
	// and the pass is over the whole fleet's queue every batch).
	if rq := read("reconcile_queue"); rq.seq != rq0.seq {
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
